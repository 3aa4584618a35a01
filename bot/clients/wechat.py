"""The WeChat Official Account (公众号) message protocol: signatures, safe-mode encryption, XML, the service API.

Follows WeChat's public documentation: URL verification by SHA1 of the sorted token, timestamp and nonce; safe mode
is AES-256-CBC with the EncodingAESKey (IV = first 16 bytes of the key, PKCS#7 padding to 32 bytes), the plaintext
being 16 random bytes, the message length (4 bytes, big-endian), the message, and the AppID.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Dict
from xml.sax.saxutils import escape

import aiohttp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree

_BLOCK = 32


class WeChatError(ValueError):
    """A request that does not follow the protocol (bad signature, bad ciphertext, wrong AppID, bad XML)."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(token: str, sig: str, timestamp: str, nonce: str, *extra: str) -> bool:
    if not (token and sig and timestamp and nonce):
        return False
    return hmac.compare_digest(signature(token, timestamp, nonce, *extra), sig)


class Crypto:
    """Safe-mode (安全模式) encryption with the EncodingAESKey."""

    def __init__(self, encoding_aes_key: str, app_id: str):
        try:
            self.key = base64.b64decode(encoding_aes_key + "=")
        except ValueError as e:
            raise WeChatError("EncodingAESKey is not valid base64") from e
        if len(self.key) != 32:
            raise WeChatError("EncodingAESKey must be 43 characters (32 bytes)")
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
    """One message from WeChat and its answer, shared by the first delivery and its retries."""

    task: asyncio.Task
    created: float = field(default_factory=time.monotonic)
    delivered: str | None = None  # "passive" or "service"


class TurnCache:
    """Deduplicates retries: WeChat sends the same MsgId up to 3 times when it gets no answer within 5 s."""

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

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, t in self._turns.items() if now - t.created > self.ttl and t.task.done()]:
            del self._turns[key]


class ServiceApi:
    """The customer-service message API (客服消息), with the access token fetched once and cached until it expires."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, app_id: str, app_secret: str):
        self._session = session
        self._base = base_url.rstrip("/")
        self._app_id, self._secret = app_id, app_secret
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self) -> str:
        async with self._lock:
            if self._token and time.monotonic() < self._expires:
                return self._token
            params = {"grant_type": "client_credential", "appid": self._app_id, "secret": self._secret}
            async with self._session.get(f"{self._base}/cgi-bin/token", params=params) as response:
                data = await response.json(content_type=None)
            if "access_token" not in data:
                raise WeChatError(f"no access token: errcode {data.get('errcode')}")
            self._token = data["access_token"]
            # renew five minutes early, as WeChat advises
            self._expires = time.monotonic() + max(60, int(data.get("expires_in", 7200)) - 300)
            return self._token

    async def send_text(self, open_id: str, content: str) -> None:
        token = await self.access_token()
        payload = {"touser": open_id, "msgtype": "text", "text": {"content": content}}
        async with self._session.post(
            f"{self._base}/cgi-bin/message/custom/send", params={"access_token": token}, json=payload
        ) as response:
            data = await response.json(content_type=None)
        if data.get("errcode", 0) != 0:
            if data.get("errcode") in (40001, 42001):  # token invalid or expired: fetch a new one next time
                self._token = None
            raise WeChatError(f"service message refused: errcode {data.get('errcode')}")
