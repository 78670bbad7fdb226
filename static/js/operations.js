// Operations: start a run without leaving the page, then follow its progress, stages and log live.
(function () {
  "use strict";
  var panel = document.getElementById("current-run");
  var form = document.getElementById("start-form");
  var bar = panel.querySelector(".progress .bar");
  var value = document.getElementById("run-progress-value");
  var progress = document.getElementById("run-progress");
  var stages = document.getElementById("run-stages");
  var log = document.getElementById("run-log");
  var statusBadge = document.getElementById("run-status");
  var cancel = document.getElementById("cancel-run");
  var runId = panel.dataset.runId ? Number(panel.dataset.runId) : null;
  var finished = ["succeeded", "failed", "cancelled"];

  function url(template, id) { return template.replace("/0", "/" + id); }

  function setProgress(percent) {
    var rounded = Math.round(percent);
    bar.style.width = rounded + "%";
    value.textContent = rounded + "%";
    progress.setAttribute("aria-valuenow", rounded);
  }
  function setStatus(status) {
    statusBadge.className = "badge " + status;
    statusBadge.textContent = status;
    cancel.disabled = finished.indexOf(status) >= 0;
  }
  function setStages(counts, current) {
    stages.textContent = "";
    Object.keys(counts).forEach(function (name) {
      var item = document.createElement("li");
      item.textContent = name + " " + counts[name][0] + "/" + counts[name][1];
      if (name === current) item.className = "current";
      stages.appendChild(item);
    });
  }
  function addLog(line) {
    log.textContent += line + "\n";
    log.scrollTop = log.scrollHeight;
  }
  function follow(id) {
    runId = id;
    panel.hidden = false;
    panel.dataset.runId = id;
    document.getElementById("run-id").textContent = id;
    stages.textContent = "";
    log.textContent = "";
    setProgress(0);
    setStatus("pending");
    poll();
  }
  // The polling fallback and the catch-up after a reconnect: the run's row and its whole log.
  function poll() {
    if (!runId) return;
    Live.getJSON(url(panel.dataset.runUrlTemplate, runId)).then(function (run) {
      setProgress(run.progress);
      setStatus(run.status);
      log.textContent = run.log.join("\n") + (run.log.length ? "\n" : "");
      RunsTable.upsert(run);
    }).catch(function (error) { console.warn(error); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var data = new FormData(form);
    data.set("operation", event.submitter ? event.submitter.value : "merge");
    Live.postJSON(form.action, data).then(function (answer) {
      if (answer.error) { window.alert(answer.error); return; }
      follow(answer.run_id);
    });
  });
  cancel.addEventListener("click", function () {
    if (runId) Live.postJSON(url(panel.dataset.cancelUrlTemplate, runId)).then(poll);
  });

  Live.subscribe("runs", function (event) {
    if (event.event === "run.status") RunsTable.upsert(event);
    if (event.run_id !== runId) return;
    if (event.event === "run.progress") {
      setProgress(event.progress);
      setStages(event.stages, event.stage);
    } else if (event.event === "run.status") {
      setStatus(event.status);
      setProgress(event.progress);
    } else if (event.event === "run.log") {
      addLog(event.line);
    }
  }, { poll: poll });
})();
