/* 安居助手: the conversation shared by the chat page and the kiosk. Every piece of text is set with textContent,
   never as HTML, so a message like <img src=x onerror=alert(1)> shows as the characters it is. */
"use strict";

function newSenderId(prefix) {
  const random = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
  return prefix + "-" + random;
}

/* Each page talks to its own door (/api/web/…, /api/kiosk/…); the conversation id goes in POST bodies only.
   The chat page keeps the conversation in sessionStorage (it survives a reload, not the tab) until a reply shows
   household data ("private"): from then on nothing is stored, and 退出 or a new conversation forgets it all. */
class Conversation {
  /* options: {log, quickReplies, form, input, typing, channel, storageKey, onBotMessage, readAloud} */
  constructor(options) {
    this.o = options;
    this.busy = false;
    this.state = this.load() || { sender: newSenderId(options.channel), messages: [], staffSeen: 0 };
    this.private = false;
    this.state.messages.forEach((m) => this.render(m, false));
    this.scroll();
    if (this.o.form) {
      this.o.form.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = this.o.input.value.trim();
        if (text) { this.o.input.value = ""; this.send(text, text); }
      });
    }
  }

  /* Staff replies (after 转人工) arrive by polling; they show as the assistant's bubbles, marked 工作人员. */
  startPolling(seconds) {
    setInterval(() => this.poll(), seconds * 1000);
  }

  async poll() {
    try {
      const after = this.state.staffSeen || 0;
      const response = await this.post("messages", { sender: this.state.sender, after: after });
      if (!response.ok) return;
      for (const message of await response.json()) {
        this.state.staffSeen = Math.max(this.state.staffSeen || 0, message.id);
        this.add({ from: "staff", text: message.text });
        if (this.o.onBotMessage) this.o.onBotMessage([{ text: message.text }]);
      }
      this.scroll();
    } catch (e) { /* offline: try again next time */ }
  }

  post(what, body) {
    return fetch(`/api/${this.o.channel}/${what}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  }

  load() {
    if (!this.o.storageKey) return null;
    try { localStorage.removeItem(this.o.storageKey); } catch (e) { /* what older pages kept there */ }
    try { return JSON.parse(sessionStorage.getItem(this.o.storageKey)); } catch (e) { return null; }
  }

  save() {
    if (!this.o.storageKey) return;
    try {
      if (this.private) sessionStorage.removeItem(this.o.storageKey);
      else sessionStorage.setItem(this.o.storageKey, JSON.stringify(this.state));
    } catch (e) { /* private mode */ }
  }

  reset() {
    const old = this.state.sender;
    // forget any verification of the old conversation on the server as well; no one waits for the answer
    this.post("chat", { sender: old, message: "/forget_verification" }).catch(() => {});
    this.private = false;
    this.state = { sender: newSenderId(this.o.channel), messages: [], staffSeen: 0 };
    this.save();
    this.o.log.replaceChildren();
    this.setQuickReplies([]);
  }

  forgetShown() {
    this.private = false;
    this.state.messages = [];
    this.o.log.replaceChildren();
    this.save();
  }

  async send(text, shown) {
    if (this.busy) return;
    this.busy = true;
    this.add({ from: "user", text: shown });
    this.setQuickReplies([]);
    this.o.typing.hidden = false;
    this.scroll();
    let replies;
    try {
      const response = await this.post("chat", { sender: this.state.sender, message: text });
      replies = await response.json();
      if (!Array.isArray(replies)) replies = [{ text: replies.message || "请求没有成功，请再试一次。" }];
    } catch (e) {
      replies = [{ text: "网络好像断了，请检查网络后再试。" }];
    }
    this.o.typing.hidden = true;
    if (replies.some((r) => r.forget)) this.forgetShown();  // 退出: what was shown of the household goes too
    if (replies.some((r) => r.private)) this.private = true;  // household data: nothing more goes into storage
    let buttons = [];
    for (const reply of replies) {
      if (reply.text) this.add({ from: "bot", text: reply.text });
      if (reply.buttons && reply.buttons.length) buttons = reply.buttons;
    }
    this.setQuickReplies(buttons);
    this.busy = false;
    this.scroll();
    if (this.o.onBotMessage) this.o.onBotMessage(replies);
  }

  add(message) {
    this.state.messages.push(message);
    this.save();
    this.render(message, true);
  }

  render(message, fresh) {
    const row = document.createElement("div");
    row.className = "row " + (message.from === "user" ? "from-user" : "from-bot") +
      (message.from === "staff" ? " from-staff" : "");
    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.textContent = { user: "我", staff: "工作人员" }[message.from] || "助手";
    avatar.setAttribute("aria-hidden", "true");
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const who = document.createElement("span");
    who.className = "sr-only";
    who.textContent = { user: "我说：", staff: "工作人员说：" }[message.from] || "助手说：";
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = message.text;
    bubble.append(who, text);
    if (message.from !== "user" && this.o.readAloud && "speechSynthesis" in window) {
      const speak = document.createElement("button");
      speak.type = "button";
      speak.className = "speak";
      speak.textContent = "朗读";
      speak.setAttribute("aria-label", "朗读这条回答");
      speak.addEventListener("click", () => readAloud(message.text));
      bubble.append(speak);
    }
    row.append(avatar, bubble);
    this.o.log.append(row);
  }

  setQuickReplies(buttons) {
    const box = this.o.quickReplies;
    box.replaceChildren();
    for (const b of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "quick";
      button.textContent = b.title;
      button.addEventListener("click", () => this.send(b.payload, b.title));
      box.append(button);
    }
    box.hidden = buttons.length === 0;
  }

  scroll() {
    const log = this.o.log;
    log.scrollTop = log.scrollHeight;
  }
}

function readAloud(text) {
  if (!("speechSynthesis" in window)) return;
  speechSynthesis.cancel();
  const utterance = new SpeechSynthesisUtterance(text.replace(/（依据：[^）]*）/g, ""));
  utterance.lang = "zh-CN";
  utterance.rate = 0.9;
  speechSynthesis.speak(utterance);
}
