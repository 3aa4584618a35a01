"""The WeChat callback, driven by requests signed and encrypted here from WeChat's public description of the
protocol (independently of bot/clients/wechat.py), with a local server standing in for WeChat's API.

Every request is signed as WeChat signs it: the current time and a new nonce each time. Where the gateway has an
EncodingAESKey, requests come in safe mode; plaintext mode is tested against a gateway configured without one.
The attacks of the security review (finding 4) each have a test that sends them.
"""

import asyncio
import base64
import dataclasses
import hashlib
import logging
import os
import re
import secrets
import struct
import time
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import select
from yarl import URL

from bot import db, tickets
from bot.clients import keys, wechat
from bot.models import TicketMessage
from bot.web import access_log
from bot.web import app as gateway
from bot.web.access_log import AccessLog
from bot.web.app import init_app

from .conftest import AES_KEY, APP_ID, TOKEN

KEY = base64.b64decode(AES_KEY + "=")
Y2001 = 978307200  # 2001-01-01T00:00:00Z


def sha1_sorted(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed_query(timestamp=None, nonce=None, **extra):
    """The query WeChat signs: now, and a nonce never used before, unless told otherwise."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = str(10**9 + secrets.randbelow(9 * 10**9)) if nonce is None else nonce  # ten digits, as WeChat's
    return {"signature": sha1_sorted(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def text_message(content, msg_id="10001", open_id="oUser1", msg_type="text", extra=""):
    return (
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>{extra}</xml>"
    )


def voice_message(recognition=None, msg_id="60001", open_id="oVoice"):
    """A voice message as WeChat sends it; <Recognition> only when the account has speech recognition on."""
    heard = "" if recognition is None else f"<Recognition><![CDATA[{recognition}]]></Recognition>"
    return (
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
        f"<MediaId><![CDATA[media_id_1]]></MediaId><Format><![CDATA[amr]]></Format>{heard}<MsgId>{msg_id}</MsgId></xml>"
    )


def other_message(msg_type, fields_xml, msg_id, open_id="oOther"):
    return (
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"{fields_xml}<MsgId>{msg_id}</MsgId></xml>"
    )


def event_message(event, open_id="oEvent", extra=""):
    return (
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )


def encrypt(xml_text, app_id=APP_ID):
    body = xml_text.encode()
    plain = os.urandom(16) + struct.pack(">I", len(body)) + body + app_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(encrypted):
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(KEY[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length].decode(), plain[20 + length :].decode()


def safe_request(xml_text, app_id=APP_ID, **query_args):
    """(query, body) of one message in safe mode: encrypted, with a msg_signature over the ciphertext."""
    encrypted = encrypt(xml_text, app_id)
    query = signed_query(encrypt_type="aes", **query_args)
    query["msg_signature"] = sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted)
    return (
        query,
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>",
    )


def fields(xml_text):
    return {child.tag: child.text for child in ET.fromstring(xml_text)}


class Door:
    """The gateway's /wechat as WeChat talks to it: in safe mode when the gateway has an EncodingAESKey."""

    def __init__(self, client, safe):
        self.client, self.safe = client, safe

    @property
    def app(self):
        return self.client.app

    def request(self, xml_text, **query_args):
        """(query, body) as WeChat would send this message, signed now with a new nonce."""
        return safe_request(xml_text, **query_args) if self.safe else (signed_query(**query_args), xml_text)

    async def send(self, query, body):
        response = await self.client.post("/wechat", params=query, data=body.encode())
        return response.status, await response.text()

    async def post(self, xml_text, **query_args):
        return await self.send(*self.request(xml_text, **query_args))

    def content(self, body, xml_text):
        """The Content of a passive reply, decrypted in safe mode; "success" for no passive reply."""
        if body == "success":
            return body
        reply = fields(body)
        if self.safe:
            assert reply["MsgSignature"] == sha1_sorted(TOKEN, reply["TimeStamp"], reply["Nonce"], reply["Encrypt"])
            inner, app_id = decrypt(reply["Encrypt"])
            assert app_id == APP_ID
            reply = fields(inner)
        assert reply["MsgType"] == "text" and reply["ToUserName"] == fields(xml_text)["FromUserName"]
        assert reply["Content"] and reply["Content"].strip()  # never an empty message to a resident
        return reply["Content"]

    async def ask(self, xml_text):
        status, body = await self.post(xml_text)
        assert status == 200
        return self.content(body, xml_text)


@pytest.fixture
async def safe_door(client):
    """The gateway of conftest's settings, with an EncodingAESKey: safe mode only."""
    return Door(client, safe=True)


@pytest.fixture
async def plain_door(make_client, settings):
    """The gateway configured without an EncodingAESKey: plaintext mode."""
    return Door(await make_client(dataclasses.replace(settings, wechat_aes_key="")), safe=False)


@pytest.fixture(params=["plaintext", "aes"])
async def door(request, make_client, settings):
    safe = request.param == "aes"
    return Door(await make_client(settings if safe else dataclasses.replace(settings, wechat_aes_key="")), safe)


async def wait_for(condition):
    for _ in range(50):
        if condition():
            return
        await asyncio.sleep(0.1)


async def test_url_verification(client):
    response = await client.get("/wechat", params=signed_query(echostr="echo-42"))
    assert response.status == 200 and await response.text() == "echo-42"
    bad = dict(signed_query(echostr="echo-42"), signature="0" * 40)
    assert (await client.get("/wechat", params=bad)).status == 403
    assert (await client.get("/wechat", params={"echostr": "x"})).status == 403


async def test_plaintext_text_message(plain_door, upstream):
    status, body = await plain_door.post(text_message("医保在哪交"))
    assert status == 200
    reply = fields(body)
    assert reply["ToUserName"] == "oUser1" and reply["FromUserName"] == "gh_account" and reply["MsgType"] == "text"
    assert reply["Content"] == "答：医保在哪交\n您可以回复：医保"
    assert upstream.requests[-1]["sender"] == "wechat:oUser1" and upstream.requests[-1]["input_channel"] == "wechat"


async def test_unsigned_post_is_refused(door, upstream):
    query, body = door.request(text_message("你好"))
    status, _ = await door.send(dict(query, signature="f" * 40), body)
    assert status == 403 and not upstream.requests


async def test_safe_mode(safe_door, upstream):
    status, text = await safe_door.post(text_message("去外省打工有补贴吗", msg_id="20001"))
    assert status == 200
    reply = fields(text)
    assert reply["MsgSignature"] == sha1_sorted(TOKEN, reply["TimeStamp"], reply["Nonce"], reply["Encrypt"])
    inner, app_id = decrypt(reply["Encrypt"])
    assert app_id == APP_ID
    assert fields(inner)["Content"].startswith("答：去外省打工有补贴吗")
    assert "去外省打工有补贴吗" not in text  # the reply is not in clear text


async def test_safe_mode_refuses_bad_msg_signatures_and_other_app_ids(safe_door, upstream):
    query, body = safe_door.request(text_message("你好", msg_id="20002"))
    assert (await safe_door.send(dict(query, msg_signature="0" * 40), body))[0] == 403
    query, body = safe_door.request(text_message("你好", msg_id="20002"))
    del query["msg_signature"]
    assert (await safe_door.send(query, body))[0] == 403
    # a msg_signature WeChat made for another message: the query's `signature` is right, the body is not the one signed
    query, _ = safe_door.request(text_message("你好", msg_id="20002"))
    _, forged = safe_door.request(text_message("我是别人", msg_id="20003", open_id="oVictim"))
    assert (await safe_door.send(query, forged))[0] == 403
    query, body = safe_request(text_message("你好", msg_id="20004"), app_id="wxSomebodyElse")
    assert (await safe_door.send(query, body))[0] == 400
    assert not upstream.requests


async def test_safe_mode_configured_refuses_plaintext(safe_door, upstream):
    """Finding 4: with an EncodingAESKey configured, a plaintext request signed with a captured URL was answered."""
    message = text_message("我家能领什么补贴", msg_id="21001", open_id="oVictim")
    for extra in ({}, {"encrypt_type": "raw"}, {"encrypt_type": "AES"}):
        assert (await safe_door.send(signed_query(**extra), message))[0] == 403
    # compatible mode's body (plaintext fields next to <Encrypt>) is not plaintext mode either
    _, encrypted_body = safe_request(message)
    both = message.replace("</xml>", encrypted_body.removeprefix("<xml>"))
    assert (await safe_door.send(signed_query(), both))[0] == 403
    assert not upstream.requests


async def test_plaintext_mode_refuses_safe_mode(plain_door, upstream):
    query, body = safe_request(text_message("你好", msg_id="21002"))
    assert (await plain_door.send(query, body))[0] == 403
    assert not upstream.requests


async def test_entities_are_not_expanded(door, upstream):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>&lol2;</Content></xml>"
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'
    )
    for body in (bomb, external):
        query = signed_query(encrypt_type="aes") if door.safe else signed_query()
        assert (await door.send(query, body))[0] == 400  # the outer body
        if door.safe:
            assert (await door.post(body))[0] == 400  # inside the ciphertext
    assert not upstream.requests


