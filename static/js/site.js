// Loaded in <head> of every page, before anything draws: the theme, one way to write numbers
// and times (window.fmt), the folding navigation and the theme toggle.
(function () {
  "use strict";
  const root = document.documentElement;
  const KEY = "ser-theme";
  const system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  let memory = null;  // the choice when the browser blocks storage: kept for this page only
  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return memory; }
  }
  function choose(value) {  // "dark", "light" or null (follow the system)
    try { if (value) localStorage.setItem(KEY, value); else localStorage.removeItem(KEY); } catch (e) { memory = value; }
  }
  function apply() {
    const choice = stored();
    const theme = choice === "dark" || choice === "light" ? choice : (system && system.matches ? "dark" : "light");
    root.dataset.theme = theme;
    root.dataset.themeChoice = choice || "system";
    document.dispatchEvent(new CustomEvent("ser:theme", { detail: theme }));
  }
  apply();
  if (system && system.addEventListener) system.addEventListener("change", () => { if (!stored()) apply(); });

  // ---- numbers and times: one format everywhere (the server's filters write the same) ----
  // Scores (UA, WA, F1, recall) with three decimals, rounded half up on the decimal value as
  // Django's floatformat does; shares as percentages with one decimal.
  function round(x, digits) {
    const decimal = Number(x).toPrecision(15);  // the decimal the server sees (repr), not the binary one
    return Number(Math.round(Number(decimal + "e" + digits)) + "e-" + digits).toFixed(digits);
  }
  const valid = (x) => x !== null && x !== undefined && x !== "" && isFinite(Number(x));
  const tz = root.dataset.tz || "UTC";
  function parts(value) {
    const date = value instanceof Date ? value : new Date(typeof value === "number" ? value * 1000 : value);
    const out = {};
    for (const p of new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(date)) out[p.type] = p.value;
    return out;
  }
  window.fmt = {
    score: (x) => (valid(x) ? round(x, 3) : "–"),
    pct: (x) => (valid(x) ? round(100 * x, 1) + "%" : "–"),
    // Unix seconds, a Date or an ISO string, in the server's time zone (as the pages write it).
    datetime: (t) => { const p = parts(t); return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`; },
    time: (t) => { const p = parts(t); return `${p.hour}:${p.minute}:${p.second}`; },
    duration: function (seconds) {
      if (!valid(seconds)) return "–";
      let s = Math.max(0, Math.round(Number(seconds)));
      const h = Math.floor(s / 3600); s -= 3600 * h;
      const m = Math.floor(s / 60); s -= 60 * m;
      return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
    },
  };

  function copyText(button, source) {
    const text = source.textContent.trim();
    const status = document.getElementById("copy-status");
    const done = (ok) => {
      button.textContent = ok ? "Copied" : "Copy";
      if (status) status.textContent = ok ? "Copied to the clipboard." : "The browser refused to copy: select the text and copy it yourself.";
      if (ok) setTimeout(() => { button.textContent = "Copy"; }, 2000);
    };
    const fallback = () => {  // no Clipboard API (a plain-http page): select it and ask the browser
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(() => done(true), fallback);
    else fallback();
  }

  // ---- the top bar: folding navigation and the theme toggle ----
  document.addEventListener("DOMContentLoaded", function () {
    const bar = document.querySelector(".topbar");
    const toggle = document.getElementById("nav-toggle");
    if (bar && toggle) {
      toggle.addEventListener("click", () => {
        const open = bar.classList.toggle("open");
        toggle.setAttribute("aria-expanded", String(open));
      });
    }
    // Copy buttons: data-copy names the element whose text they copy.
    for (const button of document.querySelectorAll("button[data-copy]")) {
      button.addEventListener("click", () => copyText(button, document.getElementById(button.dataset.copy)));
    }
    const themeButton = document.getElementById("theme-toggle");
    if (themeButton) {
      const label = () => {
        const dark = root.dataset.theme === "dark";
        themeButton.textContent = dark ? "☀ Light" : "☾ Dark";
        themeButton.setAttribute("aria-label", dark ? "Switch to the light theme" : "Switch to the dark theme");
        themeButton.setAttribute("aria-pressed", String(dark));
      };
      label();
      themeButton.addEventListener("click", () => {
        const next = root.dataset.theme === "dark" ? "light" : "dark";
        // Choosing what the system already shows goes back to following the system.
        choose(system && (next === "dark") === system.matches ? null : next);
        apply();
        label();
      });
    }
  });
})();
