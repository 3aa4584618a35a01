"""The gateway's /api/chat, /healthz and pages, with every bad input, and Rasa down or slow."""

import dataclasses
import json
import socket

import pytest
from yarl import URL


async def chat(client, body, raw=None):
    data = raw if raw is not None else json.dumps(body)
    response = await client.post("/api/chat", data=data, headers={"Content-Type": "application/json"})
    return response.status, await response.json()


async def test_answers_in_the_rest_channel_contract(client, upstream):
    status, replies = await chat(client, {"sender": "u1", "message": "医保在哪交", "channel": "kiosk"})
    assert status == 200
    assert replies == [
        {"recipient_id": "u1", "text": "答：医保在哪交", "buttons": [{"title": "医保", "payload": "医保"}]}
    ]
    assert upstream.requests[-1]["input_channel"] == "kiosk"


@pytest.mark.parametrize(
    "body, raw, status, code",
    [
        (None, "not json", 400, "not_json"),
        (None, "\xff\xfe", 400, "not_json"),
        (["sender", "message"], None, 400, "not_an_object"),
        ({"message": "你好"}, None, 400, "bad_sender"),
        ({"sender": 42, "message": "你好"}, None, 400, "bad_sender"),
        ({"sender": "", "message": "你好"}, None, 400, "bad_sender"),
        ({"sender": "u", "message": None}, None, 400, "bad_message"),
        ({"sender": "u", "message": ["你好"]}, None, 400, "bad_message"),
        ({"sender": "u", "message": "   "}, None, 400, "empty_message"),
        ({"sender": "u", "message": "问" * 2001}, None, 413, "message_too_long"),
        ({"sender": "u", "message": "你好", "channel": "sms"}, None, 400, "bad_channel"),
    ],
)
async def test_bad_requests_get_a_json_error(client, upstream, body, raw, status, code):
    got_status, error = await chat(client, body, raw)
    assert (got_status, error["error"]) == (status, code)
    assert error["message"]  # a sentence a person can read
    assert not upstream.requests


async def test_a_body_over_64kb_is_refused(client, upstream):
    status, error = await chat(client, {"sender": "u", "message": "问" * 30000})
    assert status == 413 and "64KB" in error["message"]
    assert not upstream.requests


async def test_2000_characters_are_fine(client):
    status, _ = await chat(client, {"sender": "u", "message": "问" * 2000})
    assert status == 200


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_rasa_down_gets_a_friendly_message(make_client, settings):
    client = await make_client(dataclasses.replace(settings, rasa_url=f"http://127.0.0.1:{_closed_port()}"))
    status, replies = await chat(client, {"sender": "u", "message": "你好"})
    assert status == 503
    assert "稍后再试" in replies[0]["text"] and "社区居委会便民服务窗口" in replies[0]["text"]
    assert replies[0]["recipient_id"] == "u"


async def test_rasa_slow_gets_a_friendly_message(make_client, settings, upstream):
    upstream.delay = 1.5
    client = await make_client(dataclasses.replace(settings, rasa_timeout_seconds=0.3))
    status, replies = await chat(client, {"sender": "u", "message": "你好"})
    assert status == 503 and "稍后再试" in replies[0]["text"]


async def test_health(client, make_client, settings):
    response = await client.get("/healthz")
    body = await response.json()
    assert response.status == 200
    assert body["dependencies"] == {"rasa": "ok", "action_server": "ok", "database": "ok"}
    down = await make_client(dataclasses.replace(settings, rasa_url=f"http://127.0.0.1:{_closed_port()}"))
    response = await down.get("/healthz")
    body = await response.json()
    assert response.status == 503 and body["status"] == "degraded" and body["dependencies"]["rasa"] == "down"


async def test_pages(client):
    response = await client.get("/")
    assert response.status == 200 and "安居助手" in await response.text()
    response = await client.get("/kiosk")
    page = await response.text()
    assert response.status == 200 and 'data-idle-seconds="90"' in page
    for asset in ("anju.js", "kiosk.js", "style.css"):
        assert (await client.get(f"/static/{asset}")).status == 200
    # the raw path as an attacker sends it (aiohttp's client would normalise "/static/../app.py" to "/app.py")
    for raw in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py"):
        response = await client.get(URL(raw, encoded=True))
        assert response.status in (403, 404), raw
        assert "init_app" not in await response.text()


async def test_an_empty_answer_from_rasa_still_gives_the_resident_words(client, upstream):
    upstream.silent = True
    response = await client.post("/api/chat", json={"sender": "s-empty", "message": "敬老院咋申请"})
    assert response.status == 200
    replies = await response.json()
    assert [r for r in replies if r.get("text")], replies
    assert "换个说法" in replies[-1]["text"] and replies[-1]["recipient_id"] == "s-empty"


async def test_security_headers_on_every_response(client):
    for path in ("/", "/kiosk", "/static/style.css", "/healthz", "/staff/login", "/no-such-page"):
        response = await client.get(path)
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert (
            "script-src 'self'" in headers["Content-Security-Policy"]
            and "unsafe-inline" not in headers["Content-Security-Policy"]
        )
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        assert "aiohttp" not in headers.get("Server", "").lower() and "python" not in headers.get("Server", "").lower()
    api = await client.post("/api/chat", json={"sender": "h", "message": "你好"})
    assert api.headers["Cache-Control"] == "no-store"
    assert (await client.get("/staff/login")).headers["Cache-Control"] == "no-store"
    page = await (await client.get("/")).text()
    assert "<script>" not in page  # no inline script: the policy forbids it