async def test_a_retry_never_becomes_a_second_turn(door, upstream):
    """WeChat's retries of one MsgId, each signed afresh, are answered, and Rasa is asked once."""
    upstream.delay = 0.3
    message = text_message("雨露计划", msg_id="30001")
    (s1, r1), (s2, r2) = await asyncio.gather(door.post(message), door.post(message))
    (s3, r3) = await door.post(message)
    assert len(upstream.requests) == 1
    assert s1 == s2 == s3 == 200
    assert (
        door.content(r1, message)
        == door.content(r2, message)
        == door.content(r3, message)
        == "答：雨露计划\n您可以回复：医保"
    )


async def test_slow_answers_go_through_the_service_api(safe_door, upstream, wechat_api):
    upstream.delay = 1.5  # longer than the reply deadline (1 s in these tests)
    status, body = await safe_door.post(text_message("养老院在哪", msg_id="40001", open_id="oSlow"))
    assert status == 200 and body == "success"
    # WeChat retries: still one turn, still "success"
    assert (await safe_door.post(text_message("养老院在哪", msg_id="40001", open_id="oSlow")))[1] == "success"
    await wait_for(lambda: wechat_api.sent)
    assert len(upstream.requests) == 1
    [(token, payload)] = wechat_api.sent
    assert token == "TOKEN1"
    assert payload == {"touser": "oSlow", "msgtype": "text", "text": {"content": "答：养老院在哪\n您可以回复：医保"}}
    # a second slow answer reuses the cached access token
    await safe_door.post(text_message("敬老院", msg_id="40002", open_id="oSlow"))
    await wait_for(lambda: len(wechat_api.sent) == 2)
    assert len(wechat_api.sent) == 2 and wechat_api.token_requests == 1


