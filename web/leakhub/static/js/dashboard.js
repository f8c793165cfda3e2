/* Dashboard charts. Reads the JSON block #dashboard-data (no inline scripts: CSP script-src 'self'). */
(function () {
  "use strict";
  var el = document.getElementById("dashboard-data");
  if (!el || typeof Chart === "undefined") { return; }
  var data;
  try { data = JSON.parse(el.textContent); } catch (e) { return; }
  var L = data.labels || {};
  var lang = document.documentElement.lang || "en";
  var money = function (v) {
    try {
      return data.currency
        ? new Intl.NumberFormat(lang, { style: "currency", currency: data.currency, maximumFractionDigits: 0 }).format(v)
        : new Intl.NumberFormat(lang, { maximumFractionDigits: 0 }).format(v);
    } catch (e) { return String(Math.round(v)); }
  };
  var red = "#b42318", green = "#067647", blue = "#0b6bcb";
  // locale: axis ticks and tooltips in the page's language (1.200 / 1,200), not the browser's.
  var common = { responsive: true, maintainAspectRatio: false, animation: false, locale: lang };

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { new Chart(canvas, config); }
  }

  draw("chart-trend", {
    type: "bar",
    data: {
      labels: data.trend.months,
      datasets: [
        { label: L.found, data: data.trend.found, backgroundColor: red },
        { label: L.repaired, data: data.trend.repaired, backgroundColor: green }
      ]
    },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } })
  });

  draw("chart-sites", {
    type: "bar",
    data: {
      labels: data.sites.labels,
      datasets: [
        { label: L.open_cost, data: data.sites.open_cost, backgroundColor: red },
        { label: L.saved_cost, data: data.sites.saved_cost, backgroundColor: green }
      ]
    },
    options: Object.assign({}, common, {
      indexAxis: "y",
      scales: { x: { beginAtZero: true, ticks: { callback: function (v) { return money(v); } } } },
      plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + money(c.parsed.x); } } } }
    })
  });

  draw("chart-components", {
    type: "bar",
    data: {
      labels: data.components.labels,
      datasets: [{ label: L.open_cost, data: data.components.open_cost, backgroundColor: blue }]
    },
    options: Object.assign({}, common, {
      scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return money(v); } } } },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: function (c) {
          return money(c.parsed.y) + " · " + data.components.open_count[c.dataIndex];
        } } }
      }
    })
  });
})();
