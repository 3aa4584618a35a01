"""Two gateways over one Redis behave as one (bot/clients/shared_state.py): WeChat's retry of a message reaching the
other gateway is answered from the first turn (Rasa asked once, the answer sent once), a nonce spent at one gateway is
spent at both, and a conversation or an address is limited once however its messages are split. With Redis down the
gateways keep answering, each on its own, and /healthz says so.

Both gateways run in this test's event loop with their own apps, Redis connections and memories, on the real Redis of
TEST_REDIS_URL; `upstream` stands in for Rasa, `wechat_api` for WeChat's service API."""

import asyncio
import dataclasses
import logging
import time

import pytest
import redis

from bot.clients import shared_state
from bot.throttle import Throttle

from .conftest import TOKEN
from .test_wechat import Door, event_message, fields, sha1_sorted, signed_query, text_message, wait_for


@pytest.fixture
def shared_settings(settings, redis_url):
    return dataclasses.replace(settings, redis_url=redis_url)


@pytest.fixture
async def gateways(make_client, shared_settings):
    """Gateways A and B (safe mode), over the same Redis."""
    return [Door(await make_client(shared_settings), safe=True) for _ in "AB"]


@pytest.fixture
async def plain_gateways(make_client, shared_settings):
    plain = dataclasses.replace(shared_settings, wechat_aes_key="")
    return [Door(await make_client(plain), safe=False) for _ in "AB"]


ANSWER = "答：雨露计划\n您可以回复：医保"


async def test_a_retry_at_the_other_gateway_is_answered_from_the_first_turn(gateways, upstream, redis_url):
    a, b = gateways
    upstream.delay = 0.5
    message = text_message("雨露计划", msg_id="80001", open_id="oShared")

    async def retry_at_b():
        await asyncio.sleep(0.1)  # WeChat's retry, signed afresh, while A is still waiting for Rasa
        return await b.post(message)

    (status_a, body_a), (status_b, body_b) = await asyncio.gather(a.post(message), retry_at_b())
    assert status_a == status_b == 200
    assert a.content(body_a, message) == b.content(body_b, message) == ANSWER
    assert len(upstream.requests) == 1
    # a retry after the answer, at either gateway, is still that turn
    assert await b.ask(message) == await a.ask(message) == ANSWER
    assert len(upstream.requests) == 1
    # the answer stays in Redis for a minute at most; the turn's claim for the deduplication window
    with redis.Redis.from_url(redis_url) as r:
        [answer_key] = r.keys("anju:wechat:turn:*:answer")
        assert 0 < r.ttl(answer_key) <= 60
        # sealed: Redis and its snapshots never see the answer (it may show a household)
        stored = r.get(answer_key)
        assert "雨露计划".encode() not in stored and ANSWER.encode() not in stored
        assert 60 < r.ttl(answer_key.decode().removesuffix(":answer")) <= 300


async def test_a_slow_answer_goes_out_once_through_the_service_api(gateways, upstream, wechat_api):
    """Rasa slower than the reply deadline (1 s here): A says "success", WeChat's retries at B say "success" too, and
    the answer goes out once, through the service API."""
    a, b = gateways
    upstream.delay = 1.5
    message = text_message("养老院在哪", msg_id="80002", open_id="oSlowShared")
    (_, first), (_, retry) = await asyncio.gather(a.post(message), b.post(message))
    assert first == retry == "success"
    await wait_for(lambda: wechat_api.sent)
    assert await b.ask(message) == "success"  # a retry after the answer went out: never a second copy
    await asyncio.sleep(0.5)
    assert len(upstream.requests) == 1
    assert [payload for _, payload in wechat_api.sent] == [
        {"touser": "oSlowShared", "msgtype": "text", "text": {"content": "答：养老院在哪\n您可以回复：医保"}}
    ]


