"""The WeChat Official Account callback (/wechat): verifies, decrypts and parses WeChat's requests (bot.clients.wechat
speaks the protocol), asks Rasa, and answers passively within WeChat's 5 s or later through the service API."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List

from aiohttp import web

from bot.clients import keys, wechat
from bot.clients.rasa import RasaUnavailable
from bot.web.views import MAX_MESSAGE_CHARS, to_staff, unavailable_text

logger = logging.getLogger(__name__)


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


async def _wechat_answer(app: web.Application, fields: Dict[str, str]):
    """The text to reply passively, or None to reply "success" (the answer then goes through the service API)."""
    msg_type = fields.get("MsgType", "")
    open_id = fields.get("FromUserName", "")
    if msg_type == "event":
        if fields.get("Event", "").lower() == "subscribe":
            return await _ask_rasa_text(app, f"wechat:{open_id}", "/greet")
        return None
    if msg_type != "text":
        return (
            "您好，我暂时只能看懂文字消息。请直接打字问我，比如“去外省打工有交通补贴吗”；语音可以用输入法转成文字再发。"
        )
    message = (fields.get("Content") or "").strip()[:MAX_MESSAGE_CHARS]
    if not message:
        return "请用文字告诉我您想问什么。"
    key = fields.get("MsgId") or f"{open_id}:{fields.get('CreateTime', '')}"
    if app[keys.WECHAT_TURNS].get(key) is None and await to_staff(f"wechat:{open_id}", message):
        return None  # staff have this conversation; they answer through the service API
    cache: wechat.TurnCache = app[keys.WECHAT_TURNS]
    turn = cache.get(key)
    if turn is None:
        task = asyncio.ensure_future(_ask_rasa_text(app, f"wechat:{open_id}", message))
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


async def _ask_rasa_text(app: web.Application, sender: str, message: str) -> str:
    try:
        replies = await app[keys.RASA].send(sender, message, "wechat")
    except RasaUnavailable as e:
        logger.warning("Rasa unavailable for a WeChat message: %s", e)
        return unavailable_text(app[keys.SETTINGS])
    return as_wechat_text(replies)


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
