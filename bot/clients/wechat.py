"""The WeChat Official Account (公众号) message protocol: signatures, replay protection, safe-mode encryption, XML,
the service API.

Follows WeChat's public documentation: URL verification by SHA1 of the sorted token, timestamp and nonce; safe mode
is AES-256-CBC with the EncodingAESKey (IV = first 16 bytes of the key, PKCS#7 padding to 32 bytes), the plaintext
being 16 random bytes, the message length (4 bytes, big-endian), the message, and the AppID. In safe mode the
msg_signature also covers the ciphertext, so it is the only signature that vouches for the message itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, List, Tuple
from xml.sax.saxutils import escape

import aiohttp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree

logger = logging.getLogger(__name__)

_BLOCK = 32
_SIGNATURE = re.compile(r"[0-9a-f]{40}")  # SHA1 in hex, as WeChat sends it
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds; ASCII digits only (int() would take "١٢٣" and " 12")
MAX_NONCE_CHARS = 64  # WeChat's nonces are about ten digits
SERVICE_API_TIMEOUT_SECONDS = 5.0


class WeChatError(ValueError):
    """A request that does not follow the protocol (bad signature, bad ciphertext, wrong AppID, bad XML)."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(token: str, sig: str, timestamp: str, nonce: str, *extra: str) -> bool:
    """Whether `sig` signs the token, timestamp, nonce (and `extra`). Any odd value (non-ASCII, too long, not hex)
    is simply a wrong signature: hmac.compare_digest raises TypeError on non-ASCII str, so only hex gets that far."""
    if not (token and timestamp and nonce and len(nonce) <= MAX_NONCE_CHARS and _SIGNATURE.fullmatch(sig)):
        return False
    return hmac.compare_digest(signature(token, timestamp, nonce, *extra).encode("ascii"), sig.encode("ascii"))


class ReplayGuard:
    """A signed request is good for five minutes either side of its timestamp, and for one message.

    WeChat's `signature` covers only the token, timestamp and nonce, so a signed query string captured anywhere (a
    proxy log, a browser history) would otherwise sign any body, for ever. The guard refuses timestamps outside the
    window and remembers each (timestamp, nonce) with the message it carried for as long as the timestamp would be
    accepted: what is forgotten can no longer be replayed. The memory is capped; when full, the entry closest to
    expiring goes first (a signed request is needed to add one, so only WeChat's own traffic can fill it).
    `clock` is Unix seconds, injectable for tests.
    """

    def __init__(
        self, window_seconds: int = 300, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.window = window_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._messages: Dict[Tuple[str, str], str] = {}
        self._expiries: List[Tuple[int, Tuple[str, str]]] = []  # a heap, soonest first

    def skew(self, timestamp: str) -> float | None:
        """How far the timestamp is from our clock, in seconds (positive: ahead); None if it is no timestamp."""
        return int(timestamp) - self.clock() if _TIMESTAMP.fullmatch(timestamp) else None

    def is_fresh(self, timestamp: str) -> bool:
        skew = self.skew(timestamp)
        return skew is not None and abs(skew) <= self.window

    def remember(self, timestamp: str, nonce: str, message: str) -> str | None:
        """None the first time this (timestamp, nonce) is seen, and it is recorded as carrying `message` (a digest);
        afterwards, the message it was first seen with. Call only with a fresh timestamp."""
        self._expire()
        key = (timestamp, nonce)
        if key in self._messages:
            return self._messages[key]
        while len(self._messages) >= self.max_entries:
            _, oldest = heapq.heappop(self._expiries)
            del self._messages[oldest]
            logger.warning("WeChat nonce memory full (%d): forgot the entry closest to expiring", self.max_entries)
        self._messages[key] = message
        heapq.heappush(self._expiries, (int(timestamp) + self.window, key))
        return None

    async def claim(self, timestamp: str, nonce: str, message: str) -> str | None:
        """remember(), as the handlers ask it: with REDIS_URL the gateway processes share one memory
        (bot/clients/shared_state.py), so a nonce spent at one gateway is spent at all of them."""
        return self.remember(timestamp, nonce, message)

    def __len__(self) -> int:
        return len(self._messages)

    def _expire(self) -> None:
        now = self.clock()
        while self._expiries and self._expiries[0][0] < now:
            _, key = heapq.heappop(self._expiries)
            del self._messages[key]


class Crypto:
    """Safe-mode (安全模式) encryption with the EncodingAESKey."""

    def __init__(self, encoding_aes_key: str, app_id: str):
        try:
            self.key = base64.b64decode(encoding_aes_key + "=")
        except ValueError as e:
            raise WeChatError("EncodingAESKey is not valid base64") from e
        if len(self.key) != 32:
            raise WeChatError("EncodingAESKey must be 43 characters (32 bytes)")
        if not app_id:
            raise WeChatError("safe mode needs the AppID: every message names it, and one for another AppID is refused")
        self.app_id = app_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, text: str, random16: bytes | None = None) -> str:
        body = text.encode("utf-8")
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + self.app_id.encode("utf-8")
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        try:
            data = base64.b64decode(encrypted)
            decryptor = self._cipher().decryptor()
            plain = decryptor.update(data) + decryptor.finalize()
            pad = plain[-1]
            if not 1 <= pad <= _BLOCK:
                raise ValueError("bad padding")
            plain = plain[:-pad]
            (length,) = struct.unpack(">I", plain[16:20])
            body, app_id = plain[20 : 20 + length], plain[20 + length :].decode("utf-8")
            text = body.decode("utf-8")
        except (ValueError, struct.error, UnicodeDecodeError, IndexError) as e:
            raise WeChatError("cannot decrypt the message") from e
        if not hmac.compare_digest(app_id.encode(), self.app_id.encode()):
            raise WeChatError("the message is for another AppID")
        return text


