"""The gateway's /api/chat, /healthz and pages, with every bad input, and Rasa down or slow."""

import asyncio
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
    status, replies = await chat(client, {"sender": "u1", "message": "医保在哪交"})
    assert status == 200
    assert replies == [
        {"recipient_id": "u1", "text": "答：医保在哪交", "buttons": [{"title": "医保", "payload": "医保"}]}
    ]
    assert upstream.requests[-1]["input_channel"] == "api" and upstream.requests[-1]["sender"] == "api:u1"
    assert upstream.refused == 0  # the gateway showed the gateway channel its token


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
        ({"sender": "u", "message": "你好", "channel": "kiosk"}, None, 400, "bad_channel"),  # not this door's
        ({"sender": "u", "message": "你好", "channel": "wechat"}, None, 400, "bad_channel"),
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
    client = await make_client(dataclasses.replace(settings, reply_deadline_seconds=0.3))
    status, replies = await chat(client, {"sender": "u", "message": "你好"})
    assert status == 503 and "有点慢" in replies[0]["text"] and "稍后再试" in replies[0]["text"]


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


# ---------------------------------------------------------------- doors, namespaces, throttling


@pytest.mark.parametrize("sender", ["wechat:oAbC123", "kiosk:k-1", "web:w-1", "api:u"])
async def test_a_client_of_the_api_cannot_reach_another_doors_conversation(client, upstream, sender):
    """Whatever the sender says, a client of /api/chat lands in the api namespace: "wechat:<openid>" sent here is
    "api:wechat:<openid>" to Rasa, a conversation of its own."""
    status, replies = await chat(client, {"sender": sender, "message": "俺家能领啥补贴"})
    assert status == 200 and replies[0]["recipient_id"] == sender
    assert upstream.requests[-1]["sender"] == f"api:{sender}"


@pytest.mark.parametrize("door", ["web", "kiosk"])
async def test_each_page_has_its_own_door(client, upstream, door):
    response = await client.post(f"/api/{door}/chat", json={"sender": "p-1", "message": "你好"})
    assert response.status == 200
    assert (upstream.requests[-1]["sender"], upstream.requests[-1]["input_channel"]) == (f"{door}:p-1", door)
    response = await client.post(f"/api/{door}/chat", json={"sender": "p-1", "message": "你好", "channel": "api"})
    assert response.status == 400


async def test_staff_messages_are_read_by_post_and_per_door(client, demo_database):
    from bot import db, tickets

    def staff_said(session):
        ticket = tickets.open_ticket(session, "web:page-1", "web", ["居民：转人工"], None)
        session.flush()
        tickets.staff_reply(session, ticket.id, "王主任", "您好，我是社区的王主任")

    db.run(staff_said)
    response = await client.post("/api/web/messages", json={"sender": "page-1", "after": 0})
    assert response.status == 200 and [m["text"] for m in await response.json()] == ["您好，我是社区的王主任"]
    # the same sender through another door sees nothing: it is another conversation
    for door in ("api", "kiosk"):
        path = "/api/messages" if door == "api" else f"/api/{door}/messages"
        response = await client.post(path, json={"sender": "page-1", "after": 0})
        assert response.status == 200 and await response.json() == []
    # ids stay out of URLs: the old query-string form is gone
    response = await client.get("/api/messages?sender=web:page-1&after=0")
    assert response.status == 405


@pytest.mark.parametrize("after", [-1, 10**30, "1", 1.5, True, None])
async def test_a_bad_after_is_refused(client, after):
    response = await client.post("/api/web/messages", json={"sender": "p", "after": after})
    assert response.status == 400 and (await response.json())["error"] == "bad_after"


async def test_a_turn_with_household_data_is_flagged_private(client, upstream):
    upstream.private = True
    response = await client.post("/api/web/chat", json={"sender": "p-2", "message": "俺家能领啥补贴"})
    replies = await response.json()
    assert replies and all(r.get("private") is True for r in replies)
    assert all("custom" not in r for r in replies)  # the mark itself is not passed on
    upstream.private = False
    replies = await (await client.post("/api/web/chat", json={"sender": "p-2", "message": "你好"})).json()
    assert not any(r.get("private") for r in replies)


async def test_a_burst_is_taken_then_one_a_second(make_client, settings, upstream):
    client = await make_client(dataclasses.replace(settings, rate_limit_per_ip=0))
    statuses = []
    for _ in range(14):
        response = await client.post("/api/chat", json={"sender": "fast", "message": "你好"})
        statuses.append(response.status)
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429] * 4
    response = await client.post("/api/chat", json={"sender": "fast", "message": "你好"})
    replies = await response.json()
    assert response.status == 429 and "请等几秒" in replies[0]["text"] and int(response.headers["Retry-After"]) >= 1
    assert len(upstream.requests) == 10  # nothing over the limit reached Rasa
    # another conversation is not held back by this one
    response = await client.post("/api/chat", json={"sender": "calm", "message": "你好"})
    assert response.status == 200


async def test_one_address_is_limited_per_minute(make_client, settings, upstream):
    client = await make_client(dataclasses.replace(settings, rate_limit_per_ip=5))
    statuses = [(await client.post("/api/chat", json={"sender": f"s{i}", "message": "你好"})).status for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2  # a new conversation per message does not get round it


async def test_forwarded_for_counts_only_from_a_trusted_proxy(make_client, settings, upstream):
    # the test client connects from 127.0.0.1
    untrusted = await make_client(dataclasses.replace(settings, rate_limit_per_ip=2))
    statuses = [
        (
            await untrusted.post(
                "/api/chat", json={"sender": f"u{i}", "message": "你好"}, headers={"X-Forwarded-For": f"10.0.0.{i}"}
            )
        ).status
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]  # a header a client writes itself changes nothing
    trusted = await make_client(dataclasses.replace(settings, rate_limit_per_ip=2, trusted_proxies="127.0.0.1/32"))
    statuses = [
        (
            await trusted.post(
                "/api/chat", json={"sender": f"t{i}", "message": "你好"}, headers={"X-Forwarded-For": f"10.0.0.{i}"}
            )
        ).status
        for i in range(3)
    ]
    assert statuses == [200, 200, 200]  # behind the proxy, each resident counts on their own


async def test_requests_in_flight_to_rasa_are_capped(make_client, settings, upstream):
    upstream.delay = 0.3
    client = await make_client(dataclasses.replace(settings, rasa_max_concurrent=2, rasa_timeout_seconds=5))
    responses = await asyncio.gather(
        *(client.post("/api/chat", json={"sender": f"c{i}", "message": "你好"}) for i in range(6))
    )
    assert [r.status for r in responses] == [200] * 6
    assert upstream.max_in_flight == 2
