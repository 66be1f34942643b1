// Live run page: draws the stored history, then extends the charts from websocket messages.
// Every epoch, stored or live, is one EpochReport payload (training/engine/events.py): fold,
// member, epoch, epochs, its scores and progress, the run's share done. Never polls.
// Reconnects with the last drawn (fold, member, epoch) so the server replays
// exactly what was missed; duplicates are dropped by (fold, member, epoch). A seed ensemble
// (cfg.members > 1) trains its models one after another, each numbering epochs from 1.
(function () {
  "use strict";
  const cfg = readJson("run-config");
  const snapshot = readJson("run-snapshot");
  const labels = cfg.labels;
  const members = cfg.members || 1;
  const seen = new Set();
  let last = [0, 0, 0]; // highest (fold, member, epoch) drawn
  let maxEpoch = 0; // for the ticks: epochs restart with every fold and model
  const traces = {}; // "chart|metric|fold|member" -> trace index
  const plotConfig = { displaylogo: false, responsive: true };

  const charts = {
    loss: { el: "chart-loss", title: "Loss", metrics: [["train_loss", "train"], ["val_loss", "validation"]], yrange: null },
    acc: { el: "chart-acc", title: "Accuracy", metrics: [["train_acc", "train acc"], ["wa", "val WA"], ["ua", "val UA"]], yrange: [0, 1] },
  };
  const dash = { train_loss: "solid", val_loss: "dot", train_acc: "dot", wa: "dash", ua: "solid" };
  const palette = ["#3655d4", "#d62728", "#2e8b57", "#ff8c1a", "#8e44ad", "#7fb3d5", "#a0826d", "#e84393"];

  function layout(title, yrange) {
    return {
      title: { text: title, font: { size: 14 } }, margin: { t: 36, r: 10, b: 40, l: 48 },
      xaxis: { title: "epoch", dtick: 1, rangemode: "tozero" },
      yaxis: yrange ? { range: yrange } : { rangemode: "tozero" },
      legend: { orientation: "h", y: -0.2 }, uirevision: "keep",
    };
  }
  for (const c of Object.values(charts)) Plotly.newPlot(c.el, [], layout(c.title, c.yrange), plotConfig);

  // One series per (fold, model): "fold 2 · model 3", "model 3" (hold-out), "fold 2" (one model).
  function seriesParts(e) {
    return [...(cfg.folds > 1 ? [`fold ${e.fold}`] : []), ...(members > 1 ? [`model ${e.member}`] : [])];
  }
  const seriesName = (e) => seriesParts(e).join(" · ");

  function traceFor(chartKey, metric, name, e) {
    const key = `${chartKey}|${metric}|${e.fold}|${e.member}`;
    if (traces[key] !== undefined) return traces[key];
    const el = document.getElementById(charts[chartKey].el);
    const index = el.data.length;
    const series = seriesName(e);
    // A colour per series when there are several, else per metric.
    const metricIndex = charts[chartKey].metrics.findIndex((m) => m[0] === metric);
    const colour = series ? (e.fold - 1) * members + e.member - 1 : metricIndex;
    Plotly.addTraces(el, {
      x: [], y: [], mode: "lines+markers", name: series ? `${name} (${series})` : name,
      line: { dash: dash[metric], color: palette[colour % palette.length], width: metric === "ua" ? 3 : 2 },
      marker: { size: 5 },
    });
    traces[key] = index;
    return index;
  }

  let detailsPending = null;
  let bestSeen = -1;
  let currentDtick = 1;
  function drawEpochs(epochs) {
    // Group the new points per trace so one Plotly call extends everything.
    for (const [chartKey, chart] of Object.entries(charts)) {
      const xs = {}, ys = {};
      for (const e of epochs) {
        for (const [metric, name] of chart.metrics) {
          const i = traceFor(chartKey, metric, name, e);
          (xs[i] = xs[i] || []).push(e.epoch);
          (ys[i] = ys[i] || []).push(e[metric]);
        }
      }
      const idx = Object.keys(xs).map(Number);
      if (idx.length) Plotly.extendTraces(chart.el, { x: idx.map((i) => xs[i]), y: idx.map((i) => ys[i]) }, idx);
    }
    // Whole-epoch ticks while few epochs are shown; Plotly's automatic ticks beyond that.
    const dtick = maxEpoch <= 15 ? 1 : null;
    if (dtick !== currentDtick) {
      currentDtick = dtick;
      for (const c of Object.values(charts)) Plotly.relayout(c.el, { "xaxis.dtick": dtick, "xaxis.tickmode": dtick ? "linear" : "auto" });
    }
    const best = Math.max(...epochs.map((e) => e.ua), bestSeen);
    if (best > bestSeen) { bestSeen = best; document.getElementById("run-best").textContent = fmt.score(best); }
    // The heatmap and the recall bars only show the latest epoch: draw them on the next
    // frame, once, however many epochs arrived meanwhile, so the curves never wait for them.
    const latest = epochs[epochs.length - 1];
    const first = detailsPending === null;
    detailsPending = latest;
    if (first) {
      requestAnimationFrame(() => {
        const e = detailsPending;
        detailsPending = null;
        drawConfusionOf(e);
        drawRecall(e);
      });
    }
  }

  function drawConfusionOf(e) {
    if (!document.getElementById("confusion-caption")) return;
    document.getElementById("confusion-caption").textContent =
      `Validation, ${[`epoch ${e.epoch}`, ...seriesParts(e)].join(", ")} (rows = true class, row-normalised)`;
    if (window.drawConfusion) window.drawConfusion("chart-confusion", labels, e.confusion);
  }

  function drawRecall(e) {
    const values = labels.map((l) => e.per_class_recall[l] ?? 0);
    Plotly.react("chart-recall", [{
      type: "bar", x: labels, y: values, marker: { color: labels.map(emotionColor) },
      text: values.map((v) => fmt.score(v)), textposition: "outside", hovertemplate: "%{x}: %{y:.3f}<extra></extra>",
    }], {
      title: { text: `Per-class recall, epoch ${e.epoch}${members > 1 ? `, model ${e.member}` : ""}`, font: { size: 14 } },
      margin: { t: 36, r: 10, b: 60, l: 48 }, yaxis: { range: [0, 1.1] },
    }, plotConfig);
  }

  function accept(e) {
    const here = [e.fold, e.member, e.epoch];
    const key = here.join(":");
    if (seen.has(key)) return false;
    seen.add(key);
    const later = here.findIndex((v, i) => v !== last[i]);
    if (later >= 0 && here[later] > last[later]) last = here;
    maxEpoch = Math.max(maxEpoch, e.epoch);
    return true;
  }

  const logEl = document.getElementById("event-log");
  function log(text, at) {  // at: Unix seconds of the event (stored or sent), else now
    const line = document.createElement("div");
    line.textContent = `${fmt.time(at ? new Date(at * 1000) : new Date())}  ${text}`;
    logEl.appendChild(line);
    logEl.scrollTop = logEl.scrollHeight;
  }

  function logEpoch(e, note) {
    log(`epoch ${e.epoch}${seriesName(e) ? ` (${seriesName(e)})` : ""}: val UA ${fmt.score(e.ua)}, WA ${fmt.score(e.wa)}, ` +
      `loss ${fmt.score(e.val_loss)}${e.is_best ? " ★ best" : ""}${note ? ` (${note})` : ""}`, e.at);
  }

  function setBar(id, fraction, label) {
    const bar = document.getElementById(id);
    bar.firstElementChild.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;
    if (label !== undefined) document.getElementById(id + "-label").textContent = label;
  }

  const finished = ["succeeded", "failed", "cancelled", "interrupted"];
  function showStatus(s) {
    const badge = document.getElementById("run-status");
    const changed = badge.textContent !== s.status;
    badge.textContent = s.status;
    badge.className = `badge ${s.status}`;
    document.getElementById("run-phase").textContent = s.phase || "";
    document.getElementById("run-error").textContent = s.error || "";
    setBar("bar-overall", s.progress, fmt.pct(s.progress));
    if (s.best_ua !== null && s.best_ua !== undefined) document.getElementById("run-best").textContent = fmt.score(s.best_ua);
    for (const el of document.querySelectorAll("[data-when]")) {
      el.hidden = !el.dataset.when.split(" ").includes(s.status);
    }
    document.dispatchEvent(new CustomEvent("run:status", { detail: s }));  // run_extras.js: time, bars
    if (changed && finished.includes(s.status) && badge.dataset.initial !== s.status) {
      log(`run ${s.status}${s.error ? ": " + s.error : ""}`);
      if (s.status === "succeeded") setTimeout(() => location.reload(), 800); // show the registered model
    }
  }

  // 1. Stored history.
  const initial = snapshot.epochs.filter(accept);
  if (initial.length) drawEpochs(initial);
  for (const e of initial) logEpoch(e, "stored");
  showStatus(snapshot.status);
  document.getElementById("run-status").dataset.initial = snapshot.status.status;

  // 2. Live stream.
  let retry = 500;
  function connect() {
    const ws = new WebSocket(wsUrl(`/ws/runs/${cfg.run}/?after_fold=${last[0]}&after_member=${last[1]}&after_epoch=${last[2]}`));
    ws.onopen = () => { retry = 500; document.getElementById("live").className = "badge running"; document.getElementById("live").textContent = "live"; };
    ws.onmessage = (msg) => {
      const m = JSON.parse(msg.data);
      if (m.type === "run.epoch") {
        if (!accept(m)) return;
        drawEpochs([m]);
        logEpoch(m, m.replay ? "caught up" : "");
        setBar("bar-epoch", 1, `epoch ${m.epoch}${m.epochs ? `/${m.epochs}` : ""} done`);
        if (m.progress !== undefined) setBar("bar-overall", m.progress, fmt.pct(m.progress));
        if (m.phase) document.getElementById("run-phase").textContent = m.phase;
      } else if (m.type === "run.progress") {
        if (m.phase) document.getElementById("run-phase").textContent = m.phase;
        const model = m.members > 1 ? `, model ${m.member}/${m.members}` : "";
        setBar("bar-epoch", m.batch / m.batches, `epoch ${m.epoch}/${m.epochs}${cfg.folds > 1 ? `, fold ${m.fold}` : ""}${model}: batch ${m.batch}/${m.batches}, loss ${fmt.score(m.train_loss)}`);
        setBar("bar-overall", m.progress, fmt.pct(m.progress));
        document.dispatchEvent(new CustomEvent("run:progress", { detail: m }));
      } else if (m.type === "run.phase") {
        // Before the epochs: loading the audio, then (Whisper front end) encoding it once.
        document.getElementById("run-phase").textContent = m.phase;
        setBar("bar-epoch", m.done / Math.max(1, m.total), `${m.phase}`);
      } else if (m.type === "run.status") {
        showStatus(m);
      } else if (m.type === "run.log") {
        log(m.message);
      }
    };
    ws.onclose = (ev) => {
      const live = document.getElementById("live");
      live.className = "badge"; live.textContent = "reconnecting…";
      if (ev.code === 4401 || ev.code === 4404) { live.textContent = "not available"; return; }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  }
  connect();
})();
