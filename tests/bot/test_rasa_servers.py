"""The gateway in front of several Rasa servers (bot/clients/rasa.py, bot/replicas.py): each conversation keeps to its
own server; a server that refuses the connection hands its conversations to the next and is passed over a while; a
message that may have reached Rasa (a timeout, a dropped answer) is never sent to another; /healthz names each."""

import dataclasses
import socket

import pytest
from aiohttp import web

from bot.clients import keys
from bot.replicas import rendezvous_order
from tests.bot.conftest import Upstream


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def second(aiohttp_server):
    stub = Upstream()
    stub.server = await aiohttp_server(stub.app)
    return stub


def url(stub) -> str:
    return f"http://127.0.0.1:{stub.server.port}"


def owned_by(server_url, servers, n=6, prefix="s"):
    """n senders whose conversations (api:<sender>) belong to `server_url` among `servers`."""
    senders = (f"{prefix}{i}" for i in range(10_000))
    return [s for s in senders if rendezvous_order(servers, f"api:{s}")[0] == server_url][:n]


async def chat(client, sender, message="医保在哪交"):
    response = await client.post("/api/chat", json={"sender": sender, "message": message})
    return response.status, await response.json()


async def test_each_conversation_keeps_to_its_own_server(make_client, settings, upstream, second):
    servers = [url(upstream), url(second)]
    client = await make_client(dataclasses.replace(settings, rasa_urls_listed=tuple(servers)))
    for sender in [f"resident-{i}" for i in range(16)]:
        for message in ("交通补贴多少钱", "那在省内呢", "要带什么材料"):
            status, _ = await chat(client, sender, message)
            assert status == 200
    for stub, server in ((upstream, servers[0]), (second, servers[1])):
        senders = {r["sender"] for r in stub.requests}
        assert senders and all(rendezvous_order(servers, s)[0] == server for s in senders)
        assert len(stub.requests) == 3 * len(senders)  # every turn of a conversation on the same server
    assert len(upstream.requests) + len(second.requests) == 48


async def test_a_refusing_server_hands_its_conversations_on_and_gets_them_back(
    make_client, settings, upstream, aiohttp_server
):
    down = f"http://127.0.0.1:{closed_port()}"
    servers = [url(upstream), down]
    client = await make_client(dataclasses.replace(settings, rasa_urls_listed=tuple(servers)))
    pool = client.app[keys.RASA]
    pool.replicas._down_seconds = 0.3  # the test's "few seconds"
    orphans = owned_by(down, servers)
    for sender in orphans:
        status, replies = await chat(client, sender)
        assert status == 200 and replies[0]["text"] == "答：医保在哪交"
    assert sorted(r["sender"] for r in upstream.requests) == sorted(f"api:{s}" for s in orphans)
    assert pool.replicas.is_down(down)
    # the server comes back on its port: once the mark runs out, its conversations go home
    back = Upstream()
    back.server = await aiohttp_server(back.app, port=int(down.rsplit(":", 1)[1]))
    pool.replicas._down_until[down] = 0.0
    for sender in orphans:
        assert (await chat(client, sender))[0] == 200
    assert sorted(r["sender"] for r in back.requests) == sorted(f"api:{s}" for s in orphans)
    assert not pool.replicas.is_down(down)


async def test_all_servers_refusing_is_a_friendly_503(make_client, settings):
    servers = (f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}")
    client = await make_client(dataclasses.replace(settings, rasa_urls_listed=servers))
    status, replies = await chat(client, "nobody")
    assert status == 503 and "稍后再试" in replies[0]["text"]


async def test_a_slow_server_keeps_its_message(make_client, settings, upstream, second):
    """Rasa may still be answering: sending the message to another server could answer the turn twice."""
    servers = [url(upstream), url(second)]
    client = await make_client(
        dataclasses.replace(settings, rasa_urls_listed=tuple(servers), reply_deadline_seconds=0.3)
    )
    upstream.delay = second.delay = 1.5
    sender = owned_by(servers[0], servers, n=1)[0]
    status, replies = await chat(client, sender)
    assert status == 503 and "有点慢" in replies[0]["text"]
    assert [r["sender"] for r in upstream.requests] == [f"api:{sender}"] and not second.requests
    assert not client.app[keys.RASA].replicas.is_down(servers[0])


async def test_a_dropped_answer_is_not_sent_again(make_client, settings, second, aiohttp_server):
    """The server took the message and the connection broke before its answer: the turn may be stored, so it is not
    asked again elsewhere; the resident hears to try again."""
    taken = []

    async def take_and_drop(request):
        taken.append(await request.json())
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_post("/webhooks/gateway/webhook", take_and_drop)
    dropping = await aiohttp_server(app)
    servers = [url(second), f"http://127.0.0.1:{dropping.port}"]
    client = await make_client(dataclasses.replace(settings, rasa_urls_listed=tuple(servers)))
    sender = owned_by(servers[1], servers, n=1)[0]
    status, replies = await chat(client, sender)
    assert status == 503 and "稍后再试" in replies[0]["text"]
    assert len(taken) == 1 and not second.requests


async def test_health_names_each_server_and_is_503_only_when_none_is_up(make_client, settings, upstream):
    down = f"http://127.0.0.1:{closed_port()}"
    client = await make_client(dataclasses.replace(settings, rasa_urls_listed=(url(upstream), down)))
    response = await client.get("/healthz")
    body = await response.json()
    assert response.status == 200 and body["dependencies"]["rasa"] == "ok"
    assert body["rasa_servers"] == {url(upstream): "ok", down: "down"}
    none_up = await make_client(dataclasses.replace(settings, rasa_urls_listed=(down,)))
    response = await none_up.get("/healthz")
    body = await response.json()
    assert response.status == 503 and body["dependencies"]["rasa"] == "down" and body["rasa_servers"] == {down: "down"}
