/* Copy and read-aloud buttons on answers: one tap each. */
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy, button.speak");
  if (!button) return;
  const text = button.dataset.text || "";
  if (button.classList.contains("copy")) {
    const done = () => { button.textContent = "已复制"; setTimeout(() => { button.textContent = "复制"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => {});
    else { const area = document.createElement("textarea"); area.value = text; document.body.append(area);
      area.select(); document.execCommand("copy"); area.remove(); done(); }
  } else if ("speechSynthesis" in window) {
    speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(text.replace(/（依据：[^）]*）/g, ""));
    u.lang = "zh-CN"; u.rate = 0.9; speechSynthesis.speak(u);
  }
});
