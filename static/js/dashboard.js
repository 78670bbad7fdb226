// Dashboard charts (Chart.js from static/vendor) and live refresh when a run changes state.
(function () {
  "use strict";
  var nodes = JSON.parse(document.getElementById("nodes-data").textContent);
  var stats = document.getElementById("node-stats");
  var charts = {};

  function protocolData(summary) {
    return {
      labels: summary.per_protocol.map(function (row) { return row.protocol; }),
      datasets: [
        { label: "total", data: summary.per_protocol.map(function (row) { return row.total; }), backgroundColor: "#93c5fd" },
        { label: "alive", data: summary.per_protocol.map(function (row) { return row.alive; }), backgroundColor: "#22c55e" },
      ],
    };
  }
  function latencyData(summary) {
    return { labels: summary.latency.labels, datasets: [{ label: "nodes", data: summary.latency.counts, backgroundColor: "#6366f1" }] };
  }
  function draw(summary) {
    document.getElementById("stat-total").textContent = summary.total;
    document.getElementById("stat-alive").textContent = summary.alive;
    document.getElementById("stat-dead").textContent = summary.dead;
    document.getElementById("stat-protocols").textContent = summary.per_protocol.length;
    if (!window.Chart) return;  // The vendor file is missing: run `make install`.
    var options = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } };
    [["protocol", protocolData], ["latency", latencyData]].forEach(function (pair) {
      var data = pair[1](summary);
      if (charts[pair[0]]) { charts[pair[0]].data = data; charts[pair[0]].update(); return; }
      charts[pair[0]] = new Chart(document.getElementById(pair[0] + "-chart"), { type: "bar", data: data, options: options });
    });
  }
  function refresh() {
    Live.getJSON(stats.dataset.url).then(function (data) {
      draw(data.nodes);
      data.runs.slice().reverse().forEach(RunsTable.upsert);
    }).catch(function (error) { console.warn(error); });
  }

  draw(nodes);
  Live.subscribe("runs", function (event) {
    if (event.event !== "run.status") return;
    RunsTable.upsert(event);
    if (event.status === "succeeded" || event.status === "failed") refresh();
  }, { poll: refresh, pollEvery: 10000 });
})();