@pytest.mark.parametrize("first", ["passive", "service"])
async def test_the_delivery_is_claimed_once_across_gateways(redis_url, first):
    """Whichever gateway claims first decides: replies may carry the answer any number of times (WeChat keeps one),
    the service API sends it only when no reply did, and then no reply does."""
    shared = [shared_state.SharedState(redis_url) for _ in "AB"]
    try:
        turns = shared_state.SharedTurns(shared[0])
        owner, started = await turns.start("oClaim:84001", _answer)
        assert started and await owner.answer(1) == "答"
        retry = await shared_state.SharedTurns(shared[1]).find("oClaim:84001")
        assert isinstance(retry, shared_state.RemoteTurn) and await retry.answer(1) == "答"
        assert await (owner, retry)[first == "passive"].claim_delivery(first)
        if first == "passive":
            assert await owner.claim_delivery("passive") and not await owner.claim_delivery("service")
        else:
            assert not await retry.claim_delivery("passive") and not await owner.claim_delivery("passive")
            assert not await retry.claim_delivery("service")
    finally:
        for s in shared:
            await s.close()


async def _answer():
    return "答"


async def test_a_turn_whose_gateway_died_is_asked_again_by_one_other_gateway(redis_url):
    """Gateway A claims a MsgId and dies while Rasa works on it (its task never ends, its sign of life stops): WeChat's
    retry at B or C finds no answer and no sign of life, and exactly one of them asks Rasa again and answers."""
    shared = [shared_state.SharedState(redis_url) for _ in "ABC"]
    asked = []

    async def ask(name):
        asked.append(name)
        return f"答（{name}）"

    try:
        a, b, c = (shared_state.SharedTurns(s, alive_seconds=0.3, poll_seconds=0.02) for s in shared)
        hang = asyncio.Event()

        async def dies_while_asking():
            asked.append("A")
            await hang.wait()

        owner, started = await a.start("oDead:85001", dies_while_asking)
        assert started
        await asyncio.sleep(0.05)
        # alive: a retry waits for A's answer and does not ask again
        retry = await b.find("oDead:85001")
        assert await b.resume("oDead:85001", retry, lambda: ask("B")) == (retry, False)
        owner.task.cancel()  # A dies: no answer, no more signs of life
        await asyncio.sleep(0.5)
        retries = [await g.find("oDead:85001") for g in (b, c)]
        (turn_b, took_b), (turn_c, took_c) = await asyncio.gather(
            b.resume("oDead:85001", retries[0], lambda: ask("B")),
            c.resume("oDead:85001", retries[1], lambda: ask("C")),
        )
        assert sorted([took_b, took_c]) == [False, True]
        taker, other = (turn_b, turn_c) if took_b else (turn_c, turn_b)
        answer = await taker.answer(2)
        assert answer in ("答（B）", "答（C）") and asked == ["A", answer[2]]
        assert await other.answer(2) == answer  # the other gateway's retry gets the same answer
        assert await taker.claim_delivery("passive") and not await other.claim_delivery("service")
        # and a gateway that answered is never taken over
        await asyncio.sleep(0.5)
        again = await c.find("oDead:85001")
        assert await c.resume("oDead:85001", again, lambda: ask("C")) == (again, False)
        assert asked == ["A", answer[2]]
    finally:
        for s in shared:
            await s.close()


def test_a_shared_answer_opens_only_for_its_own_turn_with_the_shared_secret():
    box = shared_state.AnswerBox()
    sealed = box.seal("anju:wechat:turn:o1:1:answer", "您家的补贴已发放")
    assert box.open("anju:wechat:turn:o1:1:answer", sealed) == "您家的补贴已发放"
    assert shared_state.AnswerBox().open("anju:wechat:turn:o1:1:answer", sealed) == "您家的补贴已发放"  # any gateway
    assert box.open("anju:wechat:turn:o2:9:answer", sealed) is None  # moved to another turn
    assert box.open("anju:wechat:turn:o1:1:answer", sealed[:-1] + bytes([sealed[-1] ^ 1])) is None  # altered
    assert box.open("anju:wechat:turn:o1:1:answer", b"short") is None
    assert shared_state.AnswerBox(b"k" * 32).open("anju:wechat:turn:o1:1:answer", sealed) is None  # another secret


