/* The community-hall kiosk: big topic buttons, a keypad for the 6 ID characters, read-aloud, and an idle timer that
   clears everything so the next person never sees the previous person's data. */
"use strict";
(function () {
  const idleSeconds = Number(document.body.dataset.idleSeconds) || 90;
  const topics = document.getElementById("topics");
  const moreTopics = document.getElementById("more-topics");  // the topics stay one touch away after an answer
  const keypad = document.getElementById("keypad");
  const codeBox = document.getElementById("code");
  const ok = document.getElementById("code-ok");
  let code = "";

  function showCode() {
    codeBox.textContent = (code + "______").slice(0, 6);
    ok.disabled = code.length !== 6;
  }

  const conversation = new Conversation({
    log: document.getElementById("log"), quickReplies: document.getElementById("quick"),
    form: document.getElementById("form"), input: document.getElementById("input"),
    typing: document.getElementById("typing"), channel: "kiosk", storageKey: null, readAloud: true,
    onBotMessage(replies) {
      // the assistant asks for the 6 characters: offer the keypad instead of the phone-style keyboard
      const asking = replies.some((r) => (r.text || "").includes("最后6位"));
      keypad.hidden = !asking;
      code = ""; showCode();
      moreTopics.hidden = false;
    },
  });

  function start() {
    topics.hidden = false;
    moreTopics.hidden = true;
    keypad.hidden = true;
    code = ""; showCode();
  }

  moreTopics.addEventListener("click", () => {
    topics.hidden = false;
    moreTopics.hidden = true;
    topics.scrollIntoView({ behavior: "smooth", block: "start" });
  });
  document.querySelectorAll("#topics button").forEach((button) => {
    button.addEventListener("click", () => {
      topics.hidden = true;
      conversation.send(button.dataset.payload, button.textContent);
    });
  });
  document.getElementById("form").addEventListener("submit", () => { topics.hidden = true; });
  document.querySelectorAll("#keypad .keys button").forEach((button) => {
    button.addEventListener("click", () => {
      const key = button.dataset.key;
      if (key === "back") code = code.slice(0, -1);
      else if (code.length < 6) code += key;
      showCode();
    });
  });
  ok.addEventListener("click", () => {
    if (code.length !== 6) return;
    const typed = code;
    code = ""; showCode();
    keypad.hidden = true;
    conversation.send(typed, "●●●●●●");  // the screen never shows the characters after they are sent
  });

  function restart() {
    if ("speechSynthesis" in window) speechSynthesis.cancel();
    conversation.reset();
    start();
  }
  document.getElementById("restart").addEventListener("click", restart);

  conversation.startPolling(3);
  let timer = null;
  function touched() {
    clearTimeout(timer);
    timer = setTimeout(restart, idleSeconds * 1000);
  }
  ["pointerdown", "keydown", "touchstart", "input"].forEach((type) => document.addEventListener(type, touched, true));
  touched();
  start();
})();
