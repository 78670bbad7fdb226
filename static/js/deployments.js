// Deployments: follow a running deployment's steps live and refresh the history when it ends.
(function () {
  "use strict";
  var panel = document.getElementById("deployment-live");
  var table = document.getElementById("deployments-table");
  var done = ["succeeded", "failed", "skipped"];

  function show(deployment) {
    panel.hidden = false;
    document.getElementById("deployment-id").textContent = deployment.id;
    var badge = document.getElementById("deployment-status");
    badge.className = "badge " + deployment.status;
    badge.textContent = deployment.status;
    var steps = deployment.steps || [];
    var total = Math.max(steps.length, deployment.steps_total || 0, 1);
    var finished = steps.filter(function (step) { return done.indexOf(step.status) >= 0; }).length;
    var percent = Math.round((100 * finished) / total);
    panel.querySelector(".bar").style.width = percent + "%";
    panel.querySelector(".value").textContent = percent + "%";
    var list = document.getElementById("deployment-steps");
    list.textContent = "";
    steps.forEach(function (step) {
      var item = document.createElement("li");
      item.textContent = (step.phase ? step.phase + ": " : "") + step.name + " " + step.status;
      if (step.status === "running") item.className = "current";
      list.appendChild(item);
    });
  }
  function poll() {
    Live.getJSON(table.dataset.url).then(function (data) {
      var running = data.deployments.filter(function (row) { return row.status === "running" || row.status === "pending"; });
      if (running.length) show(running[0]);
    }).catch(function (error) { console.warn(error); });
  }
  // deployment.progress carries one step at a time, so the steps seen so far are kept here.
  var seen = {};
  Live.subscribe("deployments", function (event) {
    if (event.event !== "deployment.progress") return;
    var steps = seen[event.deployment_id] = seen[event.deployment_id] || [];
    if (event.step) {
      var index = steps.findIndex(function (step) { return step.phase === event.step.phase && step.name === event.step.name; });
      if (index >= 0) steps[index] = event.step; else steps.push(event.step);
    }
    show({ id: event.deployment_id, status: event.status, steps: steps, steps_total: event.steps_total });
    if (["running", "pending"].indexOf(event.status) < 0) {
      window.setTimeout(function () { window.location.reload(); }, 1500);
    }
  }, { poll: poll, pollEvery: 5000 });
})();
