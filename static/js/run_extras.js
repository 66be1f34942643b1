// Run page, beside run.js: elapsed time and ETA ticking while the run trains, the page's state
// once it stops (the "queued" note goes, bars stop looking live), and the labelled confusion
// matrices of a finished run.
(function () {
  "use strict";
  const cfg = readJson("run-config");
  const status = readJson("run-snapshot").status;
  const loadedAt = Date.now() / 1000;
  let state = status.status;
  let progress = status.progress || 0;
  let elapsedAtLoad = cfg.elapsed;  // seconds, from the server's clock (null: not started)
  let startedHere = null;  // when this page saw the run start, if it did

  const ACTIVE = ["queued", "running"];
  const elapsedEl = document.getElementById("run-elapsed");
  const etaBox = document.getElementById("run-eta-box");
  const etaEl = document.getElementById("run-eta");

  function elapsedNow() {
    if (elapsedAtLoad !== null && elapsedAtLoad !== undefined) return elapsedAtLoad + (Date.now() / 1000 - loadedAt);
    return startedHere === null ? null : Date.now() / 1000 - startedHere;
  }
  function tick() {
    if (state !== "running") return;
    const elapsed = elapsedNow();
    if (elapsed !== null) {
      elapsedEl.textContent = fmt.duration(elapsed);
      document.getElementById("run-time").hidden = false;
    }
    // Loading audio comes first; a few percent of training makes the rate meaningful.
    const known = elapsed !== null && progress >= 0.02 && progress < 1;
    etaBox.hidden = !known;
    if (known) etaEl.textContent = fmt.duration(elapsed * (1 - progress) / progress);
  }
  setInterval(tick, 1000);

  function settle(s) {
    const previous = state;
    state = s.status;
    if (typeof s.progress === "number") progress = s.progress;
    if (state !== "queued") for (const note of document.querySelectorAll(".messages li.queued-note")) note.remove();
    if (previous === "queued" && state === "running" && elapsedAtLoad === null) startedHere = Date.now() / 1000;
    const active = ACTIVE.includes(state);
    for (const id of ["bar-overall", "bar-epoch"]) {
      document.getElementById(id).classList.toggle("stopped", !active && !(id === "bar-overall" && state === "succeeded"));
    }
    if (!active) {
      etaBox.hidden = true;
      document.getElementById("live").hidden = true;
      document.getElementById("bar-epoch-label").textContent = "";
      const label = document.querySelector("#run-time .muted");
      if (label) label.textContent = "took";
    }
    tick();
  }
  document.addEventListener("run:status", (e) => settle(e.detail));
  document.addEventListener("run:progress", (e) => { progress = e.detail.progress; });
  settle(status);

  for (const c of readJson("run-confusions") || []) {
    window.drawConfusion(`chart-confusion-${c.id}`, c.labels, c.matrix);
  }
})();
