// Every Plotly chart of the studio, whoever draws it: the theme's colours (a Plotly layout
// template, redrawn when the theme changes), a title that starts at the left so the toolbar on
// the right never covers it, a short toolbar (the PNG download stays), and an accessible name
// with a text summary of what the chart shows (updated on every redraw).
(function () {
  "use strict";
  const Plotly = window.Plotly;
  if (!Plotly || Plotly.__serThemed) return;
  Plotly.__serThemed = true;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function template() {
    const ink = css("--ink"), muted = css("--muted"), line = css("--line");
    const axis = { gridcolor: line, zerolinecolor: line, linecolor: line, tickcolor: line, title: { font: { color: muted } } };
    return {
      layout: {
        font: { color: ink }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        title: { x: 0.01, xanchor: "left" },
        xaxis: axis, yaxis: axis, legend: { font: { color: ink } },
        modebar: { bgcolor: "rgba(0,0,0,0)", color: muted, activecolor: css("--accent") },
        hoverlabel: { bgcolor: css("--card"), bordercolor: line, font: { color: ink } },
      },
    };
  }
  const REMOVE = ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "toggleSpikelines",
    "hoverClosestCartesian", "hoverCompareCartesian"];

  function number(v) {
    return typeof v === "number" && isFinite(v) ? (Math.abs(v) < 10 ? window.fmt.score(v) : String(Math.round(v))) : String(v);
  }
  // "Accuracy. train acc: 5 points, last 0.550; val UA: ..." for line charts, the bars' values
  // for bar charts; a heatmap names its size (its numbers are in the table or cells beside it).
  function summary(gd) {
    const heading = gd.closest("section") && gd.closest("section").querySelector("h2");
    const title = (gd.layout && gd.layout.title && gd.layout.title.text) || gd.dataset.title || (heading && heading.textContent) || "Chart";
    const parts = [];
    for (const t of (gd.data || []).slice(0, 12)) {
      if (t.type === "heatmap") {
        const x = t.x || [], y = t.y || [];
        const square = x.length && x.length <= 20 && x.length === y.length && x.every((v, i) => v === y[i]);
        // A confusion matrix (rows = true, row-normalised): its diagonal is each class's recall.
        parts.push(square && t.z ? `diagonal (true class predicted as itself): ${x.map((v, i) => `${v} ${window.fmt.pct(t.z[i][i])}`).join(", ")}`
          : `heatmap of ${y.length} rows by ${x.length} columns`);
      } else if (t.type === "bar") {
        const xs = t.x || [], ys = t.y || [];
        parts.push(xs.slice(0, 20).map((x, i) => `${x} ${number(ys[i])}`).join(", "));
      } else if (t.y && t.y.length) {
        parts.push(`${t.name || "series"}: ${t.y.length} points, last ${number(t.y[t.y.length - 1])}`);
      }
    }
    if ((gd.data || []).length > 12) parts.push(`and ${gd.data.length - 12} more series`);
    return `${title.replace(/<[^>]+>/g, "")}. ${parts.join("; ")}`.trim();
  }
  function label(gd) {
    if (!gd.getAttribute("role")) gd.setAttribute("role", "figure");
    if (gd.dataset.ariaFixed) return;  // the page gave it its own name
    gd.setAttribute("aria-label", summary(gd));
  }

  function wrap(name) {
    const original = Plotly[name];
    Plotly[name] = function (gd, data, layout, config) {
      const el = typeof gd === "string" ? document.getElementById(gd) : gd;
      layout = Object.assign({}, layout || {}, { template: template() });
      config = Object.assign({ displaylogo: false, responsive: true, modeBarButtonsToRemove: REMOVE }, config || {});
      const done = original.call(Plotly, el, data, layout, config);
      return Promise.resolve(done).then((result) => {
        if (el && !el.__serLabelled) {
          el.__serLabelled = true;
          el.on("plotly_afterplot", () => label(el));
        }
        if (el) label(el);
        return result;
      });
    };
  }
  wrap("newPlot");
  wrap("react");

  document.addEventListener("ser:theme", () => {
    for (const el of document.querySelectorAll(".js-plotly-plot")) Plotly.relayout(el, { template: template() });
  });
})();
