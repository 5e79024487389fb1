/* Compute jobs: the algorithm picker of the job form, live progress on the job page and the
   charts of the result page. Progressive enhancement only: every page works without it (the
   picker has its own button, the job page refreshes itself, every chart has its table). */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var POLL_MAX_MS = 15000;
  var BRAND = "#2446a8";
  var ACCENT = "#0f766e";
  // What the job page says it waits for (the server renders the same sentences).
  var HINTS = {
    created: "Waiting for the payment to be confirmed on chain. ",
    paid: "Waiting for a worker. ",
    queued: "Waiting for a worker. "
  };

  function readJSON(id) {
    var el = id && document.getElementById(id);
    if (!el) { return null; }
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function number(value, digits) {
    if (typeof value !== "number" || !isFinite(value)) { return "0"; }
    return String(parseFloat(value.toFixed(digits)));
  }

  /* --- dataset page: choosing an algorithm swaps in its parameters without leaving the page --- */

  function bindTargetFeatures(root) {
    var target = root.querySelector("select[name=target]");
    if (!target) { return; }
    function update() {
      root.querySelectorAll("input[name=features]").forEach(function (box) {
        var isTarget = target.value !== "" && box.value === target.value;
        box.disabled = isTarget; // a model cannot take its own target as a feature
        if (isTarget) { box.checked = false; }
      });
    }
    target.addEventListener("change", update);
    update();
  }

  function bindPicker(form) {
    var button = form.querySelector("[data-picker-submit]");
    var status = form.querySelector("[data-picker-status]");
    if (!document.getElementById("job-params") || !window.fetch || !window.DOMParser) { return; }
    if (button) { button.hidden = true; }
    form.addEventListener("change", function (event) {
      var input = event.target;
      if (input.name !== "algorithm") { return; }
      var url = new URL(form.getAttribute("action"), window.location.href);
      url.hash = "";
      url.search = "?algorithm=" + encodeURIComponent(input.value);
      fetch(url.toString(), { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("job-params");
          var current = document.getElementById("job-params");
          if (!fresh || !current) { throw new Error("no form"); }
          current.replaceWith(fresh);
          bindTargetFeatures(fresh);
          bindValidation(fresh);
          if (window.history.replaceState) { window.history.replaceState(null, "", url.pathname + url.search + "#run"); }
          var title = fresh.querySelector(".job-form-title");
          if (status && title) { status.textContent = "Showing the " + title.textContent.toLowerCase() + "."; }
        })
        .catch(function () { if (button) { button.hidden = false; } });
    });
  }

  /* --- job form: inline validation of each parameter against the bounds the form carries (the
     server checks them again and puts its own message next to the field) --- */

  function decimals(step) {
    var dot = String(step).indexOf(".");
    return dot === -1 ? 0 : String(step).length - dot - 1;
  }

  function fieldMessage(input) {
    var v = input.validity;
    if (!v || v.valid) { return ""; }
    if (v.valueMissing) { return input.tagName === "SELECT" ? "Choose one." : "Required."; }
    if (v.badInput || v.typeMismatch) { return "Enter a number."; }
    if (v.rangeUnderflow) { return "At least " + input.min + "."; }
    if (v.rangeOverflow) { return "At most " + input.max + "."; }
    if (v.stepMismatch) {
      var places = decimals(input.step);
      return places ? "At most " + places + " decimal places." : "Enter a whole number.";
    }
    return input.validationMessage;
  }

  function showFieldError(input, message) {
    var box = input.closest(".field");
    if (!box || !input.id) { return; }
    var id = input.id + "_live";
    var note = document.getElementById(id);
    if (!note && message) {
      note = document.createElement("p");
      note.id = id;
      note.className = "errorlist live-error";
      box.appendChild(note);
    }
    var described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) { return x && x !== id; });
    if (note) { note.textContent = message; note.hidden = !message; }
    if (message) { described.push(id); }
    if (described.length) { input.setAttribute("aria-describedby", described.join(" ")); } else { input.removeAttribute("aria-describedby"); }
    var serverError = box.querySelector(".errorlist:not(.live-error)");
    if (message) {
      input.setAttribute("aria-invalid", "true");
      box.classList.add("field-invalid");
    } else if (!serverError) {
      input.removeAttribute("aria-invalid");
      box.classList.remove("field-invalid");
    }
  }

  function bindValidation(form) {
    if (!form || form.hasAttribute("data-validating")) { return; }
    form.setAttribute("data-validating", "");
    form.noValidate = true; // our messages, next to the field, instead of the browser's bubble
    var fields = function () { return form.querySelectorAll("input[type=number], input[required], select[required]"); };
    form.addEventListener("focusout", function (event) {
      var input = event.target;
      if (input.matches && input.matches("input[type=number], input[required], select[required]")) {
        showFieldError(input, fieldMessage(input));
      }
    });
    form.addEventListener("input", function (event) {
      var input = event.target;
      if (input.id && document.getElementById(input.id + "_live")) { showFieldError(input, fieldMessage(input)); }
    });
    form.addEventListener("submit", function (event) {
      var first = null;
      fields().forEach(function (input) {
        var message = fieldMessage(input);
        showFieldError(input, message);
        if (message && !first) { first = input; }
      });
      if (first) {
        event.preventDefault();
        event.stopImmediatePropagation();
        first.focus();
      }
    });
  }

  /* --- job page: follow the job through the API until it ends, then reload once --- */

  function bindJob(panel) {
    var api = panel.getAttribute("data-job-api");
    var labels = readJSON("job-labels");
    if (!api || !labels || !window.fetch) { return; }
    var bar = panel.querySelector("[data-job-progress]");
    var fill = bar && bar.querySelector(".job-progress-fill");
    var announce = panel.querySelector("[data-job-announce]");
    var lastStatus = panel.getAttribute("data-job-status");
    var lastPhase = null;
    var failures = 0;

    function setText(field, value) {
      document.querySelectorAll("[data-job-field='" + field + "']").forEach(function (el) { el.textContent = value; });
    }

    function render(job) {
      var progress = job.progress || {};
      var percent = Math.max(0, Math.min(100, Math.round(progress.percent || 0)));
      var statusLabel = labels.status[job.status] || job.status;
      var phaseLabel = labels.phase[progress.phase] || statusLabel;
      setText("status", statusLabel);
      setText("phase", phaseLabel);
      setText("percent", String(percent));
      setText("epoch", String(progress.epoch || 0));
      setText("epochs", String(progress.epochs || 0));
      setText("step", String(progress.step || 0));
      setText("steps", String(progress.steps || 0));
      setText("epsilon", number(progress.epsilon, 4));
      setText("hint", HINTS[job.status] || "");
      document.querySelectorAll("[data-job-field='status-badge']").forEach(function (badge) {
        badge.className = "badge badge-job-" + job.status;
        badge.textContent = statusLabel;
      });
      if (bar) {
        bar.setAttribute("aria-valuenow", String(percent));
        bar.setAttribute("aria-valuetext", percent + "%, " + phaseLabel);
      }
      if (fill) { fill.style.width = percent + "%"; }
      var cancelling = panel.querySelector("[data-job-field='cancelling']");
      if (cancelling) { cancelling.hidden = !job.cancelling; }
      var cancel = panel.querySelector("[data-job-cancel]");
      if (cancel) { cancel.hidden = job.cancelling || labels.cancellable.indexOf(job.status) === -1; }
      // Announce changes of state, not every step: a screen reader would talk without pause.
      if (announce && (job.status !== lastStatus || progress.phase !== lastPhase) && lastPhase !== null) {
        announce.textContent = statusLabel + (phaseLabel !== statusLabel ? ": " + phaseLabel : "");
      }
      lastStatus = job.status;
      lastPhase = progress.phase || "";
    }

    function later() {
      var wait = failures ? Math.min(POLL_MS * Math.pow(2, failures), POLL_MAX_MS) : POLL_MS;
      window.setTimeout(poll, wait);
    }

    function poll() {
      if (document.hidden) { later(); return; }
      fetch(api, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (job) {
          failures = 0;
          render(job);
          if (labels.terminal.indexOf(job.status) !== -1) {
            window.location.reload(); // the page has the reason, the results link and the receipt
            return;
          }
          later();
        })
        .catch(function () { failures += 1; later(); });
    }

    later();
  }

  /* --- result page: Chart.js (served from our own static files) draws what the tables say --- */

  function chartOptions(xTitle, yTitle, extra) {
    var reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduce ? false : { duration: 400 },
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: { title: { display: true, text: xTitle } },
        y: { title: { display: true, text: yTitle } }
      },
      plugins: { legend: { display: false } }
    };
    Object.keys(extra || {}).forEach(function (key) { options[key] = extra[key]; });
    return options;
  }

  function drawLoss(canvas, data) {
    var datasets = [{ label: "DP loss", data: data.loss, borderColor: BRAND, backgroundColor: BRAND, yAxisID: "y", spanGaps: true }];
    var options = chartOptions("Epoch", "DP loss");
    if (data.accuracy && data.accuracy.some(function (v) { return typeof v === "number"; })) {
      datasets.push({
        label: "DP accuracy", data: data.accuracy, borderColor: ACCENT, backgroundColor: ACCENT,
        borderDash: [6, 4], yAxisID: "y1", spanGaps: true
      });
      options.scales.y1 = { position: "right", min: 0, max: 1, title: { display: true, text: "DP accuracy" }, grid: { drawOnChartArea: false } };
      options.plugins.legend.display = true;
    }
    return new window.Chart(canvas, { type: "line", data: { labels: data.epochs, datasets: datasets }, options: options });
  }

  function drawEpsilon(canvas, data) {
    var points = data.steps.map(function (step, i) { return { x: step, y: data.epsilon[i] }; });
    var options = chartOptions("Step", "Epsilon spent");
    options.scales.x.type = "linear";
    options.scales.x.ticks = { precision: 0 };
    options.scales.y.beginAtZero = true;
    return new window.Chart(canvas, {
      type: "line",
      data: { datasets: [{ label: "Epsilon", data: points, borderColor: BRAND, backgroundColor: BRAND, pointRadius: points.length > 60 ? 0 : 2 }] },
      options: options
    });
  }

  function drawHistogram(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: [{ label: "DP count", data: data.counts, backgroundColor: BRAND }] },
      options: chartOptions(canvas.getAttribute("data-title") || "Bin", "DP count", {})
    });
  }

  var DRAW = { loss: drawLoss, epsilon: drawEpsilon, histogram: drawHistogram };

  function drawCharts(root) {
    if (!window.Chart) { return; } // the tables carry the same numbers
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var draw = DRAW[canvas.getAttribute("data-chart")];
      var data = readJSON(canvas.getAttribute("data-source"));
      if (draw && data) {
        try { draw(canvas, data); } catch (e) { /* a chart that cannot be drawn leaves its table */ }
      }
    });
  }

  function init() {
    document.querySelectorAll("form[data-algorithm-picker]").forEach(bindPicker);
    var params = document.getElementById("job-params");
    if (params) { bindTargetFeatures(params); bindValidation(params); }
    document.querySelectorAll("[data-job-api]").forEach(bindJob);
    drawCharts(document);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
