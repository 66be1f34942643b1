// One colour per emotion, used by every chart and bar in the app.
window.EMOTION_COLORS = {
  neutral: "#8c8c8c",
  calm: "#7fb3d5",
  happy: "#f4c430",
  sad: "#3b6fb6",
  angry: "#d62728",
  fearful: "#8e44ad",
  disgust: "#2e8b57",
  surprised: "#ff8c1a",
  boredom: "#a0826d",
  frustrated: "#c0392b",
  excited: "#e84393",
};
// Canonical order (the engine's CANONICAL_LABELS). JSON objects stored in PostgreSQL (jsonb)
// come back with their keys re-ordered, so pages sort with these instead of trusting key order.
window.EMOTION_ORDER = Object.keys(window.EMOTION_COLORS);
window.sortEmotions = function (labels) {
  const rank = (l) => { const i = window.EMOTION_ORDER.indexOf(l); return i < 0 ? 999 : i; };
  return [...labels].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
};
window.sortNatural = function (names) {
  return [...names].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
};
window.emotionColor = function (label) {
  return window.EMOTION_COLORS[label] || "#555";
};
// Every template reads its server data from <script type="application/json"> blocks.
window.readJson = function (id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
};
// Websocket URL for a path on this server (ws: or wss: to match the page).
window.wsUrl = function (path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
};
