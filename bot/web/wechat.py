"""The WeChat Official Account callback (/wechat): verifies, decrypts and parses WeChat's requests (bot.clients.wechat
speaks the protocol), asks Rasa, and answers passively within WeChat's 5 s or later through the service API.

Text, and voice that WeChat has recognised (<Recognition>), go to Rasa; every other message gets a short polite reply
in words, so a resident never meets silence. Events other than subscribe get "success", as the protocol wants."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from typing import Any, Dict, List

from aiohttp import web

from bot.clients import keys, wechat
from bot.clients.rasa import RasaUnavailable
from bot.text_normalization import clean_input
from bot.web.views import MAX_MESSAGE_CHARS, unavailable_text

logger = logging.getLogger(__name__)

EMPTY_TEXT_REPLY = "请用文字告诉我您想问什么。"
VOICE_NOT_RECOGNISED_REPLY = (
    "您的语音我这边听不了。请打字问我，或者用输入法的话筒把话转成文字再发；不方便的话可以请家人或网格员帮忙。"
)
UNSURE_VOICE_PREFIX = "我听到的是：“{heard}”。如果不对，请再说一遍或打字。"
# what we say to the messages we cannot read, by MsgType; voice has its own handling, events get "success"
NOT_TEXT_REPLIES = {
    "image": "谢谢您发来的图片！不过我看不了图片，请用文字说说您想问什么。",
    "video": "谢谢您发来的视频！不过我看不了视频，请用文字说说您想问什么。",
    "shortvideo": "谢谢您发来的视频！不过我看不了视频，请用文字说说您想问什么。",
    "location": "谢谢您发来的位置！不过我只看得懂文字，请打字告诉我您想问什么。",
    "link": "谢谢您分享的链接！不过我打不开链接，请用文字说说您想问的事。",
    "file": "谢谢您发来的文件！不过我打不开文件，请用文字说说您想问什么；要交材料的话，请找社区工作人员。",
}
OTHER_MESSAGE_REPLY = "您好，这种消息我暂时看不了。请直接打字问我，比如“去外省打工有交通补贴吗”。"
_CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


async def wechat_verify(request: web.Request) -> web.Response:
    """URL verification: echo `echostr` when the signature is right."""
    settings = request.app[keys.SETTINGS]
    q = request.query
    signed = (q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
    if not wechat.check_signature(settings.wechat_token, *signed):
        return web.Response(status=403, text="forbidden")
    return web.Response(text=q.get("echostr", ""))


async def wechat_message(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    if not wechat.check_signature(settings.wechat_token, q.get("signature", ""), timestamp, nonce):
        return web.Response(status=403, text="forbidden")
    safe_mode = q.get("encrypt_type") == "aes"
    try:
        fields = wechat.parse_xml(await request.read())
        if safe_mode:
            crypto = request.app[keys.WECHAT_CRYPTO]
            if crypto is None:
                return web.Response(status=403, text="safe mode is not configured")
            encrypted = fields.get("Encrypt", "")
            signed = (q.get("msg_signature", ""), timestamp, nonce, encrypted)
            if not wechat.check_signature(settings.wechat_token, *signed):
                return web.Response(status=403, text="forbidden")
            fields = wechat.parse_xml(crypto.decrypt(encrypted).encode("utf-8"))
    except wechat.WeChatError as e:
        logger.warning("refused a WeChat message: %s", e)
        return web.Response(status=400, text="bad request")

    open_id, account = fields.get("FromUserName", ""), fields.get("ToUserName", "")
    content = await _wechat_answer(request.app, fields)
    if content is None:
        return web.Response(text="success")
    reply = wechat.text_reply(open_id, account, content)
    if safe_mode:
        reply = wechat.encrypted_reply(request.app[keys.WECHAT_CRYPTO], settings.wechat_token, reply, nonce)
    return web.Response(text=reply, content_type="application/xml")


async def _wechat_answer(app: web.Application, fields: Dict[str, str]) -> str | None:
    """The text to reply passively, or None to reply "success" (the answer then goes through the service API)."""
    msg_type = fields.get("MsgType", "")
    open_id = fields.get("FromUserName", "")
    if msg_type == "event":
        if fields.get("Event", "").lower() == "subscribe":
            return await _ask_rasa_text(app, f"wechat:{open_id}", "/greet")
        return None  # unsubscribe, CLICK, VIEW, SCAN…: WeChat expects "success" and nobody is waiting for words
    if msg_type == "text":
        message = clean_input(fields.get("Content") or "").strip()[:MAX_MESSAGE_CHARS]
        if not message:
            return EMPTY_TEXT_REPLY
        return await _answer_turn(app, fields, message)
    if msg_type == "voice":
        heard = recognised_text(clean_input(fields.get("Recognition") or ""))[:MAX_MESSAGE_CHARS]
        if not heard:
            return VOICE_NOT_RECOGNISED_REPLY
        prefix = UNSURE_VOICE_PREFIX.format(heard=heard) + "\n" if recognition_is_unsure(heard) else ""
        return await _answer_turn(app, fields, heard, prefix)
    return NOT_TEXT_REPLIES.get(msg_type, OTHER_MESSAGE_REPLY)


def recognised_text(recognition: str | None) -> str:
    """WeChat's speech recognition without the whitespace around it and the punctuation it puts at the end."""
    text = (recognition or "").strip()
    while text and (text[-1].isspace() or unicodedata.category(text[-1]).startswith("P")):
        text = text[:-1]
    return text.strip()


