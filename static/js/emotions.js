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
