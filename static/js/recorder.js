// The record page: microphone -> MediaRecorder -> binary websocket frames to ws/record/,
// live segment results back, the final result after Stop (drawn by result_view.js), and
// the list of this tab's recordings, each playable from the chunks kept in the browser.
//
// Protocol (see the consumer): text {"type":"start","mime","model"}, then binary chunks
// (timeslice 250 ms), then text {"type":"stop"}; the server answers ready, segment,
// provisional (the segment in progress, about once a second), progress, final (then
// closes with 1000) or error (then closes).
(function () {
  "use strict";

  const TIMESLICE_MS = 250;
  // Opus in WebM first (Chrome, Firefox, Edge), then what Safari offers.
  const MIME_CANDIDATES = [
    "audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4;codecs=opus",
    "audio/mp4;codecs=mp4a.40.2", "audio/mp4", "audio/webm", "audio/ogg",
  ];

  const options = window.readJson("record-options") || { models: [], wsPath: "/ws/record/" };
  const $ = (id) => document.getElementById(id);
  const ui = {
    box: $("recorder"), select: $("model-select"), start: $("start"), stop: $("stop"),
    meter: document.querySelector("#meter > div"), time: $("rec-time"), status: $("rec-status"),
    error: $("rec-error"), result: $("result"), list: $("recordings"), empty: $("recordings-empty"),
  };
  const recordings = [];
  let current = null; // the recording in progress (one at a time)

  function setStatus(text) { ui.status.textContent = text; }
  function showError(text) { ui.error.textContent = text; ui.error.hidden = false; }
  function clearError() { ui.error.textContent = ""; ui.error.hidden = true; }

  function pickMime() {
    if (typeof MediaRecorder.isTypeSupported !== "function") return "";
    for (const mime of MIME_CANDIDATES) if (MediaRecorder.isTypeSupported(mime)) return mime;
    return ""; // let the browser choose; recorder.mimeType says what it chose
  }

  function micMessage(err) {
    switch (err && err.name) {
      case "NotAllowedError":
      case "PermissionDeniedError":
      case "SecurityError":
        return "Microphone access was denied. Allow the microphone for this site (the icon in the address bar), then press Start again.";
      case "NotFoundError":
      case "DevicesNotFoundError":
      case "OverconstrainedError":
        return "No microphone was found. Connect one (or enable it in the system settings), then press Start again.";
      case "NotReadableError":
      case "TrackStartError":
        return "The microphone could not be started: another application may be using it.";
      default:
        return "The microphone could not be opened (" + (err && (err.name + ": " + err.message)) + ").";
    }
  }

  // Before anything else: can this page record at all?
  function unsupportedReason() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return window.isSecureContext === false
        ? "The microphone is only available on secure pages: open this site over https:// (or on http://localhost)."
        : "This browser gives no access to the microphone (navigator.mediaDevices is missing).";
    }
    if (!window.MediaRecorder) return "This browser cannot record audio (MediaRecorder is missing). Try a current Chrome, Firefox, Edge or Safari.";
    if (!window.WebSocket) return "This browser has no WebSocket support.";
    return "";
  }

  function modelInfo(id) {
    const m = options.models.find((x) => x.id === id);
    return m ? { id: m.id, labels: m.labels } : { id: id, labels: [] };
  }

  // --- level meter (Web Audio AnalyserNode) ---------------------------------------------
  function meterStart(rec) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    rec.audioCtx = new Ctx();
    const analyser = rec.audioCtx.createAnalyser();
    analyser.fftSize = 2048;
    rec.audioCtx.createMediaStreamSource(rec.stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const draw = () => {
      if (!rec.audioCtx) return;
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += v * v;
      const db = 20 * Math.log10(Math.sqrt(sum / samples.length) + 1e-9);
      ui.meter.style.width = (100 * Math.min(1, Math.max(0, (db + 60) / 55))).toFixed(1) + "%";
      rec.meterFrame = requestAnimationFrame(draw);
    };
    draw();
  }

  function meterStop(rec) {
    if (rec.meterFrame) cancelAnimationFrame(rec.meterFrame);
    if (rec.audioCtx) rec.audioCtx.close().catch(() => {});
    rec.audioCtx = null;
    ui.meter.style.width = "0";
  }

  // --- one recording ----------------------------------------------------------------------
  function liveResult(rec) {
    return {
      model: rec.model, duration: Math.max(rec.heard, rec.segments.length ? rec.segments[rec.segments.length - 1].end : 0),
      verdict: null, whole: null, segments: rec.segments, spectrogram: null, provisional: rec.provisional,
    };
  }

  async function start() {
    clearError();
    ui.start.disabled = true;
    ui.select.disabled = true;
    setStatus("Asking for the microphone…");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    } catch (err) {
      showError(micMessage(err));
      setStatus("");
      controlsIdle();
      return;
    }
    const modelId = ui.select.value ? Number(ui.select.value) : null;
    let recorder;
    try {
      const mime = pickMime();
      recorder = mime ? new MediaRecorder(stream, { mimeType: mime }) : new MediaRecorder(stream);
    } catch (err) {
      stream.getTracks().forEach((t) => t.stop());
      showError("The browser refused to record this microphone (" + err.message + ").");
      controlsIdle();
      return;
    }
    const rec = {
      number: recordings.length + 1, stream: stream, recorder: recorder, mime: recorder.mimeType || pickMime(),
      chunks: [], segments: [], provisional: null, heard: 0, model: modelInfo(modelId), modelId: modelId, result: null,
      failed: false, listed: false, startedAt: 0, timer: null, maxSeconds: null, note: "",
    };
    current = rec;
    ui.time.textContent = "0.0 s";
    meterStart(rec);
    window.clearResult(ui.result);
    window.renderResult(ui.result, liveResult(rec), { live: true });
    setStatus("Connecting…");
    connect(rec);
  }

  function connect(rec) {
    const ws = new WebSocket(window.wsUrl(options.wsPath));
    ws.binaryType = "arraybuffer";
    rec.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "start", mime: rec.mime, model: rec.modelId }));
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      onMessage(rec, msg);
    };
    ws.onclose = (event) => onClose(rec, event);
  }

  function onMessage(rec, msg) {
    switch (msg.type) {
      case "ready":
        rec.model = msg.model || rec.model;
        rec.maxSeconds = msg.limits && msg.limits.max_seconds;
        beginRecording(rec);
        break;
      case "segment": {
        const seg = { index: msg.index, start: msg.start, end: msg.end, label: msg.label, probabilities: msg.probabilities };
        rec.segments.push(seg);
        if (rec.provisional && rec.provisional.index <= seg.index) rec.provisional = null; // it has ended
        if (!rec.result) window.renderResult(ui.result, liveResult(rec), { live: true });
        break;
      }
      case "provisional":
        if (!rec.segments.length || msg.index > rec.segments[rec.segments.length - 1].index) {
          rec.provisional = { index: msg.index, start: msg.start, end: msg.end, label: msg.label, probabilities: msg.probabilities };
          if (!rec.result) window.renderResult(ui.result, liveResult(rec), { live: true });
        }
        break;
      case "progress":
        rec.heard = msg.seconds || rec.heard;
        if (!rec.result && rec.recorder.state === "recording") {
          window.renderResult(ui.result, liveResult(rec), { live: true });
        }
        break;
      case "final":
        rec.result = msg.result;
        window.renderResult(ui.result, rec.result, { live: false });
        rec.provisional = null;
        setStatus("Done: " + (rec.result.verdict ? rec.result.verdict.label : "no speech") + "." +
          (rec.note ? " " + rec.note : ""));
        listRecording(rec);
        break;
      case "error":
        rec.failed = true;
        showError((msg.message || "The server stopped the recording.") +
          (msg.code === "no_model" ? " Reload the page to see the current model versions." : ""));
        stopRecorder(rec);
        break;
      default:
        break;
    }
  }

  function beginRecording(rec) {
    rec.recorder.ondataavailable = (event) => {
      if (!event.data || !event.data.size) return;
      rec.chunks.push(event.data); // kept for playback, whatever happens to the connection
      if (rec.ws.readyState === WebSocket.OPEN && !rec.failed) rec.ws.send(event.data);
    };
    rec.recorder.onstop = () => {
      if (rec.ws.readyState === WebSocket.OPEN && !rec.failed) {
        rec.ws.send(JSON.stringify({ type: "stop" }));
        setStatus("Finishing the last segment…");
      }
      releaseMicrophone(rec);
    };
    rec.recorder.onerror = (event) => {
      showError("Recording failed (" + ((event.error && event.error.message) || "MediaRecorder error") + ").");
      stopRecorder(rec);
    };
    rec.recorder.start(TIMESLICE_MS);
    rec.startedAt = performance.now();
    ui.box.classList.add("recording");
    ui.stop.disabled = false;
    setStatus("Recording with " + describeModel(rec.model) + " — speak, press Stop when done.");
    rec.timer = setInterval(() => {
      const seconds = (performance.now() - rec.startedAt) / 1000;
      ui.time.textContent = seconds.toFixed(1) + " s";
      // Stop just before the server's limit instead of letting it refuse the recording.
      if (rec.maxSeconds && seconds >= rec.maxSeconds - 0.5) {
        rec.note = "It stopped at the limit of " + rec.maxSeconds + " s per recording.";
        stopRecorder(rec);
      }
    }, 100);
  }

  function describeModel(model) {
    return model && model.name ? model.name + " v" + model.version : "the model";
  }

  function stopRecorder(rec) {
    ui.stop.disabled = true;
    if (rec.timer) clearInterval(rec.timer);
    rec.timer = null;
    ui.box.classList.remove("recording");
    if (rec.recorder.state !== "inactive") rec.recorder.stop(); // onstop sends "stop"
    else releaseMicrophone(rec);
  }

  function releaseMicrophone(rec) {
    rec.stream.getTracks().forEach((t) => t.stop());
    meterStop(rec);
  }

  function onClose(rec, event) {
    if (rec.recorder.state !== "inactive") {
      rec.failed = true; // nothing more can be sent
      stopRecorder(rec);
    } else {
      releaseMicrophone(rec);
    }
    if (event.code === 4401) {
      showError("You are no longer logged in. Log in again, then record.");
    } else if (!rec.result && !rec.failed) {
      showError("The connection to the server closed (code " + event.code + ") before the result arrived.");
    }
    if (!rec.result) {
      setStatus(rec.chunks.length ? "The recording was kept below; it has no result." : "");
      rec.provisional = null;
      if (rec.segments.length) window.renderResult(ui.result, liveResult(rec), { live: false });
      else window.clearResult(ui.result); // no "Listening…" left behind
    }
    listRecording(rec);
    if (current === rec) current = null;
    controlsIdle();
  }

  function controlsIdle() {
    ui.start.disabled = !options.models.length || Boolean(unsupportedReason());
    ui.select.disabled = !options.models.length;
    ui.stop.disabled = true;
    ui.box.classList.remove("recording");
  }

  // --- this tab's recordings ----------------------------------------------------------------
  function listRecording(rec) {
    if (rec.listed || !rec.chunks.length) return;
    rec.listed = true;
    const blob = new Blob(rec.chunks, { type: rec.mime || rec.chunks[0].type });
    const item = { number: rec.number, url: URL.createObjectURL(blob), result: rec.result, mime: blob.type };
    recordings.push(item);
    ui.empty.hidden = true;

    const li = document.createElement("li");
    li.dataset.number = String(item.number);
    const name = document.createElement("span");
    name.className = "rec-name";
    name.textContent = "Recording " + item.number;
    const summary = document.createElement("span");
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = item.url;
    const show = document.createElement("button");
    show.type = "button";
    show.textContent = "Show result";
    const download = document.createElement("a");
    download.href = item.url;
    download.download = "recording-" + item.number + extensionFor(item.mime);
    download.textContent = "Download";
    if (item.result) {
      const r = item.result;
      const label = r.verdict ? r.verdict.label : "no speech";
      summary.innerHTML = "";
      if (r.verdict) {
        const chip = document.createElement("span");
        chip.className = "rv-swatch small";
        chip.style.background = window.emotionColor(r.verdict.label);
        summary.appendChild(chip);
      }
      summary.appendChild(document.createTextNode(" " + label + " · " + r.duration.toFixed(1) + " s · " +
        r.segments.length + " segment" + (r.segments.length === 1 ? "" : "s")));
      show.addEventListener("click", () => {
        clearError();
        window.renderResult(ui.result, item.result, { live: false });
        setStatus("Showing the result of recording " + item.number + ".");
        for (const other of ui.list.children) other.classList.toggle("selected", other === li);
        ui.result.scrollIntoView({ behavior: "smooth", block: "start" });
      });
    } else {
      summary.className = "muted";
      summary.textContent = "no result";
      show.disabled = true;
    }
    li.append(name, summary, audio, show, download);
    ui.list.prepend(li);
    for (const other of ui.list.children) other.classList.toggle("selected", other === li && Boolean(item.result));
  }

  function extensionFor(mime) {
    if (mime.startsWith("audio/webm")) return ".webm";
    if (mime.startsWith("audio/ogg")) return ".ogg";
    if (mime.startsWith("audio/mp4")) return ".m4a";
    return ".audio";
  }

  // --- wiring ------------------------------------------------------------------------------
  const reason = unsupportedReason();
  if (reason && options.models.length) {
    showError(reason);
    setStatus("");
  }
  controlsIdle();
  ui.start.addEventListener("click", () => { if (!current) start(); });
  ui.stop.addEventListener("click", () => { if (current) stopRecorder(current); });
  window.addEventListener("beforeunload", (event) => {
    if (current && current.recorder.state === "recording") event.preventDefault();
  });
})();
