// Confusion-matrix heatmap shared by the model page and the run page (needs plotly.min.js).
//
//   window.drawConfusion(elementId, labels, matrix[, options])
//
// matrix: counts, rows = true class, columns = predicted class (the engine's convention).
// Colours are row-normalised (each row is that class's recall distribution), the hover
// shows the count and the percentage of the row, and small matrices (<= 12 classes) get
// the percentage written in each cell. Calling it again on the same element redraws in
// place (Plotly.react), so a live page can call it after every epoch.
// options: {title, height, annotateMax (default 12)}.
(function () {
  "use strict";

  function rowSums(matrix) {
    return matrix.map(function (row) {
      return row.reduce(function (a, b) { return a + (Number(b) || 0); }, 0);
    });
  }

  const percent = (x) => window.fmt.pct(x);

  function valid(labels, matrix) {
    return Array.isArray(labels) && Array.isArray(matrix) && labels.length > 0 &&
      matrix.length === labels.length &&
      matrix.every(function (row) { return Array.isArray(row) && row.length === labels.length; });
  }

  window.drawConfusion = function (elementId, labels, matrix, options) {
    const el = typeof elementId === "string" ? document.getElementById(elementId) : elementId;
    if (!el) return;
    options = options || {};
    if (!valid(labels, matrix)) {
      if (window.Plotly) window.Plotly.purge(el);
      el.textContent = "No confusion matrix to show.";
      return;
    }
    if (!window.Plotly) {
      el.textContent = "Plotly did not load; the confusion matrix cannot be drawn.";
      return;
    }
    const n = labels.length;
    const sums = rowSums(matrix);
    const z = [], hover = [];
    for (let i = 0; i < n; i++) {
      z.push([]);
      hover.push([]);
      for (let j = 0; j < n; j++) {
        const count = Number(matrix[i][j]) || 0;
        const share = sums[i] ? count / sums[i] : 0;
        z[i].push(share);
        hover[i].push(
          "true <b>" + labels[i] + "</b> → predicted <b>" + labels[j] + "</b><br>" +
          count + " of " + sums[i] + " (" + (sums[i] ? percent(share) : "no samples") + ")"
        );
      }
    }
    // Cell labels through texttemplate, not layout annotations: one text layer is far
    // cheaper to redraw after every epoch, and Plotly picks a contrasting text colour.
    const labelled = n <= (options.annotateMax || 12);
    const trace = {
      type: "heatmap", x: labels, y: labels, z: z, zmin: 0, zmax: 1,
      colorscale: "Blues", reversescale: true, text: hover, hoverinfo: "text", hovertemplate: "%{text}<extra></extra>",
      texttemplate: labelled ? "%{z:.1%}" : "", textfont: { size: n > 8 ? 10 : 12 },
      xgap: 1, ygap: 1,
      colorbar: { title: { text: "share of row", side: "right" }, tickformat: ".0%", thickness: 12 },
    };
    const layout = {
      title: options.title ? { text: options.title, font: { size: 14 } } : undefined,
      height: options.height || undefined,
      margin: { l: 90, r: 20, t: options.title ? 36 : 10, b: 80 },
      xaxis: { title: { text: "predicted" }, type: "category", tickangle: n > 6 ? -35 : 0, automargin: true },
      yaxis: { title: { text: "true" }, type: "category", autorange: "reversed", automargin: true },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
    };
    if (!el.classList.contains("js-plotly-plot")) el.textContent = "";  // drop a "no matrix" note
    window.Plotly.react(el, [trace], layout, { responsive: true, displaylogo: false });
  };
})();
