"""The WeChat callback, driven by requests signed and encrypted here from WeChat's public description of the
protocol (independently of bot/wechat.py), with a local server standing in for WeChat's API."""

import asyncio
import base64
import hashlib
import os
import struct
import time
import xml.etree.ElementTree as ET

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import select

from bot import db, tickets
from bot.models import TicketMessage

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


async def post(client, xml_text, query=None):
    response = await client.post("/wechat", params=query or signed_query(), data=xml_text.encode())
    return response.status, await response.text()


def fields(xml_text):
    return {child.tag: child.text for child in ET.fromstring(xml_text)}


async def ask(client, xml_text, safe):
    """Posts a message in plaintext or in safe mode; the reply's Content, or "success" for no passive reply."""
    if safe:
        encrypted = encrypt(xml_text)
        query = signed_query(encrypt_type="aes")
        query["msg_signature"] = sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted)
        status, body = await post(client, f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>", query)
    else:
        status, body = await post(client, xml_text)
    assert status == 200
    if body == "success":
        return body
    reply = fields(body)
    if safe:
        assert reply["MsgSignature"] == sha1_sorted(TOKEN, reply["TimeStamp"], reply["Nonce"], reply["Encrypt"])
        inner, app_id = decrypt(reply["Encrypt"])
        assert app_id == APP_ID
        reply = fields(inner)
    assert reply["MsgType"] == "text" and reply["ToUserName"] == fields(xml_text)["FromUserName"]
    assert reply["Content"] and reply["Content"].strip()  # never an empty message to a resident
    return reply["Content"]


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


MODES = pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "aes"])


@MODES
async def test_recognised_voice_is_answered_like_text(client, upstream, safe):
    content = await ask(client, voice_message("去外省打工有交通补贴吗。", msg_id="60001"), safe)
    assert content == "答：去外省打工有交通补贴吗\n您可以回复：医保"  # no "我听到的是": the recognition is clear
    [request] = upstream.requests
    assert request["message"] == "去外省打工有交通补贴吗"  # WeChat's trailing "。" is gone
    assert request["sender"] == "wechat:oVoice" and request["input_channel"] == "wechat"


@MODES
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
async def test_unsure_recognition_says_what_was_heard(client, upstream, safe, recognition, heard):
    content = await ask(client, voice_message(recognition, msg_id="60002"), safe)
    assert content == f"我听到的是：“{heard}”。如果不对，请再说一遍或打字。\n答：{heard}\n您可以回复：医保"
    assert [r["message"] for r in upstream.requests] == [heard]


@MODES
@pytest.mark.parametrize("recognition", [None, "", "   ", "。"], ids=["absent", "empty", "blank", "punctuation"])
async def test_voice_without_recognition_asks_to_type(client, upstream, safe, recognition):
    content = await ask(client, voice_message(recognition, msg_id="60003"), safe)
    assert "语音" in content and "打字" in content and "转成文字" in content
    assert not upstream.requests


async def test_a_retried_voice_is_answered_once(client, upstream):
    upstream.delay = 0.3
    message = voice_message("养老保险怎么交", msg_id="60004")
    (s1, r1), (s2, r2) = await asyncio.gather(post(client, message), post(client, message))
    s3, r3 = await post(client, message)
    assert s1 == s2 == s3 == 200
    assert len(upstream.requests) == 1
    assert (
        fields(r1)["Content"]
        == fields(r2)["Content"]
        == fields(r3)["Content"]
        == "答：养老保险怎么交\n您可以回复：医保"
    )


async def test_a_slow_unsure_voice_answer_keeps_what_was_heard(client, upstream, wechat_api):
    upstream.delay = 1.5  # longer than the reply deadline (1 s in these tests)
    assert await ask(client, voice_message("低保", msg_id="60005", open_id="oSlowVoice"), False) == "success"
    assert await ask(client, voice_message("低保", msg_id="60005", open_id="oSlowVoice"), False) == "success"
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


@MODES
@pytest.mark.parametrize("msg_type", list(OTHER_MESSAGES))
async def test_other_messages_get_a_polite_reply(client, upstream, safe, msg_type):
    extra, named = OTHER_MESSAGES[msg_type]
    content = await ask(
        client, other_message(msg_type, extra, msg_id=f"700{list(OTHER_MESSAGES).index(msg_type)}"), safe
    )
    assert named in content and ("文字" in content or "打字" in content)
    assert not upstream.requests


@MODES
async def test_other_events_get_success_and_no_message(client, upstream, safe):
    for event, extra in [
        ("unsubscribe", ""),
        ("CLICK", "<EventKey><![CDATA[MENU_1]]></EventKey>"),
        ("VIEW", "<EventKey><![CDATA[https://example.org/]]></EventKey>"),
        ("SCAN", "<EventKey><![CDATA[123]]></EventKey><Ticket><![CDATA[t]]></Ticket>"),
        ("LOCATION", "<Latitude>26.58</Latitude><Longitude>106.71</Longitude><Precision>65</Precision>"),
    ]:
        assert await ask(client, event_message(event, extra=extra), safe) == "success"
    assert not upstream.requests


@MODES
async def test_an_open_ticket_does_not_silence_the_assistant(client, upstream, safe):
    """The action server copies a message into the open ticket and keeps answering; the gateway always asks Rasa."""
    with db.session_scope() as s:
        tickets.open_ticket(s, "wechat:oTicket", "wechat", ["居民：找工作人员"], None)
    text = await ask(client, text_message("我的低保什么时候到", msg_id="80001", open_id="oTicket"), safe)
    voice = await ask(client, voice_message("医保卡丢了怎么办。", msg_id="80002", open_id="oTicket"), safe)
    assert text == "答：我的低保什么时候到\n您可以回复：医保"
    assert voice == "答：医保卡丢了怎么办\n您可以回复：医保"
    assert [(r["sender"], r["message"]) for r in upstream.requests] == [
        ("wechat:oTicket", "我的低保什么时候到"),
        ("wechat:oTicket", "医保卡丢了怎么办"),
    ]
    with db.session_scope() as s:  # not copied twice: the copy is the action server's
        assert s.scalars(select(TicketMessage)).all() == []