async def test_background_deliveries_are_forgotten_once_done(safe_door, upstream, wechat_api):
    """Finding 10: every WeChat message left a finished future in the app's background set, for ever."""
    background = safe_door.app[keys.BACKGROUND]
    for i in range(3):
        await safe_door.ask(text_message(f"问题{i}", msg_id=f"4100{i}"))
    upstream.delay = 1.5
    assert await safe_door.ask(text_message("慢问题", msg_id="41009")) == "success"
    await wait_for(lambda: wechat_api.sent)
    await wait_for(lambda: not background)
    assert len(wechat_api.sent) == 1 and not background


async def test_subscribe_gets_the_welcome_menu(door, upstream):
    event = (
        "<xml><ToUserName>gh_account</ToUserName><FromUserName>oNew</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>event</MsgType><Event>subscribe</Event></xml>"
    )
    assert (await door.ask(event)).startswith("答：/greet")
    assert upstream.requests[-1]["message"] == "/greet"


async def test_unconfigured_wechat_answers_503(make_client, settings, upstream):
    """Without WECHAT_TOKEN the door is closed and says so (it was a bare 403, like a bad signature)."""
    for aes_key in ("", AES_KEY):
        client = await make_client(dataclasses.replace(settings, wechat_token="", wechat_aes_key=aes_key))
        get = await client.get("/wechat", params=signed_query(echostr="x"))
        post = await client.post("/wechat", params=signed_query(), data=text_message("你好").encode())
        bare = await client.post("/wechat")
        for response in (get, post, bare):
            assert response.status == 503
            assert "not configured" in await response.text() and "未配置" in await response.text()
    assert not upstream.requests


