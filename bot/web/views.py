"""Request handlers of the resident doors on the web: the chat page, the kiosk, /api/chat, staff replies, /healthz."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from typing import Any, Dict, List

from aiohttp import web

from bot import db, throttle, tickets
from bot.clients import keys
from bot.clients.rasa import RasaTooSlow, RasaUnavailable
from bot.privacy import FORGOTTEN_REPLY_MARK, PRIVATE_REPLY_MARK
from bot.text_normalization import clean_input
from bot.throttle import SLOW_DOWN_TEXT

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
HEALTH_CHECK_SECONDS = 2  # each dependency's check; they run side by side, so /healthz answers within about this
# readable Chinese in the JSON, not \u escapes
json_response = functools.partial(web.json_response, dumps=functools.partial(json.dumps, ensure_ascii=False))


def json_error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": code, "message": message}, status=status)


def unavailable_text(settings) -> str:
    contact = settings.contact_placeholders()["contact"]
    return f"抱歉，助手暂时忙不过来，请稍后再试。着急的话请联系{contact}。"


def slow_text(settings) -> str:
    contact = settings.contact_placeholders()["contact"]
    return f"抱歉，助手这会儿有点慢，没能及时回答，请稍后再试，把这句话再发一次。着急的话请联系{contact}。"


def no_answer_text(settings) -> str:
    contact = settings.contact_placeholders()["contact"]
    return f"抱歉，这一句我这边没能回答上来，请稍后再问一次，或者换个说法。着急的话请联系{contact}。"


# ---------------------------------------------------------------- pages


async def chat_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[keys.STATIC_DIR] / "chat.html")


async def kiosk_page(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    html = (request.app[keys.STATIC_DIR] / "kiosk.html").read_text(encoding="utf-8")
    return web.Response(
        text=html.replace("{{IDLE_SECONDS}}", str(int(settings.kiosk_idle_seconds))), content_type="text/html"
    )


# ---------------------------------------------------------------- the JSON doors

# Each door has its own namespace of conversations: Rasa sees "<door>:<sender>", so a client of one door can never
# address a conversation of another (WeChat's are "wechat:<openid>", bot.web.wechat). The door comes from the route,
# never from the request body. Conversation ids travel in POST bodies only, never in URLs (access logs).
DOORS = ("api", "web", "kiosk")
MAX_AFTER_ID = 2**63 - 1


def conversation_id(door: str, sender: str) -> str:
    return f"{door}:{sender}"


async def _json_body(request: web.Request) -> Dict[str, Any] | web.Response:
    """The request's JSON object, or the error response to send instead."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "body_too_large", "请求太大（最多64KB）")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return json_error(400, "not_json", "请求不是有效的JSON")
    if not isinstance(body, dict):
        return json_error(400, "not_an_object", '请求应为JSON对象：{"sender": "...", "message": "..."}')
    sender = body.get("sender")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > 128 or clean_input(sender) != sender:
        return json_error(400, "bad_sender", "sender 应为1到128个字符的字符串，不含控制字符")
    return body


