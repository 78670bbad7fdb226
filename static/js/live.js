// Live updates: one WebSocket per topic that reconnects with backoff, and polling while it is down.
(function () {
  "use strict";
  var stateLabel = document.getElementById("live-state");
  var sockets = {};

  function showState(state) {
    if (!stateLabel) return;
    stateLabel.className = "live-state " + state;
    stateLabel.textContent = state;
  }

  // Connect to /ws/<topic>/ and call onEvent(message) for each event. While the socket is closed,
  // options.poll() runs every options.pollEvery ms (default 3 s), so the page stays current.
  function subscribe(topic, onEvent, options) {
    options = options || {};
    var delay = 1000;
    var pollTimer = null;
    var pollEvery = options.pollEvery || 3000;

    function startPolling() {
      if (!options.poll || pollTimer) return;
      showState("polling");
      options.poll();
      pollTimer = window.setInterval(options.poll, pollEvery);
    }
    function stopPolling() {
      if (pollTimer) window.clearInterval(pollTimer);
      pollTimer = null;
    }
    function connect() {
      var socket = new WebSocket(document.body.dataset.wsBase + "/ws/" + topic + "/");
      sockets[topic] = socket;
      socket.onopen = function () {
        delay = 1000;
        stopPolling();
        showState("live");
        // Catch up on what happened while the socket was down.
        if (options.poll) options.poll();
      };
      socket.onmessage = function (message) {
        try { onEvent(JSON.parse(message.data)); } catch (error) { console.error(error); }
      };
      socket.onclose = function (event) {
        startPolling();
        if (event.code === 4401) { showState("offline"); return; }  // logged out: reconnecting cannot help
        // Exponential backoff with jitter, capped at 30 s, so a restarted server is not stampeded.
        var wait = Math.min(delay, 30000) * (0.75 + Math.random() / 2);
        delay = Math.min(delay * 2, 30000);
        window.setTimeout(connect, wait);
      };
    }
    connect();
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error(url + " answered " + response.status);
      return response.json();
    });
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: body || new FormData(),
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    }).then(function (response) {
      return response.json().then(function (data) { data._status = response.status; return data; });
    });
  }

  window.Live = { subscribe: subscribe, getJSON: getJSON, postJSON: postJSON, sockets: sockets };
})();