@pytest.mark.parametrize(
    "timestamp, accepted",
    [
        (Y2001, False),  # finding 4: "a request signed in 2001 is accepted"
        (-301, False),
        (-300, True),
        (300, True),
        (301, False),
        (10**11, False),
    ],
    ids=["2001", "301s-ago", "300s-ago", "300s-ahead", "301s-ahead", "year-5138"],
)
async def test_timestamps_more_than_five_minutes_off_are_refused(door, upstream, timestamp, accepted):
    now = 1_800_000_000
    door.app[keys.WECHAT_REPLAYS].clock = lambda: now
    signed_at = timestamp if abs(timestamp) > 1000 else now + timestamp
    expected = 200 if accepted else 403
    get = await door.client.get("/wechat", params=signed_query(timestamp=signed_at, echostr="e"))
    assert get.status == expected
    assert (await door.post(text_message("你好", msg_id=f"50{timestamp}"), timestamp=signed_at))[0] == expected
    assert len(upstream.requests) == (1 if accepted else 0)


async def test_a_captured_plaintext_query_cannot_be_replayed(plain_door, upstream):
    """Finding 4: one captured signed URL let anyone post as any openid. A (timestamp, nonce) now signs one message."""
    query, body = plain_door.request(text_message("医保在哪交", msg_id="51001", open_id="oResident"))
    assert (await plain_door.send(query, body))[0] == 200
    forged = text_message("我家能领什么补贴", msg_id="51002", open_id="oResident")
    assert (await plain_door.send(query, forged))[0] == 403
    assert (await plain_door.send(query, body))[0] == 403  # in plaintext mode not even the same message again
    assert [r["message"] for r in upstream.requests] == ["医保在哪交"]


async def test_a_replayed_safe_mode_request_never_starts_a_turn(safe_door, upstream):
    """The very same request again (same timestamp, nonce, msg_signature and ciphertext) is answered from the turn
    already cached for its message, encrypted; Rasa is not asked again. Anything else on that nonce is refused."""
    message = text_message("雨露计划", msg_id="52001")
    query, body = safe_door.request(message)
    first = await safe_door.send(query, body)
    again = await safe_door.send(query, body)
    assert first[0] == again[0] == 200
    assert (
        safe_door.content(first[1], message) == safe_door.content(again[1], message) == "答：雨露计划\n您可以回复：医保"
    )
    # another message under the same timestamp and nonce, even one with a right msg_signature
    _, other_body = safe_door.request(text_message("另一个问题", msg_id="52002"))
    encrypted = fields(other_body)["Encrypt"]
    reused = dict(query, msg_signature=sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted))
    assert (await safe_door.send(reused, other_body))[0] == 403
    # a message without a turn (an event) is not answered twice
    event = event_message("subscribe", open_id="oNew")
    query, body = safe_door.request(event)
    assert (await safe_door.send(query, body))[0] == 200
    assert (await safe_door.send(query, body))[0] == 403
    assert [r["message"] for r in upstream.requests] == ["雨露计划", "/greet"]


async def test_a_replayed_url_verification_is_refused(client):
    query = signed_query(echostr="echo-1")
    assert (await client.get("/wechat", params=query)).status == 200
    assert (await client.get("/wechat", params=query)).status == 403


def test_nonces_are_remembered_for_the_window_only_and_the_memory_is_capped():
    now = [1_800_000_000.0]
    guard = wechat.ReplayGuard(window_seconds=300, max_entries=3, clock=lambda: now[0])
    assert guard.remember(str(int(now[0])), "n1", "m1") is None
    assert guard.remember(str(int(now[0])), "n1", "m2") == "m1"
    now[0] += 301  # n1's timestamp is no longer accepted: it can be forgotten
    assert not guard.is_fresh(str(int(now[0]) - 301))
    assert guard.remember(str(int(now[0])), "n2", "m") is None and len(guard) == 1
    t = int(now[0])
    guard.remember(str(t + 200), "a", "m")
    guard.remember(str(t - 200), "b", "m")
    assert len(guard) == 3
    guard.remember(str(t + 100), "c", "m")
    # full: the entry closest to expiring ("b", signed 200 s ago) made room
    assert len(guard) == 3
    assert guard.remember(str(t + 200), "a", "m2") == "m" and guard.remember(str(t + 100), "c", "m2") == "m"
    assert guard.remember(str(t - 200), "b", "m2") is None


