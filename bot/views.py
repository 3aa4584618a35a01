"""Request handlers of the gateway: the pages, /api/chat, /healthz and the WeChat callback."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from typing import Any, Dict, List

from aiohttp import web
from sqlalchemy import text as sql_text

from actions import db, support
from bot import keys, wechat
from bot.rasa_client import RasaUnavailable

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
# readable Chinese in the JSON, not \u escapes
json_response = functools.partial(web.json_response, dumps=functools.partial(json.dumps, ensure_ascii=False))
CHANNELS = ("web", "kiosk", "api")
NOT_TEXT = "您好，我暂时只能看懂文字消息。请直接打字问我，比如“去外省打工有交通补贴吗”；语音可以用输入法转成文字再发。"


def json_error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": code, "message": message}, status=status)


def unavailable_text(settings) -> str:
    contact = settings.contact_placeholders()["contact"]
    return f"抱歉，助手暂时忙不过来，请稍后再试。着急的话请联系{contact}。"


# ---------------------------------------------------------------- pages


async def chat_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[keys.STATIC_DIR] / "chat.html")


async def kiosk_page(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    html = (request.app[keys.STATIC_DIR] / "kiosk.html").read_text(encoding="utf-8")
    return web.Response(
        text=html.replace("{{IDLE_SECONDS}}", str(int(settings.kiosk_idle_seconds))), content_type="text/html"
    )


# ---------------------------------------------------------------- /api/chat


async def api_chat(request: web.Request) -> web.Response:
    """The Rasa REST channel's contract: {"sender", "message"} in, [{"recipient_id", "text", "buttons"?}] out."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "body_too_large", "请求太大（最多64KB）")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return json_error(400, "not_json", "请求不是有效的JSON")
    if not isinstance(body, dict):
        return json_error(400, "not_an_object", '请求应为JSON对象：{"sender": "...", "message": "..."}')
    sender, message = body.get("sender"), body.get("message")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > 128:
        return json_error(400, "bad_sender", "sender 应为1到128个字符的字符串")
    if not isinstance(message, str):
        return json_error(400, "bad_message", "message 应为字符串")
    if not message.strip():
        return json_error(400, "empty_message", "message 不能为空")
    if len(message) > MAX_MESSAGE_CHARS:
        return json_error(413, "message_too_long", f"消息太长（最多{MAX_MESSAGE_CHARS}个字）")
    channel = body.get("channel", "api")
    if channel not in CHANNELS:
        return json_error(400, "bad_channel", f"channel 应为 {'/'.join(CHANNELS)} 之一")
    if await _to_staff(sender, message):
        return json_response([])  # a staff member has the conversation: the assistant does not talk over them
    try:
        replies = await request.app[keys.RASA].send(sender, message, channel)
    except RasaUnavailable as e:
        logger.warning("Rasa unavailable for a %s message: %s", channel, e)
        text = unavailable_text(request.app[keys.SETTINGS])
        return json_response([{"recipient_id": sender, "text": text}], status=503)
    return json_response(replies)


async def _to_staff(conversation_id: str, message: str) -> bool:
    """While the conversation has an open ticket, the resident's message goes to the ticket, not to the assistant."""

    def route() -> bool:
        with db.session_scope() as session:
            ticket = support.open_ticket_for(session, conversation_id)
            if ticket is None:
                return False
            support.add_message(session, ticket, support.RESIDENT, message)
            return True

    return await asyncio.to_thread(route)


async def staff_messages(request: web.Request) -> web.Response:
    """What staff said to a conversation since message `after`; the chat page and the kiosk poll this."""
    sender = request.query.get("sender", "")
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return json_error(400, "bad_after", "after 应为整数")
    if not sender or len(sender) > 128:
        return json_error(400, "bad_sender", "sender 应为1到128个字符的字符串")

    def load():
        with db.session_scope() as session:
            return support.staff_messages_after(session, sender, after)

    return json_response(await asyncio.to_thread(load))


# ---------------------------------------------------------------- /healthz


async def healthz(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    rasa = request.app[keys.RASA]
    started = time.perf_counter()
    rasa_ok, actions_ok, database_ok = await asyncio.gather(
        rasa.healthy(), rasa.healthy(settings.actions_url.rstrip("/") + "/health"), _database_ok()
    )
    dependencies = {"rasa": rasa_ok, "action_server": actions_ok, "database": database_ok}
    ok = all(dependencies.values())
    return json_response(
        {
            "status": "ok" if ok else "degraded",
            "dependencies": {name: "ok" if up else "down" for name, up in dependencies.items()},
            "checked_in_ms": round((time.perf_counter() - started) * 1000),
        },
        status=200 if ok else 503,
    )


async def _database_ok() -> bool:
    def check() -> bool:
        with db.session_scope() as session:
            return session.execute(sql_text("SELECT 1")).scalar() == 1

    try:
        return await asyncio.to_thread(check)
    except Exception:  # any failure means the same thing here: not reachable
        logger.exception("database health check failed")
        return False


# ---------------------------------------------------------------- /wechat


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
    if app[keys.WECHAT_TURNS].get(key) is None and await _to_staff(f"wechat:{open_id}", message):
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
