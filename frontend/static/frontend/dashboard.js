/* The provider dashboard's charts: Chart.js (served from our own static files) draws what the
   page's tables say. Progressive enhancement only: without it, the tables carry every figure. */
(function () {
  "use strict";

  var BRAND = "#2446a8";
  var RESERVED = "#c26a00";
  var LEFT = "#c5cedb";
  var OK = "#146c2e";
  var ESCROW = "#2f6fd6";
  var REFUND = "#7c4dcc";
  // Job groups, in the order the page stacks them.
  var GROUP_COLOURS = { finished: OK, active: BRAND, failed: "#b42318", cancelled: "#a36a00", rejected: "#6b7280" };

  function readJSON(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function baseOptions(extra) {
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: reducedMotion() ? false : { duration: 400 },
      plugins: { legend: { display: true, position: "bottom" } }
    };
    Object.keys(extra || {}).forEach(function (key) { options[key] = extra[key]; });
    return options;
  }

  // Dataset titles on an axis: shorter on a narrow screen (the tables carry the full titles).
  function shortLabels(canvas, labels) {
    var box = canvas.parentNode && canvas.parentNode.clientWidth;  // the canvas itself is not sized yet
    var max = box && box < 500 ? 16 : 32;
    return labels.map(function (label) { return label.length > max ? label.slice(0, max - 1) + "…" : label; });
  }

  // "2026-03-04" -> "4 Mar", read as a calendar day (no time zone shift).
  function dayLabel(iso) {
    var date = new Date(iso + "T00:00:00Z");
    if (isNaN(date.getTime()) || !date.toLocaleDateString) { return iso; }
    return date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
  }

  function drawEarnings(canvas, data) {
    var unit = data.token ? " " + data.token : "";
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: shortLabels(canvas, data.labels),
        datasets: [
          { label: "Paid to you", data: data.paid, backgroundColor: OK, maxBarThickness: 56 },
          { label: "In escrow", data: data.in_escrow, backgroundColor: ESCROW, maxBarThickness: 56 },
          { label: "Refunded", data: data.refunded, backgroundColor: REFUND, maxBarThickness: 56 }
        ]
      },
      options: baseOptions({
        scales: { y: { beginAtZero: true, title: { display: true, text: "Amount" + unit } } },
        plugins: {
          legend: { display: true, position: "bottom" },
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + ctx.parsed.y + unit; } } }
        }
      })
    });
  }

  function drawBudget(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: shortLabels(canvas, data.labels),
        datasets: [
          { label: "Spent", data: data.spent, backgroundColor: BRAND, maxBarThickness: 40 },
          { label: "Reserved by running jobs", data: data.reserved, backgroundColor: RESERVED, maxBarThickness: 40 },
          { label: "Left", data: data.left, backgroundColor: LEFT, maxBarThickness: 40 }
        ]
      },
      options: baseOptions({
        indexAxis: "y",
        scales: {
          x: { stacked: true, beginAtZero: true, title: { display: true, text: "Epsilon" } },
          y: { stacked: true }
        }
      })
    });
  }

  function drawJobs(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels.map(dayLabel),
        datasets: data.series.map(function (s) {
          return { label: s.label, data: s.counts, backgroundColor: GROUP_COLOURS[s.key] || BRAND, maxBarThickness: 32 };
        })
      },
      options: baseOptions({
        scales: {
          x: { stacked: true, title: { display: true, text: "Day" } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Jobs" } }
        }
      })
    });
  }

  var DRAW = { earnings: drawEarnings, budget: drawBudget, jobs: drawJobs };

  function init() {
    var charts = readJSON("dashboard-charts");
    if (!window.Chart || !charts) { return; }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var name = canvas.getAttribute("data-chart");
      if (DRAW[name] && charts[name]) {
        try { DRAW[name](canvas, charts[name]); } catch (e) { /* a chart that cannot be drawn leaves its table */ }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