ODD_QUERIES = {
    "non-ascii signature": {"signature": "签名" * 20},
    "non-ascii signature of 40": {"signature": "é" * 40},
    "upper-case signature": {"signature": "A" * 40},
    "long signature": {"signature": "a" * 6000},
    "non-ascii msg_signature": {"msg_signature": "签名" * 20},
    "long msg_signature": {"msg_signature": "0" * 6000},
    "empty everything": {"signature": "", "timestamp": "", "nonce": "", "msg_signature": ""},
}
ODD_SIGNED = {  # signed correctly: they get past the signature to the timestamp and nonce checks
    "huge timestamp": ("9" * 5000, "n1"),
    "non-numeric timestamp": ("yesterday", "n1"),
    "negative timestamp": ("-1", "n1"),
    "float timestamp": ("1.8e9", "n1"),
    "arabic-indic digits": ("١٨٠٠٠٠٠٠٠٠", "n1"),
    "spaces": (" {now} ", "n1"),
    "non-ascii nonce": ("{now}", "随机数" * 30),
    "long nonce": ("{now}", "n" * 5000),
}


@pytest.mark.parametrize("case", [*ODD_QUERIES, *ODD_SIGNED])
async def test_odd_query_values_are_refused_never_an_error(door, upstream, case):
    """Finding 10: a non-ASCII signature was a 500 (hmac.compare_digest raises TypeError on non-ASCII str)."""

    def odd(query):
        if case in ODD_QUERIES:
            return dict(query, **ODD_QUERIES[case])
        timestamp, nonce = (v.format(now=int(time.time())) for v in ODD_SIGNED[case])
        return dict(query, timestamp=timestamp, nonce=nonce, signature=sha1_sorted(TOKEN, timestamp, nonce))

    if set(ODD_QUERIES.get(case, {})) == {"msg_signature"} and not door.safe:
        # plaintext mode reads no msg_signature: the odd one is ignored and the message answered, never an error
        query, body = door.request(text_message("你好", msg_id="53002"))
        status, _ = await door.send(odd(query), body)
        assert status == 200 and len(upstream.requests) == 1
        return
    if set(ODD_QUERIES.get(case, {})) != {"msg_signature"}:
        get = await door.client.get("/wechat", params=odd(signed_query(echostr="回声")))
        assert 400 <= get.status < 500
    query, body = door.request(text_message("你好", msg_id="53001"))
    status, _ = await door.send(odd(query), body)
    assert 400 <= status < 500
    assert not upstream.requests


async def test_undecodable_query_strings_are_refused(door, upstream):
    for raw in ("signature=%FF%FE&timestamp=%C0%AF&nonce=%", "timestamp=%00&signature=%E4%B8&nonce=%ZZ&encrypt_type=%"):
        url = URL(f"/wechat?{raw}", encoded=True)
        assert 400 <= (await door.client.get(url)).status < 500
        assert 400 <= (await door.client.post(url, data=b"<xml/>")).status < 500
    assert not upstream.requests


async def test_aes_key_without_app_id_refuses_to_start(settings):
    with pytest.raises(RuntimeError, match="WECHAT_APP_ID"):
        await init_app(dataclasses.replace(settings, wechat_app_id=""))
    with pytest.raises(RuntimeError, match="WECHAT_ENCODING_AES_KEY"):
        await init_app(dataclasses.replace(settings, wechat_aes_key="too-short"))
    with pytest.raises(wechat.WeChatError):
        wechat.Crypto(AES_KEY, "")


