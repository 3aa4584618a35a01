"""Request handlers of the resident doors on the web: the chat page, the kiosk, /api/chat, staff replies, /healthz."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time

from aiohttp import web

from bot import db, tickets
from bot.clients import keys
from bot.clients.rasa import RasaUnavailable

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
# readable Chinese in the JSON, not \u escapes
json_response = functools.partial(web.json_response, dumps=functools.partial(json.dumps, ensure_ascii=False))
CHANNELS = ("web", "kiosk", "api")


def json_error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": code, "message": message}, status=status)


def unavailable_text(settings) -> str:
    contact = settings.contact_placeholders()["contact"]
    return f"抱歉，助手暂时忙不过来，请稍后再试。着急的话请联系{contact}。"


def no_answer_text(settings) -> str:
    contact = settings.contact_placeholders()["contact"]
    return f"抱歉，这一句我这边没能回答上来，请换个说法再问一次。着急的话请联系{contact}。"


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
    try:
        replies = await request.app[keys.RASA].send(sender, message, channel)
    except RasaUnavailable as e:
        logger.warning("Rasa unavailable for a %s message: %s", channel, e)
        text = unavailable_text(request.app[keys.SETTINGS])
        return json_response([{"recipient_id": sender, "text": text}], status=503)
    if not any(isinstance(r, dict) and r.get("text") for r in replies):
        # Rasa answered nothing (an action failed, the action server is down): the resident still gets words
        logger.warning("Rasa returned no text for a %s message", channel)
        replies = [*replies, {"recipient_id": sender, "text": no_answer_text(request.app[keys.SETTINGS])}]
    return json_response(replies)


async def staff_messages(request: web.Request) -> web.Response:
    """What staff said to a conversation since message `after`; the chat page and the kiosk poll this."""
    sender = request.query.get("sender", "")
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return json_error(400, "bad_after", "after 应为整数")
    if not sender or len(sender) > 128:
        return json_error(400, "bad_sender", "sender 应为1到128个字符的字符串")

    return json_response(await asyncio.to_thread(db.run, tickets.staff_messages_after, sender, after))


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
    try:
        return await asyncio.to_thread(db.run, db.ping)
    except Exception:  # any failure means the same thing here: not reachable
        logger.exception("database health check failed")
        return False