def parse_xml(body: bytes) -> Dict[str, str]:
    """The message's fields; entities and DTDs are refused (defusedxml)."""
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as e:  # defusedxml raises several types; all mean the same to the caller
        raise WeChatError("not valid XML") from e
    return {child.tag: (child.text or "") for child in root}


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str, now: int | None = None) -> str:
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{now or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content></xml>"
    )


def encrypted_reply(crypto: Crypto, token: str, reply_xml: str, nonce: str, now: int | None = None) -> str:
    timestamp = str(now or int(time.time()))
    encrypted = crypto.encrypt(reply_xml)
    return (
        f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{_cdata(signature(token, timestamp, nonce, encrypted))}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(escape(nonce))}</Nonce></xml>"
    )


@dataclass
class Turn:
    """One message from WeChat and its answer, shared by the first delivery and its retries.

    The process that asked Rasa holds the task; with REDIS_URL, another gateway process that gets one of WeChat's
    retries holds a turn that reads the answer from Redis (bot/clients/shared_state.py)."""

    task: asyncio.Task
    created: float = field(default_factory=time.monotonic)
    delivered: str | None = None  # "passive" or "service"

    def age(self) -> float:
        """Seconds since WeChat first sent the message."""
        return time.monotonic() - self.created

    async def answer(self, timeout: float) -> str | None:
        """The answer, if it comes within `timeout` seconds; else None."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.task), timeout=max(0.0, timeout))
        except asyncio.TimeoutError:
            return None

    async def claim_delivery(self, how: str) -> bool:
        """Whether the answer may go out `how`: "passive" (in the reply to a request: any number of WeChat's retries
        may carry it) unless it went through the service API; "service" only once, and only if no reply carried it."""
        if self.delivered is None or self.delivered == how == "passive":
            self.delivered = how
            return True
        return False


def turn_key(fields: Dict[str, str]) -> str:
    """What WeChat's retries of one message share: the MsgId, or for events FromUserName + CreateTime (as WeChat's
    documentation advises). The sender is part of it either way, so one resident's turn never answers another."""
    open_id = fields.get("FromUserName", "")
    return f"{open_id}:{fields.get('MsgId') or 'event@' + fields.get('CreateTime', '')}"