def test_the_access_logs_figures_survive_the_log_masking():
    from bot.privacy import mask_text

    for length, shown in ((0, "0"), (185, "185"), (99_999, "99999"), (123_456, "121KiB"), (10_485_760, "10240KiB")):
        assert access_log.size(length) == shown
        line = f'127.0.0.1 "GET /static/anju.js" status=302 bytes={access_log.size(length)} time=0.001s'
        assert mask_text(line) == line


def test_the_gateway_serves_with_the_access_log_without_query_strings(monkeypatch):
    served = {}

    def run_app(app, **kwargs):
        app.close()  # the init_app coroutine, not run
        served.update(kwargs)

    monkeypatch.setattr(gateway.web, "run_app", run_app)
    monkeypatch.setattr(gateway, "install_log_masking", lambda: None)
    monkeypatch.setattr(gateway.logging, "basicConfig", lambda **kwargs: None)
    gateway.main()
    assert served["access_log_class"] is AccessLog


async def test_no_signature_in_any_log(aiohttp_client, settings, upstream, caplog):
    """Finding 4: "never log signatures". aiohttp's default access log wrote the request line, query and all."""
    server = TestServer(await init_app(settings))
    await server.start_server(access_log_class=AccessLog)  # as gateway.main() serves it
    door = Door(await aiohttp_client(server), safe=True)
    caplog.set_level(logging.DEBUG)
    secret_values = []

    def remember(query):
        secret_values.extend(
            query[k] for k in ("signature", "msg_signature", "nonce", "echostr", "openid") if k in query
        )
        return query

    verification = remember(signed_query(echostr="echo-secret-42"))
    assert (await door.client.get("/wechat", params=verification)).status == 200
    assert (await door.client.get("/wechat", params=verification)).status == 403  # replayed
    query, body = door.request(text_message("医保在哪交", msg_id="54001"), openid="oLogged")
    assert (await door.send(remember(query), body))[0] == 200
    assert (await door.send(query, body))[0] == 200  # the same request again, answered from its turn
    assert (await door.send(remember(signed_query(openid="oLogged")), text_message("x")))[0] == 403  # plaintext
    stale = remember(signed_query(timestamp=Y2001, encrypt_type="aes", openid="oLogged"))
    assert (await door.send(stale, body))[0] == 403
    bad = remember(dict(door.request(text_message("x", msg_id="54002"))[0], msg_signature="1" * 40))
    assert (await door.send(bad, body))[0] == 403

    def access():  # the gateway's lines (the stand-in Rasa server writes its own)
        return [r.getMessage() for r in caplog.records if r.name == "aiohttp.access" and "/wechat" in r.getMessage()]

    await wait_for(lambda: len(access()) == 7)  # the line is written after the response
    assert len(access()) == 7 and all('"GET /wechat" ' in line or '"POST /wechat" ' in line for line in access())
    assert all(re.search(r'" status=\d{3} bytes=\d+ time=\d+\.\d{3}s$', line) for line in access())
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused a signed WeChat request" in everything
    leaked = [value for value in secret_values if value in everything]
    assert not leaked


class HangingWeChat:
    def __init__(self, hang_on):
        self.hang_on = hang_on
        self.app = web.Application()
        self.app.router.add_get("/cgi-bin/token", self.token)
        self.app.router.add_post("/cgi-bin/message/custom/send", self.send)

    async def token(self, request):
        if self.hang_on == "token":
            await asyncio.sleep(30)
        if self.hang_on == "html":
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        return web.json_response({"access_token": "T", "expires_in": 7200})

    async def send(self, request):
        await asyncio.sleep(30)
        return web.json_response({"errcode": 0})


@pytest.mark.parametrize("hang_on", ["token", "send"])
async def test_service_api_calls_time_out(aiohttp_server, hang_on):
    """Finding 10: neither the access token fetch nor the custom send had a timeout."""
    stub = HangingWeChat(hang_on)
    server = await aiohttp_server(stub.app)
    async with aiohttp.ClientSession() as session:
        assert 5 <= wechat.ServiceApi(session, "http://x", APP_ID, "secret").timeout.total <= 10
        api = wechat.ServiceApi(session, f"http://127.0.0.1:{server.port}", APP_ID, "secret", timeout_seconds=0.3)
        started = time.monotonic()
        with pytest.raises(wechat.WeChatError, match="timed out"):
            await asyncio.wait_for(api.send_text("oUser", "你好"), timeout=5)
        assert time.monotonic() - started < 2


