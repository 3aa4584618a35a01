"""The bad-input corpus through the WeChat callback, correctly signed: odd message text (as Content and as a voice's
Recognition), malformed and hostile XML, broken ciphertexts, odd query parameters. Never a 5xx, nothing invisible
passed on to Rasa, and a resident's next message is answered. Requests are signed here with the current time and a
fresh nonce each, in safe mode (the test settings configure an EncodingAESKey) and in plaintext mode."""

import dataclasses
import re
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from bot.clients.wechat import Crypto, signature

from .conftest import AES_KEY, APP_ID, TOKEN
from .test_bad_input import INVISIBLE, TEXTS

# XML 1.0 cannot carry C0 controls but tab and line breaks, lone surrogates, U+FFFE or U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
XML_TEXTS = [t for t in TEXTS if not _NOT_XML.search(t)] + [
    "\x85\x9b\u200b\u200d\u202a\u202e\u2066\u2069\ufeff",  # nothing visible, and all of it legal XML
    "]]>]]>",
    "<![CDATA[x]]>",
    "&amp;&lt;&#x202e;",
]
EMPTY_TEXT_REPLY = "请用文字告诉我您想问什么。"


def signed(**extra):
    """A query signed with the token, the current time and a nonce never used before."""
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:16]
    return {"signature": signature(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def cdata(text):
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(msg_type="text", content="你好", open_id="oCorpus", msg_id=None, field="Content"):
    msg_id = msg_id or str(uuid.uuid4().int % 10**18)
    return (
        f"<xml><ToUserName>{cdata('gh_account')}</ToUserName><FromUserName>{cdata(open_id)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{cdata(msg_type)}</MsgType>"
        f"<{field}>{cdata(content)}</{field}><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


CRYPTO = Crypto(AES_KEY, APP_ID)


async def send(client, body: bytes, safe: bool, query=None, headers=None):
    """Posts a body as WeChat would (in safe mode: encrypted, with a msg_signature over the ciphertext)."""
    if safe:
        encrypted = CRYPTO.encrypt(body.decode("utf-8", "replace"))
        query = query or signed(encrypt_type="aes")
        query["msg_signature"] = signature(TOKEN, query["timestamp"], query["nonce"], encrypted)
        body = f"<xml><Encrypt>{cdata(encrypted)}</Encrypt></xml>".encode()
    response = await client.post("/wechat", params=query or signed(), data=body, headers=headers)
    text = await response.text()
    assert response.status < 500, (body[:80], response.status, text[:200])
    return response.status, text


def reply_content(text, safe):
    reply = {child.tag: child.text for child in ET.fromstring(text)}
    if safe:
        reply = {child.tag: child.text for child in ET.fromstring(CRYPTO.decrypt(reply["Encrypt"]))}
    return reply["Content"]


@pytest.fixture(params=["safe", "plaintext"])
async def door(request, make_client, settings):
    """The gateway in safe mode (EncodingAESKey set) or in plaintext mode (none), throttling off."""
    safe = request.param == "safe"
    changes = {"rate_limit_per_ip": 0, "rate_limit_burst": 100_000}
    if not safe:
        changes["wechat_aes_key"] = ""
    return await make_client(dataclasses.replace(settings, **changes)), safe


async def a_resident_is_answered(client, safe, upstream):
    status, text = await send(client, message_xml(content="医保在哪交", open_id="oAfter"), safe)
    assert status == 200 and reply_content(text, safe).startswith("答：医保在哪交")
    assert upstream.requests[-1]["message"] == "医保在哪交"


def assert_clean(upstream):
    for request in upstream.requests:
        assert not INVISIBLE.search(request["message"]) and not INVISIBLE.search(request["sender"]), request


async def test_odd_text_as_content_and_as_recognised_voice(door, upstream):
    client, safe = door
    for i, text in enumerate(XML_TEXTS):
        for msg_type, field in (("text", "Content"), ("voice", "Recognition")):
            status, body = await send(client, message_xml(msg_type, text, f"oText{i}", field=field), safe)
            assert status == 200
            if body != "success":  # "success": the answer goes later through the service API
                assert reply_content(body, safe).strip()
    assert_clean(upstream)
    await a_resident_is_answered(client, safe, upstream)


async def test_a_message_of_invisible_characters_is_asked_to_be_typed(door, upstream):
    client, safe = door
    status, body = await send(client, message_xml(content="\u202e\u200b\ufeff\x85 \t"), safe)
    assert status == 200 and reply_content(body, safe) == EMPTY_TEXT_REPLY
    assert not upstream.requests


async def test_control_characters_in_content_do_not_reach_rasa(door, upstream):
    client, safe = door
    await send(client, message_xml(content="\u202e转人工\u2066呀\u2069\x85"), safe)
    assert upstream.requests[-1]["message"] == "转人工呀"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><MsgType>text</MsgType><Content>&lol3;</Content></xml>'
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<xml><MsgType>text</MsgType><Content>&xxe;</Content></xml>"
)
MALFORMED = [
    b"",
    b"not xml at all",
    b"<xml>",
    b"<xml><MsgType>text</MsgType>",
    b"<xml><a></b></xml>",
    b"<xml><MsgType>text</MsgType><Content>\x00</Content></xml>",
    b"<xml><MsgType>text</MsgType><Content>&#0;&#x1;</Content></xml>",
    b"<xml><MsgType>text</MsgType><Content>\xed\xa0\x80</Content></xml>",  # a surrogate in UTF-8 bytes
    b"\xff\xfe<\x00x\x00m\x00l\x00/\x00>\x00",
    "<?xml version='1.0' encoding='gbk'?><xml><MsgType>text</MsgType><Content>你好</Content></xml>".encode("gbk"),
    BILLION_LAUGHS,
    XXE,
    b"<xml>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</xml>",
    b"<xml>" + b"<MsgType>text</MsgType>" * 2000 + b"</xml>",
    b"<xml><MsgType>text</MsgType><FromUserName>" + b"o" * 20_000 + b"</FromUserName><Content>hi</Content></xml>",
    b"<xml><MsgType>text</MsgType><MsgId>" + b"9" * 5000 + b"</MsgId><CreateTime>x</CreateTime></xml>",
    b"<xml><MsgType></MsgType></xml>",
    b"<xml><MsgType>\xe2\x80\xaetext</MsgType><Content>hi</Content></xml>",
    b"<xml><MsgType>event</MsgType><Event>" + b"subscribe" * 100 + b"</Event></xml>",
    b"<xml><Encrypt>not base64 at all!</Encrypt></xml>",
    b'{"MsgType": "text", "Content": "hi"}',
    b"MsgType=text&Content=hi",
    b"<xml><MsgType>text</MsgType><Content>" + "问".encode() * 30_000 + b"</Content></xml>",  # over 64 KB
]


async def test_malformed_and_hostile_xml(door, upstream):
    client, safe = door
    for body in MALFORMED:
        for content_type in ("text/xml", "application/json", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": content_type} if content_type else None
            await send(client, body, safe, headers=headers)
    assert not any("lollol" in r["message"] or "root:" in r["message"] for r in upstream.requests)
    await a_resident_is_answered(client, safe, upstream)


@pytest.mark.parametrize(
    "encrypted",
    ["", "not base64!", "AAAA", "A" * 44, "QUJD" * 8, "=" * 64, "\u202e" * 8, "A" * 60_000],
)
async def test_ciphertexts_that_do_not_decrypt(make_client, settings, upstream, encrypted):
    client = await make_client(settings)
    query = signed(encrypt_type="aes")
    query["msg_signature"] = signature(TOKEN, query["timestamp"], query["nonce"], encrypted)
    body = f"<xml><Encrypt>{cdata(encrypted)}</Encrypt></xml>".encode()
    response = await client.post("/wechat", params=query, data=body)
    assert 400 <= response.status < 500
    assert not upstream.requests


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "签名" * 20},  # non-ASCII: hmac.compare_digest raised TypeError
        {"signature": "é" * 40},
        {"signature": "0" * 10_000},
        {"signature": ""},
        {"msg_signature": "签名"},
    ],
)
async def test_odd_signatures_are_refused(make_client, settings, upstream, change):
    client = await make_client(settings)
    response = await client.post("/wechat", params={**signed(encrypt_type="aes"), **change}, data=message_xml())
    assert 400 <= response.status < 500, (change, response.status)  # 400: a URL over aiohttp's line limit
    if "signature" in change:
        response = await client.get("/wechat", params={**signed(echostr="e"), **change})
        assert 400 <= response.status < 500
    assert not upstream.requests


@pytest.mark.parametrize(
    "timestamp, nonce",
    [
        ("١٧٠٠٠٠٠٠٠٠", "n1"),  # Arabic-Indic digits
        ("9" * 5000, "n2"),
        ("-1", "n3"),
        (" 1 ", "n4"),
        ("1e10", "n5"),
        (None, "n" * 10_000),
        (None, "\u202e\u0000"),
        (None, "签名"),
    ],
)
async def test_odd_timestamps_and_nonces_signed_with_the_token(door, upstream, timestamp, nonce):
    """Correctly signed, so the values themselves are what is checked: never a 5xx."""
    client, safe = door
    timestamp = timestamp or str(int(time.time()))
    query = {"signature": signature(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    for extra in ({"encrypt_type": "aes"} if safe else {}, {"encrypt_type": "rot13"}):
        response = await client.post("/wechat", params={**query, **extra}, data=message_xml())
        assert response.status < 500, (timestamp[:20], nonce[:20], response.status)
    response = await client.get("/wechat", params={**query, "echostr": "e"})
    assert response.status < 500
    await a_resident_is_answered(client, safe, upstream)
