// Classify page: several files at once (chosen or dropped on the box), each sent to the JSON
// API with this session's CSRF token, one after another, each result in its own card with
// the recording playable beside it. Example clips go the same way. Without JavaScript the
// form posts one file to the page itself (recognition/views/record.py).
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const input = form.querySelector("input[type=file]");
  const select = form.querySelector("select[name=model]");
  const button = document.getElementById("classify-button");
  const zone = document.getElementById("drop-zone");
  const results = document.getElementById("results");
  const clientError = document.getElementById("client-error");
  const limit = Number(input.dataset.maxBytes);
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const queue = [];
  let busy = false;
  let count = 0;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function megabytes(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

  // One card per file, newest on top: name, player, then the result (or the error).
  function card(file) {
    count += 1;
    const section = el("section", { class: "file-result", id: `file-result-${count}` });
    const head = el("div", { class: "row" });
    head.appendChild(el("h2", { class: "file-name" }, file.name));
    head.appendChild(el("span", { class: "badge running file-state" }, "waiting"));
    section.appendChild(head);
    const audio = el("audio", { controls: "", preload: "metadata", class: "file-audio", "aria-label": `Play ${file.name}` });
    audio.src = URL.createObjectURL(file);
    section.appendChild(audio);
    section.appendChild(el("p", { class: "notice error file-error", hidden: "" }));
    section.appendChild(el("div", { class: "file-view" }));
    results.prepend(section);
    return section;
  }

  function setState(section, text, cls) {
    const badge = section.querySelector(".file-state");
    badge.textContent = text;
    badge.className = `badge file-state ${cls}`;
  }

  function fail(section, message) {
    setState(section, "failed", "failed");
    const box = section.querySelector(".file-error");
    box.textContent = message;
    box.hidden = false;
  }

  async function classify(file, section) {
    if (limit && file.size > limit) {
      fail(section, `${file.name} is too large (${megabytes(file.size)}): the limit is ${megabytes(limit)}.`);
      return;
    }
    setState(section, "classifying…", "running");
    const body = new FormData();
    body.append("file", file, file.name);
    if (select && select.value) body.append("model", select.value);
    let response, answer;
    try {
      response = await fetch(form.dataset.api, { method: "POST", body, headers: { "X-CSRFToken": csrf }, credentials: "same-origin" });
      answer = await response.json();
    } catch (exc) {
      fail(section, `${file.name}: the server did not answer (${exc.message}).`);
      return;
    }
    if (!response.ok) {
      fail(section, `${file.name}: ${answer.error || response.statusText}`);
      return;
    }
    setState(section, `${answer.model ? `${answer.model.name} v${answer.model.version}` : "done"}`, "succeeded");
    window.renderResult(section.querySelector(".file-view"), answer, { live: false });
  }

  async function drain() {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const { file, section } = queue.shift();
      await classify(file, section);
    }
    busy = false;
  }

  function add(files) {
    clientError.hidden = true;
    const audio = [...files].filter((f) => !f.type || f.type.startsWith("audio/") || f.type.startsWith("video/") || /\.(wav|flac|mp3|ogg|opus|webm|m4a|aac)$/i.test(f.name));
    const skipped = files.length - audio.length;
    if (skipped) {
      clientError.textContent = `${skipped} file${skipped > 1 ? "s are" : " is"} not audio and ${skipped > 1 ? "were" : "was"} left out.`;
      clientError.hidden = false;
    }
    // Cards in the order given; each waits for the one before (one model on the server at a time).
    for (const file of audio) queue.push({ file, section: card(file) });
    drain();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.files.length) {
      clientError.textContent = "Choose one or more audio files first.";
      clientError.hidden = false;
      return;
    }
    add(input.files);
    input.value = "";
  });

  // Drag and drop onto the whole box.
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      if (input.disabled) return;
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", (event) => { if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging"); });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (!input.disabled && event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
  });

  // Example clips: fetched from static files and classified like a chosen file.
  for (const example of document.querySelectorAll("[data-example]")) {
    example.addEventListener("click", async () => {
      const url = example.dataset.example;
      const blob = await (await fetch(url)).blob();
      add([new File([blob], url.split("/").pop().replace(/\.[0-9a-f]{12}(?=\.)/, ""), { type: blob.type || "audio/wav" })]);
    });
  }

  // The page itself answered a plain form post (no JavaScript at the time): show it.
  const result = window.readJson("upload-result");
  if (result) window.renderResult(document.getElementById("result"), result, { live: false });
  if (button) button.textContent = "Classify";
})();