async def test_a_nonce_spent_at_one_gateway_is_refused_at_the_other(gateways, plain_gateways, upstream):
    a, b = gateways
    message = text_message("雨露计划", msg_id="81001", open_id="oReplay")
    query, body = a.request(message)
    assert a.content((await a.send(query, body))[1], message) == ANSWER
    # another message under the spent timestamp and nonce, even with a right msg_signature, at the other gateway
    _, other_body = b.request(text_message("我家能领什么补贴", msg_id="81002", open_id="oReplay"))
    encrypted = fields(other_body)["Encrypt"]
    reused = dict(query, msg_signature=sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted))
    assert (await b.send(reused, other_body))[0] == 403
    # the very same request again (as WeChat's retry can be) gets the first turn's answer there, never a new turn
    assert b.content((await b.send(query, body))[1], message) == ANSWER
    # an event has no turn: its nonce is not good twice, at either gateway
    event_query, event_body = a.request(event_message("subscribe", open_id="oNewShared"))
    assert (await a.send(event_query, event_body))[0] == 200
    assert (await b.send(event_query, event_body))[0] == 403
    assert [r["message"] for r in upstream.requests] == ["雨露计划", "/greet"]
    # a URL verification replayed at the other gateway
    verify = signed_query(echostr="echo-shared")
    assert (await a.client.get("/wechat", params=verify)).status == 200
    assert (await b.client.get("/wechat", params=verify)).status == 403
    # plaintext mode: not even the same message again
    pa, pb = plain_gateways
    plain_query, plain_body = pa.request(text_message("医保在哪交", msg_id="81003", open_id="oPlain"))
    assert (await pa.send(plain_query, plain_body))[0] == 200
    assert (await pb.send(plain_query, plain_body))[0] == 403


async def test_a_burst_split_across_gateways_is_limited_as_one(make_client, shared_settings, upstream):
    a, b = [await make_client(dataclasses.replace(shared_settings, rate_limit_per_ip=0)) for _ in "AB"]
    statuses = []
    for i in range(14):
        response = await (a, b)[i % 2].post("/api/chat", json={"sender": "fast", "message": "你好"})
        statuses.append(response.status)
    assert statuses == [200] * 10 + [429] * 4
    assert len(upstream.requests) == 10
    refused = await b.post("/api/chat", json={"sender": "fast", "message": "你好"})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await a.post("/api/chat", json={"sender": "calm", "message": "你好"})).status == 200


