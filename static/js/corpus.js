// Corpus pages: the upload form (upload progress over XMLHttpRequest), the import progress
// (websocket), the charts of a ready corpus, and delete confirmations.
(function () {
  "use strict";

  function setBar(el, fraction) {
    if (!el) return;
    const f = Math.max(0, Math.min(1, Number(fraction) || 0));
    el.firstElementChild.style.width = (100 * f).toFixed(1) + "%";
    el.title = window.fmt.pct(f);
  }

  function megabytes(bytes) {
    return (bytes / 1048576).toFixed(bytes < 10485760 ? 1 : 0) + " MB";
  }

  // Delete buttons ask first; the form posts with its CSRF token.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // Label chips and sample headings take the emotion's colour.
  document.querySelectorAll("[data-label]").forEach(function (el) {
    el.style.setProperty("--chip", window.emotionColor(el.dataset.label));
  });

  function initUpload(form) {
    const maxBytes = Number(form.dataset.maxBytes);
    const archive = form.querySelector("input[name=archive]");
    const folder = form.querySelector("input[name=files]");
    const zipField = document.getElementById("zip-field");
    const folderField = document.getElementById("folder-field");
    const folderSummary = document.getElementById("folder-summary");
    const status = document.getElementById("upload-status");
    const bar = document.getElementById("upload-progress");
    const percent = document.getElementById("upload-percent");
    const phase = document.getElementById("upload-phase");
    const error = document.getElementById("upload-error");
    const button = document.getElementById("upload-button");

    function source() {
      return form.querySelector("input[name=source]:checked").value;
    }
    function showSource() {
      const zip = source() === "zip";
      zipField.hidden = !zip;
      folderField.hidden = zip;
    }
    form.querySelectorAll("input[name=source]").forEach(function (r) { r.addEventListener("change", showSource); });
    showSource();

    folder.addEventListener("change", function () {
      const files = Array.from(folder.files);
      const size = files.reduce(function (sum, f) { return sum + f.size; }, 0);
      folderSummary.textContent = files.length ? files.length + " files, " + megabytes(size) : "";
    });

    function fail(message) {
      error.textContent = message;
      button.disabled = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.textContent = "";
      const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
      const data = new FormData();
      data.append("csrfmiddlewaretoken", token);
      data.append("name", form.elements.namedItem("name").value);
      data.append("format", form.elements.namedItem("format").value);
      let size = 0;
      if (source() === "zip") {
        const file = archive.files[0];
        if (!file) return fail("Choose a zip archive.");
        data.append("archive", file);
        size = file.size;
      } else {
        const files = Array.from(folder.files);
        if (!files.length) return fail("Choose a folder.");
        // Servers keep only base names of uploaded files: the relative paths travel as a JSON list, in file order.
        const paths = files.map(function (f) { return f.webkitRelativePath || f.name; });
        files.forEach(function (f) { data.append("files", f); });
        data.append("paths", new Blob([JSON.stringify(paths)], { type: "application/json" }), "paths.json");
        size = files.reduce(function (sum, f) { return sum + f.size; }, 0);
      }
      if (maxBytes && size > maxBytes) {
        return fail("The upload is " + megabytes(size) + "; the limit is " + megabytes(maxBytes) +
          ". Import large corpora on the server with the import_corpus command.");
      }

      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", token);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        setBar(bar, e.loaded / e.total);
        percent.textContent = megabytes(e.loaded) + " / " + megabytes(e.total);
      };
      xhr.upload.onload = function () {
        setBar(bar, 1);
        phase.textContent = "Uploaded; checking the archive…";
      };
      xhr.onload = function () {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status < 300 && body && body.ok) {
          phase.textContent = "Uploaded; the import is starting…";
          window.location.assign(body.url);
          return;
        }
        status.hidden = true;
        fail((body && body.error) || "The upload failed (HTTP " + xhr.status + ").");
      };
      xhr.onerror = function () {
        status.hidden = true;
        fail("The upload was interrupted (network error). Try again.");
      };
      button.disabled = true;
      status.hidden = false;
      phase.textContent = "Uploading…";
      setBar(bar, 0);
      xhr.send(data);
    });
  }

  function watchImport(data) {
    const bar = document.getElementById("import-progress");
    const phase = document.getElementById("import-phase");
    let delay = 1000;
    function connect() {
      const ws = new WebSocket(window.wsUrl(data.ws));
      ws.onopen = function () { delay = 1000; };
      ws.onmessage = function (event) {
        const msg = JSON.parse(event.data);
        setBar(bar, msg.progress);
        if (msg.type === "import.progress" && msg.phase) {
          phase.textContent = msg.phase + (msg.total ? ": " + msg.done + " / " + msg.total : "") +
            " (" + window.fmt.pct(msg.progress) + ")";
        }
        if (msg.type === "import.status" && msg.status !== "importing") {
          ws.onclose = null;
          ws.close();
          window.location.reload(); // the server renders the finished corpus (charts or the error)
        }
      };
      ws.onclose = function (ev) {
        // Not signed in, or the corpus is gone: retrying cannot help.
        if (ev.code === 4401 || ev.code === 4404) { phase.textContent = "Progress not available; reload the page."; return; }
        phase.textContent = "Connection lost; reconnecting…";
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
  }

  function drawCharts(summary) {
    if (!window.Plotly) return;
    const config = { displayModeBar: false, responsive: true };
    function layout(extra) {
      const base = { margin: { l: 50, r: 20, t: 10, b: 40 }, bargap: 0.15, font: { size: 12 } };
      const out = Object.assign(base, extra);
      out.xaxis = Object.assign({ automargin: true }, out.xaxis);
      out.yaxis = Object.assign({ automargin: true }, out.yaxis);
      return out;
    }
    const labels = window.sortEmotions(Object.keys(summary.labels || {}));
    Plotly.newPlot("chart-labels", [{
      type: "bar", x: labels, y: labels.map(function (l) { return summary.labels[l]; }),
      marker: { color: labels.map(window.emotionColor) },
      hovertemplate: "%{x}: %{y} utterances<extra></extra>",
    }], layout({ yaxis: { title: { text: "utterances" } } }), config);

    const speakers = window.sortNatural(Object.keys(summary.speakers || {}));
    if (speakers.length) {
      Plotly.newPlot("chart-speakers", [{
        type: "bar", x: speakers, y: speakers.map(function (s) { return summary.speakers[s]; }),
        marker: { color: "#3655d4" }, hovertemplate: "%{x}: %{y} utterances<extra></extra>",
      }], layout({ yaxis: { title: { text: "utterances" } }, xaxis: { type: "category", tickangle: -45 } }), config);
    }

    const hist = summary.histogram || { edges: [], counts: [] };
    if (hist.counts.length) {
      const centers = hist.counts.map(function (_, i) { return (hist.edges[i] + hist.edges[i + 1]) / 2; });
      const ranges = hist.counts.map(function (_, i) { return hist.edges[i] + "–" + hist.edges[i + 1] + " s"; });
      Plotly.newPlot("chart-durations", [{
        type: "bar", x: centers, y: hist.counts, width: hist.width * 0.95, customdata: ranges,
        marker: { color: "#7fb3d5" }, hovertemplate: "%{customdata}: %{y} utterances<extra></extra>",
      }], layout({ xaxis: { title: { text: "seconds" } }, yaxis: { title: { text: "utterances" } } }), config);
    }
  }

  const form = document.getElementById("upload-form");
  if (form) initUpload(form);
  const data = window.readJson("corpus-data");
  if (data && data.status === "importing") watchImport(data);
  if (data && data.status === "ready") drawCharts(data.summary);
})();