def recognition_is_unsure(heard: str) -> bool:
    """Very short (two characters or fewer, punctuation and spaces aside) or without a Chinese character."""
    core = "".join(c for c in heard if not (c.isspace() or unicodedata.category(c)[0] in "PZ"))
    return len(core) <= 2 or not _CHINESE.search(core)


async def _answer_turn(app: web.Application, fields: Dict[str, str], message: str, prefix: str = "") -> str | None:
    """Rasa's answer to one resident message, asked once per MsgId however often WeChat retries; None when the
    answer is not ready within the deadline (it then goes through the service API)."""
    open_id = fields.get("FromUserName", "")
    key = fields.get("MsgId") or f"{open_id}:{fields.get('CreateTime', '')}"
    cache: wechat.TurnCache = app[keys.WECHAT_TURNS]
    turn = cache.get(key)
    if turn is None:
        task = asyncio.ensure_future(_ask_rasa_text(app, f"wechat:{open_id}", message, prefix))
        turn = cache.add(key, wechat.Turn(task))
        task.add_done_callback(lambda _t: _deliver_late(app, turn, open_id))
    deadline = app[keys.SETTINGS].wechat_reply_deadline - (time.monotonic() - turn.created)
    try:
        content = await asyncio.wait_for(asyncio.shield(turn.task), timeout=max(0.0, deadline))
    except asyncio.TimeoutError:
        return None  # "success" now; _deliver_late sends the answer when it comes
    if turn.delivered == "service":
        return None
    turn.delivered = "passive"
    return content


def _deliver_late(app: web.Application, turn: wechat.Turn, open_id: str) -> None:
    async def send() -> None:
        # give the handler waiting on this turn the chance to answer passively first
        await asyncio.sleep(0)
        if turn.delivered is not None or turn.task.cancelled() or turn.task.exception() is not None:
            return
        if time.monotonic() - turn.created < app[keys.SETTINGS].wechat_reply_deadline:
            return  # answered in time: a handler is replying passively
        turn.delivered = "service"
        try:
            await app[keys.WECHAT_API].send_text(open_id, turn.task.result())
        except (wechat.WeChatError, OSError, asyncio.TimeoutError) as e:
            logger.error("could not deliver a late answer through the service API: %s", e)

    app[keys.BACKGROUND].add(asyncio.ensure_future(send()))


async def _ask_rasa_text(app: web.Application, sender: str, message: str, prefix: str = "") -> str:
    """Rasa's answer as one WeChat text, after `prefix` (what we heard, when a voice's recognition is unsure)."""
    try:
        replies = await app[keys.RASA].send(sender, message, "wechat")
    except RasaUnavailable as e:
        logger.warning("Rasa unavailable for a WeChat message: %s", e)
        return prefix + unavailable_text(app[keys.SETTINGS])
    return prefix + as_wechat_text(replies)


def as_wechat_text(replies: List[Dict[str, Any]]) -> str:
    """Rasa's replies as one WeChat text: WeChat has no buttons, so their titles become things to reply."""
    parts, options = [], []
    for reply in replies:
        if reply.get("text"):
            parts.append(reply["text"])
        options += [b.get("title", "") for b in reply.get("buttons") or [] if b.get("title")]
    if options:
        parts.append("您可以回复：" + "、".join(dict.fromkeys(options)))
    return "\n".join(parts) or "请再说一遍？"