async def test_service_api_failures_are_wechat_errors_without_secrets(aiohttp_server, unused_tcp_port_factory):
    server = await aiohttp_server(HangingWeChat("html").app)
    async with aiohttp.ClientSession() as session:
        for base in (f"http://127.0.0.1:{server.port}", f"http://127.0.0.1:{unused_tcp_port_factory()}"):
            api = wechat.ServiceApi(session, base, APP_ID, "the-app-secret")
            with pytest.raises(wechat.WeChatError) as raised:
                await api.send_text("oUser", "你好")
            assert "the-app-secret" not in str(raised.value)


async def test_the_wired_service_api_has_a_timeout(client):
    assert 5 <= client.app[keys.WECHAT_API].timeout.total <= 10


async def test_recognised_voice_is_answered_like_text(door, upstream):
    content = await door.ask(voice_message("去外省打工有交通补贴吗。", msg_id="60001"))
    assert content == "答：去外省打工有交通补贴吗\n您可以回复：医保"  # no "我听到的是": the recognition is clear
    [request] = upstream.requests
    assert request["message"] == "去外省打工有交通补贴吗"  # WeChat's trailing "。" is gone
    assert request["sender"] == "wechat:oVoice" and request["input_channel"] == "wechat"


@pytest.mark.parametrize(
    "recognition, heard",
    [
        ("医保。", "医保"),
        ("嗯", "嗯"),
        (" 低保？ ", "低保"),
        ("OK!", "OK"),
        ("hello world", "hello world"),
        ("12345", "12345"),
    ],
)
async def test_unsure_recognition_says_what_was_heard(door, upstream, recognition, heard):
    content = await door.ask(voice_message(recognition, msg_id="60002"))
    assert content == f"我听到的是：“{heard}”。如果不对，请再说一遍或打字。\n答：{heard}\n您可以回复：医保"
    assert [r["message"] for r in upstream.requests] == [heard]


@pytest.mark.parametrize("recognition", [None, "", "   ", "。"], ids=["absent", "empty", "blank", "punctuation"])
async def test_voice_without_recognition_asks_to_type(door, upstream, recognition):
    content = await door.ask(voice_message(recognition, msg_id="60003"))
    assert "语音" in content and "打字" in content and "转成文字" in content
    assert not upstream.requests


async def test_a_retried_voice_is_answered_once(safe_door, upstream):
    upstream.delay = 0.3
    message = voice_message("养老保险怎么交", msg_id="60004")
    (s1, r1), (s2, r2) = await asyncio.gather(safe_door.post(message), safe_door.post(message))
    s3, r3 = await safe_door.post(message)
    assert s1 == s2 == s3 == 200
    assert len(upstream.requests) == 1
    answers = {safe_door.content(r, message) for r in (r1, r2, r3)}
    assert answers == {"答：养老保险怎么交\n您可以回复：医保"}


async def test_a_slow_unsure_voice_answer_keeps_what_was_heard(safe_door, upstream, wechat_api):
    upstream.delay = 1.5  # longer than the reply deadline (1 s in these tests)
    assert await safe_door.ask(voice_message("低保", msg_id="60005", open_id="oSlowVoice")) == "success"
    assert await safe_door.ask(voice_message("低保", msg_id="60005", open_id="oSlowVoice")) == "success"
    await wait_for(lambda: wechat_api.sent)
    assert len(upstream.requests) == 1
    [(_, payload)] = wechat_api.sent
    assert payload["touser"] == "oSlowVoice"
    assert payload["text"]["content"] == "我听到的是：“低保”。如果不对，请再说一遍或打字。\n答：低保\n您可以回复：医保"


