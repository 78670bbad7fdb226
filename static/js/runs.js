// Keeps the runs table (#runs-table) current from run.status events and the runs JSON feed.
(function () {
  "use strict";
  var table = document.getElementById("runs-table");
  if (!table) return;
  var body = table.querySelector("tbody");

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }
  function formatTime(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate()) + " " +
      pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes()) + ":" + pad(date.getUTCSeconds());
  }

  function upsert(run) {
    var row = body.querySelector('tr[data-run-id="' + run.run_id + '"]');
    var fresh = document.createElement("tr");
    fresh.dataset.runId = run.run_id;
    var badge = document.createElement("span");
    badge.className = "badge " + run.status;
    badge.textContent = run.status;
    var status = document.createElement("td");
    status.appendChild(badge);
    fresh.append(cell(run.run_id), status, cell(run.trigger), cell(formatTime(run.created_at)),
      cell(Math.round(run.progress) + "%", "num"), cell(run.links_seen, "num"), cell(run.unique, "num"),
      cell(run.sources_ok + " / " + (run.sources_ok + run.sources_failed), "num"));
    if (row) { row.replaceWith(fresh); return; }
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    body.insertBefore(fresh, body.firstChild);
  }

  function refresh() {
    Live.getJSON(table.dataset.runsUrl).then(function (data) {
      data.runs.slice().reverse().forEach(upsert);
    }).catch(function (error) { console.warn(error); });
  }

  window.RunsTable = { upsert: upsert, refresh: refresh };
})();
