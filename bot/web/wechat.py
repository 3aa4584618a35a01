"""The WeChat Official Account callback (/wechat): verifies, decrypts and parses WeChat's requests (bot.clients.wechat
speaks the protocol), asks Rasa, and answers passively within WeChat's 5 s or later through the service API.

A request counts as WeChat's when its signature is right, its timestamp within 5 minutes of our clock and its nonce
not used before, and, when an EncodingAESKey is configured, when it comes in safe mode with a right msg_signature.
Without WECHAT_TOKEN the door answers 503.

Text, and voice that WeChat has recognised (<Recognition>), go to Rasa; every other message gets a short polite reply
in words, so a resident never meets silence. Events other than subscribe get "success", as the protocol wants."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from typing import Any, Dict, List

from aiohttp import web

from bot.clients import keys, shared_state, wechat
from bot.clients.rasa import RasaUnavailable
from bot.settings import Settings
from bot.text_normalization import clean_input
from bot.throttle import SLOW_DOWN_TEXT
from bot.web.views import MAX_MESSAGE_CHARS, no_answer_text, unavailable_text

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
NOT_CONFIGURED = "微信公众号接口未配置。WeChat is not configured on this server."
OTHER_MESSAGE_REPLY = "您好，这种消息我暂时看不了。请直接打字问我，比如“去外省打工有交通补贴吗”。"
_CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def setup_wechat(app: web.Application, settings: Settings) -> None:
    """The WeChat door's shared state. Refuses to start with safe mode half configured: without the AppID, safe mode
    could not tell a message for this account from one for another."""
    if settings.wechat_aes_key and not settings.wechat_app_id:
        raise RuntimeError(
            "WECHAT_ENCODING_AES_KEY is set but WECHAT_APP_ID is empty: safe mode needs the Official Account's AppID "
            "(公众号 AppID) to check whom each message is for. Set WECHAT_APP_ID, or unset WECHAT_ENCODING_AES_KEY."
        )
    try:
        crypto = wechat.Crypto(settings.wechat_aes_key, settings.wechat_app_id) if settings.wechat_aes_key else None
    except wechat.WeChatError as e:
        raise RuntimeError(f"WECHAT_ENCODING_AES_KEY is not usable: {e}") from None
    if settings.wechat_token and crypto is None:
        logger.warning(
            "WeChat plaintext mode (明文模式): message bodies are not signed, so anyone holding a fresh signed URL can "
            "post as any resident; set WECHAT_ENCODING_AES_KEY and WECHAT_APP_ID for safe mode (安全模式)"
        )
    app[keys.WECHAT_CRYPTO] = crypto
    # with REDIS_URL every gateway process sees the same turns and nonces (one answer per MsgId, one use per nonce)
    shared = app[keys.SHARED_STATE]
    app[keys.WECHAT_TURNS] = shared_state.SharedTurns(shared) if shared else wechat.TurnCache()
    app[keys.WECHAT_REPLAYS] = shared_state.SharedReplayGuard(shared) if shared else wechat.ReplayGuard()


async def wechat_verify(request: web.Request) -> web.Response:
    """URL verification: echo `echostr` when the signature is right, fresh, and not seen before."""
    refusal = _refuse_unsigned(request)
    if refusal is not None:
        return refusal
    q = request.query
    if await request.app[keys.WECHAT_REPLAYS].claim(q["timestamp"], q["nonce"], "url verification") is not None:
        return _refuse("a replayed timestamp and nonce")
    return web.Response(text=q.get("echostr", ""))


async def wechat_message(request: web.Request) -> web.Response:
    """One message or event from WeChat, answered passively (text XML, encrypted in safe mode) or with "success".

    With an EncodingAESKey configured, only safe mode is accepted: encrypt_type=aes and a msg_signature over the
    ciphertext, which is what vouches for the message (the query's `signature` signs no body). Every (timestamp,
    nonce) is good for one message (ReplayGuard). A repeat of one is refused, with one exception: in safe mode, a
    repeat carrying the very same message (its msg_signature valid, so it comes from WeChat or is a byte-for-byte
    copy of what WeChat sent) while that message's turn is still cached gets that turn's answer, as WeChat's own
    retries do; it never starts a turn, and the answer goes out encrypted, readable only by WeChat. In plaintext mode
    no repeat is answered: the body is not signed, and the answer would go out in clear to whoever sent it.
    """
    refusal = _refuse_unsigned(request)
    if refusal is not None:
        return refusal
    settings = request.app[keys.SETTINGS]
    crypto = request.app[keys.WECHAT_CRYPTO]
    q = request.query
    timestamp, nonce = q["timestamp"], q["nonce"]
    if crypto is not None and q.get("encrypt_type") != "aes":
        return _refuse("not in safe mode, while an EncodingAESKey is configured")
    if crypto is None and q.get("encrypt_type") == "aes":
        return _refuse("safe mode, while no EncodingAESKey is configured")
    try:
        message = await request.read()
        fields = wechat.parse_xml(message)
        if crypto is not None:
            encrypted = fields.get("Encrypt", "")
            signed = (q.get("msg_signature", ""), timestamp, nonce, encrypted)
            if not wechat.check_signature(settings.wechat_token, *signed):
                return _refuse("bad or missing msg_signature")
            message = crypto.decrypt(encrypted).encode("utf-8")
            fields = wechat.parse_xml(message)
    except wechat.WeChatError as e:
        logger.warning("refused a WeChat message: %s", e)
        return web.Response(status=400, text="bad request")

    digest = hashlib.sha256(message).hexdigest()
    first_seen_with = await request.app[keys.WECHAT_REPLAYS].claim(timestamp, nonce, digest)
    if first_seen_with is None:
        content = await _wechat_answer(request.app, fields)
    else:
        same = crypto is not None and first_seen_with == digest
        turn = await request.app[keys.WECHAT_TURNS].find(wechat.turn_key(fields)) if same else None
        if turn is None:
            return _refuse("a replayed timestamp and nonce")
        content = await _passive_answer(request.app, turn)
    if content is None:
        return web.Response(text="success")
    reply = wechat.text_reply(fields.get("FromUserName", ""), fields.get("ToUserName", ""), content)
    if crypto is not None:
        reply = wechat.encrypted_reply(crypto, settings.wechat_token, reply, nonce)
    return web.Response(text=reply, content_type="application/xml")


def _refuse_unsigned(request: web.Request) -> web.Response | None:
    """503 when WeChat is not configured; 403 unless the query is signed with our token and its timestamp is within
    five minutes of our clock. Nothing of the query is logged: the signature and nonce would let a reader replay it."""
    token = request.app[keys.SETTINGS].wechat_token
    if not token:
        return web.Response(status=503, text=NOT_CONFIGURED)
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    if not wechat.check_signature(token, q.get("signature", ""), timestamp, nonce):
        return web.Response(status=403, text="forbidden")  # not logged: anyone on the network can send these
    replays = request.app[keys.WECHAT_REPLAYS]
    if not replays.is_fresh(timestamp):
        skew = replays.skew(timestamp)
        off = "is not a Unix time" if skew is None else f"is {skew:+.0f} s off our clock"
        return _refuse(f"the timestamp {off} (more than {replays.window} s: a replay, or a clock is wrong)")
    return None


def _refuse(why: str) -> web.Response:
    logger.warning("refused a signed WeChat request: %s", why)
    return web.Response(status=403, text="forbidden")


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
    key = wechat.turn_key(fields)
    cache: wechat.TurnCache = app[keys.WECHAT_TURNS]
    ask = lambda: _ask_rasa_text(app, f"wechat:{open_id}", message, prefix)  # noqa: E731
    turn = await cache.find(key)
    if turn is None:
        if await app[keys.THROTTLE].wait_conversation(f"wechat:{open_id}"):
            return SLOW_DOWN_TEXT  # a new message over the per-conversation limit (WeChat's retries are not counted)
        turn, started = await cache.start(key, ask)
    else:  # one of WeChat's retries: asked again only if the gateway asking died (with REDIS_URL)
        turn, started = await cache.resume(key, turn, ask)
    if started:  # this process asks Rasa, and sends the answer through the service API if it comes late
        turn.task.add_done_callback(lambda _t: _deliver_late(app, turn, open_id))
    return await _passive_answer(app, turn)


async def _passive_answer(app: web.Application, turn: wechat.Turn) -> str | None:
    """The turn's answer if it comes within WeChat's deadline and the service API has not sent it already; else None."""
    content = await turn.answer(app[keys.SETTINGS].wechat_reply_deadline - turn.age())
    if content is None or not await turn.claim_delivery("passive"):
        return None  # "success" now; _deliver_late sends the answer when it comes (or has sent it)
    return content


def _deliver_late(app: web.Application, turn: wechat.Turn, open_id: str) -> None:
    async def send() -> None:
        # give the handler waiting on this turn the chance to answer passively first
        await asyncio.sleep(0)
        if turn.task.cancelled() or turn.task.exception() is not None:
            return
        if turn.age() < app[keys.SETTINGS].wechat_reply_deadline:
            return  # answered in time: a handler is replying passively
        if not await turn.claim_delivery("service"):
            return  # a reply carried it (in any gateway process)
        try:
            await app[keys.WECHAT_API].send_text(open_id, turn.task.result())
        except (wechat.WeChatError, OSError, asyncio.TimeoutError) as e:
            logger.error("could not deliver a late answer through the service API: %s", e)

    background = app[keys.BACKGROUND]
    task = asyncio.ensure_future(send())
    background.add(task)  # kept until done, so that it is not collected half-way and shutdown can wait for it
    task.add_done_callback(background.discard)


async def _ask_rasa_text(app: web.Application, sender: str, message: str, prefix: str = "") -> str:
    """Rasa's answer as one WeChat text, after `prefix` (what we heard, when a voice's recognition is unsure)."""
    try:
        replies = await app[keys.RASA].send(sender, message, "wechat")
    except RasaUnavailable as e:
        logger.warning("Rasa unavailable for a WeChat message: %s", e)
        return prefix + unavailable_text(app[keys.SETTINGS])
    if not any(isinstance(r, dict) and r.get("text") for r in replies):
        # Rasa answered nothing (the action server is down): the resident still gets words and a contact
        logger.warning("Rasa returned no text for a WeChat message")
        return prefix + no_answer_text(app[keys.SETTINGS])
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
