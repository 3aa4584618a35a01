"""The WeChat callback, driven by requests signed and encrypted here from WeChat's public description of the
protocol (independently of bot/wechat.py), with a local server standing in for WeChat's API."""

import asyncio
import base64
import hashlib
import os
import struct
import time
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .conftest import AES_KEY, APP_ID, TOKEN

KEY = base64.b64decode(AES_KEY + "=")


def sha1_sorted(*parts):
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed_query(**extra):
    timestamp, nonce = str(int(time.time())), "nonce123"
    return {"signature": sha1_sorted(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def text_message(content, msg_id="10001", open_id="oUser1", msg_type="text", extra=""):
    return (
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>{extra}</xml>"
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


async def post(client, xml_text, query=None):
    response = await client.post("/wechat", params=query or signed_query(), data=xml_text.encode())
    return response.status, await response.text()


def fields(xml_text):
    return {child.tag: child.text for child in ET.fromstring(xml_text)}


async def test_url_verification(client):
    response = await client.get("/wechat", params=signed_query(echostr="echo-42"))
    assert response.status == 200 and await response.text() == "echo-42"
    bad = dict(signed_query(echostr="echo-42"), signature="0" * 40)
    assert (await client.get("/wechat", params=bad)).status == 403
    assert (await client.get("/wechat", params={"echostr": "x"})).status == 403


async def test_plaintext_text_message(client, upstream):
    status, body = await post(client, text_message("医保在哪交"))
    assert status == 200
    reply = fields(body)
    assert reply["ToUserName"] == "oUser1" and reply["FromUserName"] == "gh_account" and reply["MsgType"] == "text"
    assert reply["Content"] == "答：医保在哪交\n您可以回复：医保"
    assert upstream.requests[-1]["sender"] == "wechat:oUser1" and upstream.requests[-1]["input_channel"] == "wechat"


async def test_unsigned_post_is_refused(client, upstream):
    bad = dict(signed_query(), signature="f" * 40)
    status, _ = await post(client, text_message("你好"), bad)
    assert status == 403 and not upstream.requests


async def test_safe_mode(client, upstream):
    encrypted = encrypt(text_message("去外省打工有补贴吗", msg_id="20001"))
    query = signed_query(encrypt_type="aes")
    query["msg_signature"] = sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted)
    body = f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    status, text = await post(client, body, query)
    assert status == 200
    reply = fields(text)
    assert reply["MsgSignature"] == sha1_sorted(TOKEN, reply["TimeStamp"], reply["Nonce"], reply["Encrypt"])
    inner, app_id = decrypt(reply["Encrypt"])
    assert app_id == APP_ID
    assert fields(inner)["Content"].startswith("答：去外省打工有补贴吗")
    assert "去外省打工有补贴吗" not in text  # the reply is not in clear text


async def test_safe_mode_refuses_bad_signature_and_other_app_ids(client, upstream):
    encrypted = encrypt(text_message("你好", msg_id="20002"))
    query = signed_query(encrypt_type="aes", msg_signature="0" * 40)
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    assert (await post(client, body, query))[0] == 403
    encrypted = encrypt(text_message("你好", msg_id="20003"), app_id="wxSomebodyElse")
    query = signed_query(encrypt_type="aes")
    query["msg_signature"] = sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted)
    assert (await post(client, f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>", query))[0] == 400
    assert not upstream.requests


async def test_entities_are_not_expanded(client, upstream):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>&lol2;</Content></xml>"
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'
    )
    for body in (bomb, external):
        status, _ = await post(client, body)
        assert status == 400
    assert not upstream.requests


async def test_a_retry_never_becomes_a_second_turn(client, upstream):
    upstream.delay = 0.3
    message = text_message("雨露计划", msg_id="30001")
    (s1, r1), (s2, r2) = await asyncio.gather(post(client, message), post(client, message))
    (s3, r3) = await post(client, message)
    assert len(upstream.requests) == 1
    assert s1 == s2 == s3 == 200
    assert fields(r1)["Content"] == fields(r2)["Content"] == fields(r3)["Content"]


async def test_slow_answers_go_through_the_service_api(client, upstream, wechat_api):
    upstream.delay = 1.5  # longer than the reply deadline (1 s in these tests)
    status, body = await post(client, text_message("养老院在哪", msg_id="40001", open_id="oSlow"))
    assert status == 200 and body == "success"
    # WeChat retries: still one turn, still "success"
    assert (await post(client, text_message("养老院在哪", msg_id="40001", open_id="oSlow")))[1] == "success"
    for _ in range(50):
        if wechat_api.sent:
            break
        await asyncio.sleep(0.1)
    assert len(upstream.requests) == 1
    [(token, payload)] = wechat_api.sent
    assert token == "TOKEN1"
    assert payload == {"touser": "oSlow", "msgtype": "text", "text": {"content": "答：养老院在哪\n您可以回复：医保"}}
    # a second slow answer reuses the cached access token
    await post(client, text_message("敬老院", msg_id="40002", open_id="oSlow"))
    for _ in range(50):
        if len(wechat_api.sent) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(wechat_api.sent) == 2 and wechat_api.token_requests == 1


async def test_subscribe_gets_the_welcome_menu(client, upstream):
    event = (
        "<xml><ToUserName>gh_account</ToUserName><FromUserName>oNew</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>event</MsgType><Event>subscribe</Event></xml>"
    )
    status, body = await post(client, event)
    assert status == 200 and fields(body)["Content"].startswith("答：/greet")
    assert upstream.requests[-1]["message"] == "/greet"


async def test_images_and_voice_get_a_text_only_notice(client, upstream):
    for msg_type in ("image", "voice", "video", "location"):
        status, body = await post(client, text_message("", msg_id=f"5{msg_type}", msg_type=msg_type))
        assert status == 200 and "只能看懂文字" in fields(body)["Content"]
    assert not upstream.requests
