// New-run form: test speakers for the corpora chosen (hold-out only), and an estimate of the
// run's length from the epoch times measured on this server (training.selectors.run_details).
(function () {
  "use strict";
  const form = document.getElementById("run-form");
  if (!form) return;
  const data = readJson("run-estimate-data") || { rates: {}, epochs: 0, utterances: {} };
  const field = (name) => form.elements[name];
  const chosenCorpora = () => [...field("corpora").selectedOptions].map((o) => o.value);

  function showSpeakers() {
    const holdout = field("protocol").value === "holdout";
    const chosen = chosenCorpora();
    const box = document.getElementById("test-speakers");
    box.hidden = !holdout;
    let shown = 0;
    for (const group of box.querySelectorAll(".speaker-group")) {
      const on = holdout && chosen.includes(group.dataset.corpus);
      group.hidden = !on;
      // A hidden speaker is not sent: a corpus taken out of the run takes its speakers with it.
      for (const input of group.querySelectorAll("input")) input.disabled = !on;
      shown += on ? 1 : 0;
    }
    document.getElementById("speakers-none").hidden = !holdout || shown > 0;
  }

  function estimate() {
    const out = document.getElementById("run-estimate");
    const corpora = chosenCorpora();
    const size = field("model_size").value, kind = field("features").value;
    const key = [`${kind}/${size}`, `${kind}/*`, "*"].find((k) => data.rates[k] !== undefined);
    const rate = key && data.rates[key];
    if (!corpora.length) { out.textContent = ""; return; }
    if (rate === undefined) {
      out.textContent = "No estimate of the run's length yet: no epoch has been measured on this server.";
      return;
    }
    const utterances = corpora.reduce((n, id) => n + (data.utterances[id] || 0), 0);
    const epochs = Number(field("epochs").value) || 0;
    const members = Math.max(1, Number(field("members").value) || 1);
    const models = members + (field("distil").checked && members > 1 ? 1 : 0);
    const folds = field("protocol").value === "kfold" ? Math.max(2, Number(field("folds").value) || 2) : 1;
    const seconds = rate * utterances * epochs * models * folds;
    const measured = key === `${kind}/${size}` ? `${size} models` : key === `${kind}/*` ? "models of every size" : "every front end";
    out.textContent = `Estimated length: at most about ${fmt.duration(seconds)} (${epochs} epochs × ${models} ` +
      `model${models > 1 ? "s" : ""}${folds > 1 ? ` × ${folds} folds` : ""} over ${utterances} utterances, from ` +
      `${data.epochs} epochs measured here on ${measured}; early stopping usually ends it sooner).`;
  }

  form.addEventListener("input", () => { showSpeakers(); estimate(); });
  form.addEventListener("change", () => { showSpeakers(); estimate(); });
  showSpeakers();
  estimate();
})();
