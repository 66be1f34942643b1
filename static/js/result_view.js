// Draws a recognition result (the dict of recognition/services/classify.py) into a container:
// the emotion (the verdict of the speech segments; "No speech" without any) with one
// probability bar per class, a Plotly timeline of the speech segments, the recording's
// log-Mel spectrogram with the model's attention over it, and a table of the segments.
// Used by the record page (live, then final) and the upload page. While live, a result may
// carry `provisional`: the segment in progress, shown marked as provisional.
//
//   window.renderResult(container, result, {live: bool})
//
// Calling it again on the same container updates the view in place (Plotly.react), so the
// record page can call it for every segment message. Colours come from emotionColor().
(function () {
  "use strict";

  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 };  // colours: the theme (plot_theme.js)

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  const pct = (p) => window.fmt.pct(p);

  function fmtTime(s) {
    return s.toFixed(2) + " s";
  }

  // A round tick step giving about 5 to 12 ticks over [0, span] seconds.
  function niceStep(span) {
    for (const step of [0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120]) if (span / step <= 12) return step;
    return 300;
  }

  function labelsOf(result) {
    if (result.model && result.model.labels && result.model.labels.length) return result.model.labels;
    const first = result.verdict || result.whole || (result.segments || [])[0] || result.provisional;
    return first ? Object.keys(first.probabilities) : [];
  }

  // The skeleton is built once per container; later calls only fill it.
  function skeleton(container) {
    if (container._rv) return container._rv;
    container.textContent = "";
    const parts = {
      label: el("div", { className: "rv-label" }),
      caption: el("p", { className: "muted small rv-caption" }),
      bars: el("div", { className: "rv-bars" }),
      timeline: el("div", { className: "chart rv-timeline" }),
      timelineNote: el("p", { className: "muted small rv-note" }),
      spec: el("div", { className: "chart rv-spec" }),
      specNote: el("p", { className: "muted small rv-note" }),
      segments: el("tbody"),
      segmentsCard: null,
    };
    const top = el("div", { className: "rv-top" }, [
      el("section", { className: "card rv-current" }, [el("h2", { text: "Emotion" }), parts.label, parts.caption, parts.bars]),
      el("section", { className: "card rv-timeline-card" }, [
        el("h2", { text: "Timeline" }), parts.timelineNote, parts.timeline,
      ]),
    ]);
    const spec = el("section", { className: "card rv-spec-card" }, [
      el("h2", { text: "Spectrogram and attention" }), parts.specNote, parts.spec,
    ]);
    const table = el("table", { className: "rv-segments" }, [
      el("thead", {}, [el("tr", {}, ["#", "From", "To", "Emotion", "Probability"].map((h, i) =>
        el("th", { text: h, className: i === 1 || i === 2 || i === 4 ? "num" : "" })))]),
      parts.segments,
    ]);
    parts.segmentsCard = el("section", { className: "card rv-segments-card" }, [el("h2", { text: "Segments" }), table]);
    container.appendChild(el("div", { className: "rv" }, [top, spec, parts.segmentsCard]));
    container._rv = parts;
    return parts;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  // What the Emotion card shows: the final verdict, else (live) the segment in progress or the
  // latest segment. Returns {shown, caption, provisional} or null.
  function current(result, live) {
    const segments = result.segments || [];
    const last = segments[segments.length - 1];
    if (!live && result.verdict) {
      let caption = "From the speech: " + plural(result.verdict.segments, "segment") + ", " +
        fmtTime(result.verdict.speech_seconds) + " of speech in " + fmtTime(result.duration);
      if (result.whole) caption += " · the whole recording as one utterance: " + result.whole.label + " " +
        pct(result.whole.probabilities[result.whole.label] || 0);
      return { shown: result.verdict, caption: caption, provisional: false };
    }
    // Live, or a recording cut off before its final result: the segment in progress, else the latest.
    const p = live ? result.provisional : null;
    if (p && (!last || p.index > last.index)) {
      return { shown: p, caption: "Segment in progress, from " + fmtTime(p.start) + " · provisional: it may change " +
        "until the segment ends", provisional: true };
    }
    if (last) return { shown: last, caption: "Latest segment, " + fmtTime(last.start) + " – " + fmtTime(last.end), provisional: false };
    return null;
  }

  function renderCurrent(parts, result, live) {
    const now = current(result, live);
    parts.bars.textContent = "";
    parts.label.textContent = "";
    parts.label.dataset.provisional = String(Boolean(now && now.provisional));
    if (!now) {
      parts.label.appendChild(el("span", { className: live ? "muted" : "muted rv-no-speech", text: live ? "Listening…" : "No speech" }));
      parts.caption.textContent = live ? "An emotion appears as soon as you speak." :
        "No speech was found in this recording, so there is no emotion to show.";
      return;
    }
    const shown = now.shown;
    const color = window.emotionColor(shown.label);
    parts.label.appendChild(el("span", { className: "rv-swatch", style: "background:" + color }));
    parts.label.appendChild(el("span", { className: "rv-name", text: shown.label }));
    parts.label.appendChild(el("span", { className: "rv-prob muted", text: pct(shown.probabilities[shown.label] || 0) }));
    if (now.provisional) parts.label.appendChild(el("span", { className: "badge rv-provisional", text: "provisional" }));
    parts.caption.textContent = now.caption;
    for (const label of labelsOf(result)) {
      const p = shown.probabilities[label] || 0;
      const fill = el("div", { style: "width:" + (100 * p).toFixed(1) + "%;background:" + window.emotionColor(label) });
      parts.bars.appendChild(el("div", { className: "emotion-bar" + (label === shown.label ? " top" : ""), "data-label": label }, [
        el("span", { text: label }),
        el("div", { className: "bar" }, [fill]),
        el("span", { className: "num", text: pct(p) }),
      ]));
    }
  }

  // Stacked bars, one per segment, as wide as the segment: each class's share of the
  // probability in its colour, so the dominant emotion over time is what catches the eye.
  function renderTimeline(parts, result, live) {
    const segments = result.segments || [];
    const labels = labelsOf(result);
    const end = Math.max(result.duration || 0, segments.length ? segments[segments.length - 1].end : 0, 1);
    const centres = segments.map((s) => (s.start + s.end) / 2);
    const widths = segments.map((s) => Math.max(s.end - s.start, 0.02));
    const traces = labels.map((label) => ({
      type: "bar",
      name: label,
      x: centres,
      width: widths,
      y: segments.map((s) => s.probabilities[label] || 0),
      marker: { color: window.emotionColor(label), line: { width: 0 } },
      customdata: segments.map((s) => [s.start, s.end, s.label, s.index]),
      hovertemplate: "%{customdata[0]:.2f}–%{customdata[1]:.2f} s<br>" + label + ": %{y:.1%}" +
        "<br>segment %{customdata[3]}: %{customdata[2]}<extra></extra>",
    }));
    const layout = {
      barmode: "stack",
      bargap: 0,
      margin: { l: 48, r: 10, t: 30, b: 40 },
      font: FONT,
      // Plotly's automatic ticks snap to the bar centres; ask for round seconds instead.
      xaxis: { title: { text: "time (s)" }, type: "linear", range: [0, end], zeroline: false,
               tickmode: "linear", tick0: 0, dtick: niceStep(end) },
      yaxis: { title: { text: "probability" }, range: [0, 1], tickformat: ".0%" },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", traceorder: "normal" },
      showlegend: labels.length > 0,
    };
    parts.timelineNote.textContent = segments.length ? "" :
      (live ? "Segments appear here as you speak." : "No speech segment was found in this recording.");
    window.Plotly.react(parts.timeline, traces, layout, PLOT_CONFIG);
  }

  function renderSpectrogram(parts, result, live) {
    const spec = result.spectrogram;
    const card = parts.spec.parentNode;
    if (!spec || !spec.db || !spec.db.length) {
      parts.specNote.textContent = live ? "After you stop, the spectrogram and the model's attention appear here." :
        "No audio to show.";
      parts.spec.style.display = "none";
      card.classList.add("rv-empty");
      return;
    }
    parts.spec.style.display = "";
    card.classList.remove("rv-empty");
    const columns = spec.db[0].length;
    const times = Array.from({ length: columns }, (_, j) => (j + 0.5) * spec.hop);
    // A flat picture (digital silence) is drawn as the floor, not as Plotly's middle colour.
    let lowest = Infinity;
    let highest = -Infinity;
    for (const row of spec.db) for (const v of row) { lowest = Math.min(lowest, v); highest = Math.max(highest, v); }
    if (highest <= lowest) highest = lowest + 80;
    const traces = [{
      type: "heatmap",
      z: spec.db,
      x: times,
      y: Array.from({ length: spec.n_mels }, (_, i) => i),
      colorscale: "Viridis",
      zmin: lowest,
      zmax: highest,
      showscale: false,
      hovertemplate: "%{x:.2f} s, Mel band %{y}: %{z:.0f} dB<extra></extra>",
      name: "log-Mel",
    }];
    // The attention of each segment (or of the whole recording, when it was asked for) on the
    // recording's time axis: one trace per segment, since Plotly's fill would bridge a gap.
    const whole = result.whole && result.whole.attention && result.whole.attention.length ? result.whole : null;
    const sources = whole ? [whole] : (result.segments || []).filter((s) => s.attention && s.attention.length);
    const weight = [];
    sources.forEach((s, k) => {
      const x = s.attention.map((w, i) => s.attention_offset + (i + 0.5) * s.attention_hop);
      weight.push(...s.attention);
      traces.push({
        type: "scatter",
        mode: "lines",
        name: "attention",
        legendgroup: "attention",
        showlegend: k === 0,
        x: x,
        y: s.attention,
        yaxis: "y2",
        line: { color: "#ff5a36", width: 2.5, shape: "spline", smoothing: 0.6 },
        fill: "tozeroy",
        fillcolor: "rgba(255,90,54,0.12)",
        hovertemplate: "%{x:.2f} s: attention %{y:.4f}<extra></extra>",
      });
    });
    // The segments as a coloured strip above the spectrogram.
    const shapes = (result.segments || []).map((s) => ({
      type: "rect", xref: "x", yref: "paper", x0: s.start, x1: s.end, y0: 1.01, y1: 1.06,
      fillcolor: window.emotionColor(s.label), line: { width: 0 },
    }));
    const maxAttention = weight.length ? Math.max(...weight) : 1;
    const layout = {
      margin: { l: 48, r: 56, t: 22, b: 40 },
      font: FONT,
      xaxis: { title: { text: "time (s)" }, range: [0, Math.max(result.duration || 0, columns * spec.hop)] },
      yaxis: { title: { text: "Mel band" }, range: [-0.5, spec.n_mels - 0.5], fixedrange: true },
      yaxis2: {
        title: { text: "attention" }, overlaying: "y", side: "right", range: [0, maxAttention * 1.15],
        showgrid: false, rangemode: "tozero", tickformat: ".2~g",
      },
      shapes: shapes,
      showlegend: false,
    };
    parts.specNote.textContent = "Log-Mel spectrogram (0–" + Math.round(spec.f_max) + " Hz)" + (weight.length ?
      "; the orange line is the weight the model's attention gave each moment when it classified " +
      (whole ? "the whole recording" : "each speech segment") + "; the strip on top shows the speech segments." :
      ". No speech segment, so no attention to show.");
    window.Plotly.react(parts.spec, traces, layout, PLOT_CONFIG);
  }

  function renderSegments(parts, result) {
    const segments = result.segments || [];
    parts.segments.textContent = "";
    parts.segmentsCard.style.display = segments.length ? "" : "none";
    for (const s of segments) {
      const chip = el("span", { className: "rv-swatch small", style: "background:" + window.emotionColor(s.label) });
      parts.segments.appendChild(el("tr", { "data-index": String(s.index) }, [
        el("td", { text: String(s.index + 1) }),
        el("td", { className: "num", text: s.start.toFixed(2) }),
        el("td", { className: "num", text: s.end.toFixed(2) }),
        el("td", {}, [chip, document.createTextNode(" " + s.label)]),
        el("td", { className: "num", text: pct(s.probabilities[s.label] || 0) }),
      ]));
    }
  }

  window.renderResult = function (container, result, options) {
    const live = Boolean(options && options.live);
    const parts = skeleton(container);
    container.dataset.state = live ? "live" : "final";
    renderCurrent(parts, result, live);
    renderTimeline(parts, result, live);
    renderSpectrogram(parts, result, live);
    renderSegments(parts, result);
  };

  // Forget a container's view (its next render starts from an empty skeleton).
  window.clearResult = function (container) {
    if (container._rv) {
      for (const chart of container.querySelectorAll(".js-plotly-plot")) window.Plotly.purge(chart);
    }
    container._rv = null;
    container.textContent = "";
  };
})();
