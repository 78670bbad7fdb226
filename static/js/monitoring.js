// Monitoring: CPU, memory and disk charts seeded with the last hour and extended every 5 s.
(function () {
  "use strict";
  var container = document.getElementById("system-charts");
  var history = JSON.parse(document.getElementById("history-data").textContent);
  var names = ["cpu", "memory", "disk"];
  var colors = { cpu: "#2563eb", memory: "#9333ea", disk: "#ea580c" };
  var maxPoints = 120;
  var charts = {};

  function label(iso) { return new Date(iso).toISOString().slice(11, 19); }

  names.forEach(function (name) {
    var points = history[name] || [];
    if (!window.Chart) return;  // The vendor file is missing: run `make install`.
    charts[name] = new Chart(document.getElementById(name + "-chart"), {
      type: "line",
      data: {
        labels: points.map(function (point) { return label(point[0]); }),
        datasets: [{ data: points.map(function (point) { return point[1]; }), borderColor: colors[name],
          backgroundColor: colors[name] + "22", fill: true, pointRadius: 0, tension: 0.25 }],
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } },
        scales: { y: { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } }, x: { ticks: { maxTicksLimit: 6 } } } },
    });
  });

  function sample() {
    if (document.hidden) return;  // No need to sample for a tab nobody looks at.
    Live.getJSON(container.dataset.url).then(function (data) {
      names.forEach(function (name) {
        document.getElementById(name + "-now").textContent = data[name].toFixed(1) + "%";
        var chart = charts[name];
        if (!chart) return;
        chart.data.labels.push(label(data.time));
        chart.data.datasets[0].data.push(data[name]);
        if (chart.data.labels.length > maxPoints) { chart.data.labels.shift(); chart.data.datasets[0].data.shift(); }
        chart.update();
      });
    }).catch(function (error) { console.warn(error); });
  }
  sample();
  window.setInterval(sample, 5000);

  // Health snapshots and alert changes arrive live; the page reloads its tables from the server
  // because they carry acknowledge forms with CSRF tokens.
  function reloadSoon() { window.setTimeout(function () { window.location.reload(); }, 300); }
  Live.subscribe("health", function (event) { if (event.event === "health.snapshot") reloadSoon(); });
  Live.subscribe("alerts", function (event) { if (event.event === "alert.changed") reloadSoon(); });
})();