def chat_handler(door: str):
    """POST /api/chat (door "api"), /api/web/chat (the chat page), /api/kiosk/chat (the kiosk): Rasa's REST
    channel contract, {"sender", "message"} in, [{"recipient_id", "text", "buttons"?, "private"?}] out."""

    async def handle(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        sender, message = body["sender"], body.get("message")
        if not isinstance(message, str):
            return json_error(400, "bad_message", "message 应为字符串")
        message = clean_input(message)  # no control, bidi, zero-width characters or lone surrogates reach Rasa
        if not message.strip():
            return json_error(400, "empty_message", "message 不能为空")
        if len(message) > MAX_MESSAGE_CHARS:
            return json_error(413, "message_too_long", f"消息太长（最多{MAX_MESSAGE_CHARS}个字）")
        if body.get("channel", door) != door:
            return json_error(400, "bad_channel", f"这个入口只接受 channel={door}（网页和自助机各有自己的入口）")
        conversation = conversation_id(door, sender)
        wait = await request.app[keys.THROTTLE].wait(conversation, client_address(request))
        if wait:
            response = json_response([{"recipient_id": sender, "text": SLOW_DOWN_TEXT}], status=429)
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        settings = request.app[keys.SETTINGS]
        try:
            # the resident is waiting: an answer, or a polite word, within the reply deadline
            replies = await request.app[keys.RASA].send(
                conversation, message, door, timeout=settings.reply_deadline_seconds
            )
        except RasaUnavailable as e:
            logger.warning("Rasa unavailable for a %s message: %s", door, e)
            text = slow_text(settings) if isinstance(e, RasaTooSlow) else unavailable_text(settings)
            return json_response([{"recipient_id": sender, "text": text}], status=503)
        replies = for_client(replies, sender)
        if not any(r.get("text") for r in replies):
            # Rasa answered nothing (an action failed, the action server is down): the resident still gets words
            logger.warning("Rasa returned no text for a %s message", door)
            replies.append({"recipient_id": sender, "text": no_answer_text(settings)})
        return json_response(replies)

    return handle


MARKS = {"private": PRIVATE_REPLY_MARK, "forget": FORGOTTEN_REPLY_MARK}


def for_client(replies: List[Any], sender: str) -> List[Dict[str, Any]]:
    """Rasa's replies as the client sees them: addressed to its own sender id, the action's marks turned into
    "private": true (household data: the pages keep the turn out of browser storage) or "forget": true (退出: the
    pages clear what they showed) on every reply of the turn."""
    flags = {
        flag: True
        for flag, mark in MARKS.items()
        if any(isinstance(r, dict) and r.get("custom") == mark for r in replies)
    }
    return [
        {**reply, "recipient_id": sender, **flags}
        for reply in replies
        if isinstance(reply, dict) and reply.get("custom") not in MARKS.values()
    ]


def messages_handler(door: str):
    """POST /api/messages, /api/web/messages, /api/kiosk/messages {"sender", "after"}: what staff said to the
    conversation since message `after`; the chat page and the kiosk poll this."""

    async def handle(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        after = body.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_AFTER_ID:
            return json_error(400, "bad_after", "after 应为不小于0的整数")
        conversation = conversation_id(door, body["sender"])
        return json_response(await asyncio.to_thread(db.run, tickets.staff_messages_after, conversation, after))

    return handle


def client_address(request: web.Request) -> str | None:
    trusted = request.app[keys.THROTTLE].trusted
    return throttle.client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted)


# ---------------------------------------------------------------- /healthz


async def healthz(request: web.Request) -> web.Response:
    """Each dependency ok or down, checked side by side, each within HEALTH_CHECK_SECONDS: a hung part (a stopped
    process, a locked database) is reported down in about that time, not after its own timeouts. Rasa is ok while any
    of its servers is up (the gateway sends each conversation to the next one when its own is down); `rasa_servers`
    names each one ok or down."""
    settings = request.app[keys.SETTINGS]
    rasa = request.app[keys.RASA]
    started = time.perf_counter()
    servers, actions_ok, database_ok, redis_ok = await asyncio.gather(
        _each_within(rasa.replicas_healthy(), rasa.urls),
        _within(rasa.healthy(settings.actions_url.rstrip("/") + "/health")),
        _within(_database_ok()),
        _within(_redis_ok(request.app)),
    )
    dependencies = {"rasa": any(servers.values()), "action_server": actions_ok, "database": database_ok}
    if redis_ok is not None:  # REDIS_URL set: down means each gateway process answers on its own (shared_state.py)
        dependencies["redis"] = redis_ok
    ok = all(dependencies.values())
    return json_response(
        {
            "status": "ok" if ok else "degraded",
            "dependencies": {name: "ok" if up else "down" for name, up in dependencies.items()},
            "rasa_servers": {url: "ok" if up else "down" for url, up in servers.items()},
            "checked_in_ms": round((time.perf_counter() - started) * 1000),
        },
        status=200 if ok else 503,
    )


async def _each_within(checks, names) -> Dict[str, bool]:
    try:
        return await asyncio.wait_for(checks, HEALTH_CHECK_SECONDS)
    except asyncio.TimeoutError:
        return {name: False for name in names}


async def _within(check) -> bool:
    try:
        return await asyncio.wait_for(check, HEALTH_CHECK_SECONDS)
    except asyncio.TimeoutError:
        return False


async def _redis_ok(app: web.Application) -> bool | None:
    shared = app[keys.SHARED_STATE]
    return None if shared is None else await shared.ping()


async def _database_ok() -> bool:
    try:
        return await asyncio.to_thread(db.run, db.ping)
    except Exception as e:  # any failure means the same thing here: not reachable; the first line says why
        logger.warning("database health check failed: %s", (str(e).splitlines() or [type(e).__name__])[0])
        return False
