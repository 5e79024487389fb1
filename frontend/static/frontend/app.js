/* Progressive enhancement only: every page works without this file. */
(function () {
  "use strict";

  var RELEVANT = {
    integer: ["min", "max"],
    float: ["min", "max"],
    datetime: ["min", "max"],
    categorical: ["categories"],
    text: ["max_length"],
    boolean: []
  };
  var OPTIONAL_CELLS = ["min", "max", "categories", "max_length"];

  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  /* Upload with a progress bar: XMLHttpRequest exposes upload progress, fetch does not. */
  function bindUpload(form) {
    var box = form.querySelector("[data-upload-progress]");
    var bar = box && box.querySelector("progress");
    var label = form.querySelector("[data-upload-label]");
    var errorBox = form.querySelector("[data-upload-error]");
    var submit = form.querySelector("button[type=submit]");
    if (!box || !bar || !window.FormData) { return; }

    function showError(text) {
      box.hidden = true;
      errorBox.textContent = text;
      errorBox.hidden = false;
      submit.disabled = false;
      errorBox.scrollIntoView({ block: "center" });
    }

    form.addEventListener("submit", function (event) {
      var input = form.querySelector("input[type=file]");
      var file = input && input.files && input.files[0];
      var max = parseInt(form.getAttribute("data-max-bytes"), 10);
      if (!file) { return; } // let the server say the file is missing
      event.preventDefault();
      errorBox.hidden = true;
      if (max && file.size > max) {
        showError("The file is larger than the limit of " + formatBytes(max) + " (" + max.toLocaleString() + " bytes).");
        return;
      }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) { return; }
        var pct = Math.floor((e.loaded / e.total) * 100);
        bar.value = pct;
        label.textContent = "Uploading " + file.name + "… " + pct + "% of " + formatBytes(e.total);
      };
      xhr.upload.onload = function () {
        bar.removeAttribute("value"); // indeterminate while the server samples and encrypts
        label.textContent = "Upload complete. Reading a sample and encrypting the file…";
      };
      xhr.onload = function () {
        var type = xhr.getResponseHeader("Content-Type") || "";
        if (type.indexOf("application/json") === 0 && xhr.status === 200) {
          window.location.assign(JSON.parse(xhr.responseText).redirect);
          return;
        }
        if (type.indexOf("text/html") === 0) {
          var sameForm = new URL(xhr.responseURL || form.action, window.location.href).pathname ===
            new URL(form.action, window.location.href).pathname;
          if (!sameForm) { window.location.assign(xhr.responseURL); return; }
          var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
          var fresh = doc.querySelector("main");
          if (fresh) {
            document.querySelector("main").replaceWith(fresh);
            document.title = doc.title;
            init(fresh);
            var alert = fresh.querySelector("[role=alert]:not([hidden])");
            if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
            return;
          }
        }
        showError("The upload failed (HTTP " + xhr.status + "). Please try again.");
      };
      xhr.onerror = function () {
        showError("The connection was lost during the upload. If the file is very large it may be over the limit; otherwise please try again.");
      };
      box.hidden = false;
      bar.value = 0;
      label.textContent = "Uploading " + file.name + "…";
      submit.disabled = true;
      xhr.send(new FormData(form));
    });
  }

  /* Schema editor: show only the inputs that apply to each row's type. */
  function bindSchemaRow(row) {
    var select = row.querySelector("select[name$='-type']");
    if (!select) { return; }
    function update() {
      var relevant = RELEVANT[select.value] || [];
      row.setAttribute("data-type", select.value);
      OPTIONAL_CELLS.forEach(function (name) {
        var cell = row.querySelector(".cell-" + name);
        if (cell) { cell.classList.toggle("is-irrelevant", relevant.indexOf(name) === -1); }
      });
    }
    select.addEventListener("change", update);
    update();
  }

  /* Pending chain state (publishing, an order waiting for confirmations): ask the page again
     every 2 seconds and swap in the fresh page once the state changes. Without JavaScript a
     <noscript> meta refresh does the same. */
  var POLL_MS = 2000;
  var POLL_FOR_MS = 30 * 60 * 1000;

  function bindPoll(el) {
    var url = el.getAttribute("data-poll");
    var state = el.getAttribute("data-poll-state");
    var started = Date.now();
    if (!url || !el.id || !window.fetch || !window.DOMParser) { return; }

    function later() {
      if (Date.now() - started < POLL_FOR_MS) { window.setTimeout(poll, POLL_MS); }
    }

    function poll() {
      if (!document.body.contains(el)) { return; } // the page was swapped: its own poller runs
      if (document.hidden) { later(); return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(el.id);
          var freshMain = doc.querySelector("main");
          if (!fresh || !freshMain || fresh.getAttribute("data-poll-state") === state) { later(); return; }
          var active = document.activeElement;
          var main = document.querySelector("main");
          if (active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
            later(); // someone is typing here: do not replace the form under them
            return;
          }
          if (new URL(url, window.location.href).pathname !== window.location.pathname && window.history.replaceState) {
            window.history.replaceState(null, "", url);
          }
          var hadFocus = active && el.contains(active); // keep keyboard users where they were
          main.replaceWith(freshMain);
          document.title = doc.title;
          init(freshMain);
          var heading = freshMain.querySelector("#" + el.id + " h2");
          if (heading && hadFocus) { heading.setAttribute("tabindex", "-1"); heading.focus({ preventScroll: true }); }
        })
        .catch(later);
    }

    later();
  }

  function init(root) {
    root.querySelectorAll("[data-poll]").forEach(bindPoll);
    root.querySelectorAll("form[data-upload-form]").forEach(bindUpload);
    root.querySelectorAll("[data-schema-row]").forEach(bindSchemaRow);
    root.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
})();