OTHER_MESSAGES = {
    "image": ("<PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>", "图片"),
    "location": (
        "<Location_X>26.58</Location_X><Location_Y>106.71</Location_Y><Scale>15</Scale>"
        "<Label><![CDATA[贵州省贵阳市]]></Label>",
        "位置",
    ),
    "link": (
        "<Title><![CDATA[政策解读]]></Title><Description><![CDATA[…]]></Description>"
        "<Url><![CDATA[https://example.org/a]]></Url>",
        "链接",
    ),
    "video": ("<MediaId><![CDATA[m2]]></MediaId><ThumbMediaId><![CDATA[t2]]></ThumbMediaId>", "视频"),
    "shortvideo": ("<MediaId><![CDATA[m3]]></MediaId><ThumbMediaId><![CDATA[t3]]></ThumbMediaId>", "视频"),
    "file": ("<Title><![CDATA[户口本.pdf]]></Title><FileKey><![CDATA[k]]></FileKey>", "文件"),
    "miniprogrampage": ("<Title><![CDATA[小程序]]></Title>", ""),  # a type we do not know
}


@pytest.mark.parametrize("msg_type", list(OTHER_MESSAGES))
async def test_other_messages_get_a_polite_reply(door, upstream, msg_type):
    extra, named = OTHER_MESSAGES[msg_type]
    content = await door.ask(other_message(msg_type, extra, msg_id=f"700{list(OTHER_MESSAGES).index(msg_type)}"))
    assert named in content and ("文字" in content or "打字" in content)
    assert not upstream.requests


async def test_other_events_get_success_and_no_message(door, upstream):
    for event, extra in [
        ("unsubscribe", ""),
        ("CLICK", "<EventKey><![CDATA[MENU_1]]></EventKey>"),
        ("VIEW", "<EventKey><![CDATA[https://example.org/]]></EventKey>"),
        ("SCAN", "<EventKey><![CDATA[123]]></EventKey><Ticket><![CDATA[t]]></Ticket>"),
        ("LOCATION", "<Latitude>26.58</Latitude><Longitude>106.71</Longitude><Precision>65</Precision>"),
    ]:
        assert await door.ask(event_message(event, extra=extra)) == "success"
    assert not upstream.requests


async def test_an_open_ticket_does_not_silence_the_assistant(door, upstream):
    """The action server copies a message into the open ticket and keeps answering; the gateway always asks Rasa."""
    with db.session_scope() as s:
        tickets.open_ticket(s, "wechat:oTicket", "wechat", ["居民：找工作人员"], None)
    text = await door.ask(text_message("我的低保什么时候到", msg_id="80001", open_id="oTicket"))
    voice = await door.ask(voice_message("医保卡丢了怎么办。", msg_id="80002", open_id="oTicket"))
    assert text == "答：我的低保什么时候到\n您可以回复：医保"
    assert voice == "答：医保卡丢了怎么办\n您可以回复：医保"
    assert [(r["sender"], r["message"]) for r in upstream.requests] == [
        ("wechat:oTicket", "我的低保什么时候到"),
        ("wechat:oTicket", "医保卡丢了怎么办"),
    ]
    with db.session_scope() as s:  # not copied twice: the copy is the action server's
        assert s.scalars(select(TicketMessage)).all() == []


async def test_one_openid_flooding_is_slowed_and_retries_are_not_counted(door, upstream):
    """Finding 6 on WeChat: a burst of 10 new messages from one openid, then a polite "slow down"; WeChat's own
    retries of a message already taken never count, and another resident is not held back."""
    answers = [await door.ask(text_message(f"问题{i}", msg_id=f"7100{i}", open_id="oFlood")) for i in range(12)]
    assert all(a.startswith("答：") for a in answers[:10])
    assert all("请等几秒" in a for a in answers[10:])
    assert len(upstream.requests) == 10
    retry = await door.ask(text_message("问题0", msg_id="71000", open_id="oFlood"))  # a retry of a taken message
    assert retry.startswith("答：问题0") and len(upstream.requests) == 10
    assert (await door.ask(text_message("你好", msg_id="72000", open_id="oCalm"))).startswith("答：")


async def test_an_empty_answer_from_rasa_still_gives_words_and_a_contact(door, upstream):
    """The action server down: Rasa answers [] and the resident on WeChat still hears what to do, and whom to ask."""
    upstream.silent = True
    answer = await door.ask(text_message("敬老院咋申请", msg_id="73001", open_id="oSilent"))
    assert "稍后再问" in answer and "社区居委会便民服务窗口" in answer