class TurnCache:
    """Deduplicates retries: WeChat sends the same MsgId up to 3 times when it gets no answer within 5 s.

    In this process; with REDIS_URL, bot/clients/shared_state.SharedTurns shares the turns between processes."""

    def __init__(self, ttl_seconds: float = 300):
        self.ttl = ttl_seconds
        self._turns: Dict[str, Turn] = {}

    def get(self, key: str) -> Turn | None:
        self._expire()
        return self._turns.get(key)

    def add(self, key: str, turn: Turn) -> Turn:
        self._expire()
        self._turns[key] = turn
        return turn

    async def find(self, key: str) -> Turn | None:
        """The turn of this message, if one was started (here, or with REDIS_URL by any gateway process)."""
        return self.get(key)

    async def resume(self, key: str, turn: Turn, ask: Callable[[], Awaitable[str]]) -> Tuple[Turn, bool]:
        """A retry's turn, found: in one process its asker is alive while the process is (with REDIS_URL another
        gateway's may have died: bot/clients/shared_state.SharedTurns asks again then, and says True)."""
        return turn, False

    async def start(self, key: str, ask: Callable[[], Awaitable[str]]) -> Tuple[Turn, bool]:
        """(the turn, True) with `ask()` running as its task; or (the turn someone else started meanwhile, False)."""
        turn = self.get(key)
        if turn is not None:
            return turn, False
        return self.add(key, Turn(asyncio.ensure_future(ask()))), True

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, t in self._turns.items() if now - t.created > self.ttl and t.task.done()]:
            del self._turns[key]


class ServiceApi:
    """The customer-service message API (客服消息), with the access token fetched once and cached until it expires.

    Every call has a timeout; any failure (unreachable, timed out, not JSON, refused) is a WeChatError whose message
    names neither the URL nor the error's text, since the URLs carry the AppSecret and the access token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        app_id: str,
        app_secret: str,
        timeout_seconds: float = SERVICE_API_TIMEOUT_SECONDS,
    ):
        self._session = session
        self._base = base_url.rstrip("/")
        self._app_id, self._secret = app_id, app_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            async with self._session.request(method, self._base + path, timeout=self.timeout, **kwargs) as response:
                data = await response.json(content_type=None)
        except asyncio.TimeoutError as e:
            raise WeChatError(f"WeChat API timed out after {self.timeout.total:g} s: {path}") from e
        except aiohttp.ClientError as e:
            raise WeChatError(f"WeChat API unreachable ({type(e).__name__}): {path}") from e
        except ValueError as e:
            raise WeChatError(f"WeChat API answered something that is not JSON: {path}") from e
        if not isinstance(data, dict):
            raise WeChatError(f"WeChat API answered something that is not a JSON object: {path}")
        return data

    async def access_token(self) -> str:
        async with self._lock:
            if self._token and time.monotonic() < self._expires:
                return self._token
            params = {"grant_type": "client_credential", "appid": self._app_id, "secret": self._secret}
            data = await self._call("GET", "/cgi-bin/token", params=params)
            if not isinstance(data.get("access_token"), str):
                raise WeChatError(f"no access token: errcode {data.get('errcode')}")
            self._token = data["access_token"]
            # renew five minutes early, as WeChat advises
            expires_in = data.get("expires_in")
            self._expires = time.monotonic() + max(60, (expires_in if isinstance(expires_in, int) else 7200) - 300)
            return self._token

    async def send_text(self, open_id: str, content: str) -> None:
        token = await self.access_token()
        payload = {"touser": open_id, "msgtype": "text", "text": {"content": content}}
        data = await self._call("POST", "/cgi-bin/message/custom/send", params={"access_token": token}, json=payload)
        if data.get("errcode", 0) != 0:
            if data.get("errcode") in (40001, 42001):  # token invalid or expired: fetch a new one next time
                self._token = None
            raise WeChatError(f"service message refused: errcode {data.get('errcode')}")
