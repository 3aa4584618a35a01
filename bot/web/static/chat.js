/* The chat page: 关怀模式 (larger text) and the conversation. Kept in a file so the page can forbid inline script. */
"use strict";
const care = document.getElementById("care");
function setCare(on) {
  document.body.classList.toggle("care-mode", on);
  care.setAttribute("aria-pressed", String(on));
  care.textContent = on ? "关怀模式：开" : "关怀模式";
  try { localStorage.setItem("anju.care", on ? "1" : "0"); } catch (e) {}
}
care.addEventListener("click", () => setCare(!document.body.classList.contains("care-mode")));
setCare(localStorage.getItem("anju.care") === "1");
const conversation = new Conversation({
  log: document.getElementById("log"), quickReplies: document.getElementById("quick"),
  form: document.getElementById("form"), input: document.getElementById("input"),
  typing: document.getElementById("typing"), channel: "web", storageKey: "anju.chat", readAloud: false,
});
if (conversation.state.messages.length === 0) conversation.send("/greet", "你好");
conversation.startPolling(3);