async def test_one_address_split_across_gateways_is_limited_per_minute(make_client, shared_settings, upstream):
    a, b = [await make_client(dataclasses.replace(shared_settings, rate_limit_per_ip=5)) for _ in "AB"]
    statuses = [
        (await (a, b)[i % 2].post("/api/chat", json={"sender": f"s{i}", "message": "你好"})).status for i in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2


async def test_one_openid_flooding_both_gateways_is_slowed_as_one(gateways, upstream):
    a, b = gateways
    answers = [
        await (a, b)[i % 2].ask(text_message(f"问题{i}", msg_id=f"8200{i}", open_id="oFloodShared")) for i in range(12)
    ]
    assert all(answer.startswith("答：") for answer in answers[:10])
    assert all("请等几秒" in answer for answer in answers[10:])
    assert len(upstream.requests) == 10


async def test_the_shared_bucket_refills_at_its_rate(redis_url):
    shared = shared_state.SharedState(redis_url)
    throttle = shared_state.SharedThrottle(shared, 0, burst=2, per_second=10)
    try:
        assert [await throttle.wait_conversation("c") for _ in range(2)] == [0, 0]
        wait = await throttle.wait_conversation("c")
        assert 0 < wait <= 0.1
        await asyncio.sleep(0.15)
        assert await throttle.wait_conversation("c") == 0
        assert await throttle.wait_conversation("other") == 0
    finally:
        await shared.close()


async def test_health_names_redis(make_client, shared_settings, settings):
    shared = await (await make_client(shared_settings)).get("/healthz")
    assert shared.status == 200 and (await shared.json())["dependencies"]["redis"] == "ok"
    alone = await (await make_client(settings)).get("/healthz")
    assert "redis" not in (await alone.json())["dependencies"]  # no REDIS_URL: nothing shared, nothing to check


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_redis_down_the_gateway_keeps_answering_on_its_own(make_client, settings, upstream, caplog):
    """Nothing listens at REDIS_URL: every door answers, WeChat's retries are still one turn in this process, a nonce
    is still good once here, limits still hold per process; /healthz says redis is down; one warning, not one per
    message."""
    caplog.set_level(logging.WARNING, logger="bot.clients.shared_state")
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0", rate_limit_per_ip=0)
    door = Door(await make_client(down), safe=True)
    response = await door.client.post("/api/chat", json={"sender": "r", "message": "你好"})
    assert response.status == 200 and (await response.json())[0]["text"] == "答：你好"
    message = text_message("雨露计划", msg_id="83001", open_id="oNoRedis")
    query, body = door.request(message)
    assert door.content((await door.send(query, body))[1], message) == ANSWER
    assert await door.ask(message) == ANSWER  # WeChat's retry, signed afresh
    assert (await door.send(query, door.request(text_message("别的", msg_id="83002"))[1]))[0] == 403
    assert [r["message"] for r in upstream.requests] == ["你好", "雨露计划"]
    statuses = [
        (await door.client.post("/api/chat", json={"sender": "flood", "message": "你好"})).status for _ in range(12)
    ]
    assert statuses == [200] * 10 + [429] * 2
    health = await door.client.get("/healthz")
    body = await health.json()
    assert health.status == 503 and body["dependencies"]["redis"] == "down"
    assert [name for name, state in body["dependencies"].items() if state == "down"] == ["redis"]
    warnings = [r.getMessage() for r in caplog.records if "Redis is down" in r.getMessage()]
    assert len(warnings) == 1


async def test_a_hung_redis_costs_one_timeout_then_is_left_alone(make_client, shared_settings, upstream, redis_url):
    """Redis paused (CLIENT PAUSE: it accepts but answers nothing): the first message waits for the Redis timeout
    (0.5 s) and is answered, the next ones do not wait at all; once Redis answers again the state is shared again."""
    client = await make_client(dataclasses.replace(shared_settings, rate_limit_per_ip=0))
    assert (await client.post("/api/chat", json={"sender": "h", "message": "你好"})).status == 200  # connected
    with redis.Redis.from_url(redis_url) as r:
        r.execute_command("CLIENT", "PAUSE", "3000", "ALL")
        try:
            times = []
            for i in range(3):
                started = time.monotonic()
                response = await client.post("/api/chat", json={"sender": f"h{i}", "message": "你好"})
                times.append(time.monotonic() - started)
                assert response.status == 200
            assert times[0] < 2 and max(times[1:]) < 0.4, times
        finally:
            r.execute_command("CLIENT", "UNPAUSE")
        assert (await (await client.get("/healthz")).json())["dependencies"]["redis"] == "ok"
        before = set(r.keys("anju:rate:*"))
        assert (await client.post("/api/chat", json={"sender": "after", "message": "你好"})).status == 200
        assert b"anju:rate:conversation:api:after" in set(r.keys("anju:rate:*")) - before


async def test_connections_cut_by_redis_are_made_again_at_once(make_client, shared_settings, upstream, redis_url):
    """A Redis restart or failover closes every connection: the next command connects again at once, and nothing
    falls back to a single process's state (a burst split across both gateways is still limited once)."""
    a, b = [await make_client(dataclasses.replace(shared_settings, rate_limit_per_ip=0)) for _ in "AB"]
    statuses = []
    with redis.Redis.from_url(redis_url) as r:
        for i in range(14):
            if i % 3 == 2:
                gateways = [c["id"] for c in r.client_list() if c["name"] == "anju-gateway"]
                assert gateways and all(r.client_kill_filter(_id=id) for id in gateways)
            response = await (a, b)[i % 2].post("/api/chat", json={"sender": "cut", "message": "你好"})
            statuses.append(response.status)
    assert statuses == [200] * 10 + [429] * 4


def test_without_redis_url_each_process_keeps_its_own_state(settings):
    assert settings.redis_url == "" and shared_state.connect("") is None
    assert not isinstance(Throttle(0), shared_state.SharedThrottle)
