"""Two real gateway processes (python -m bot.web) over one real Redis, in front of the real Rasa and action servers on
PostgreSQL: they behave as one. WeChat's retry reaching the other gateway is one turn in Rasa's tracker and one answer;
a signed request spent at one is refused at the other; a conversation's burst split across both is limited once.
Redis stopped: both keep answering, each on its own, /healthz says so; Redis started again: shared again, with
nothing restarted.

tests/bot/test_shared_state.py covers the same in one process; this is the wiring of the real thing: REDIS_URL read
from the environment, separate processes with their own connections, a Redis server that goes away and comes back.
The Redis here is this module's own (tools/test-redis on a free port), so that stopping it touches no other test."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bot.settings import ROOT

from .conftest import Gateway, _free_port
from .test_faults import APP_ID, APP_SECRET, WECHAT_TOKEN, WeChatApi, eventually, health
from .test_faults import ask as ask_web

pytestmark = pytest.mark.e2e
QUESTION, FIGURE = "交通补贴多少钱", "800元"
BURST = 4
TOOL = str(ROOT / "tools" / "test-redis")


class Redis:
    """tools/test-redis on its own port and folder: stop() and start() it at will."""

    def __init__(self, folder) -> None:
        self.env = {**os.environ, "ANJU_REDIS_DIR": str(folder), "ANJU_REDIS_PORT": str(_free_port())}
        self.url = self.start()

    def start(self) -> str:
        run = subprocess.run([TOOL, "start"], env=self.env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    def stop(self) -> None:
        """Stops the server and waits until its port refuses connections (tools/test-redis only signals it)."""
        subprocess.run([TOOL, "stop"], env=self.env, check=False)
        port = int(self.env["ANJU_REDIS_PORT"])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.1)
        raise AssertionError(f"Redis on port {port} did not stop")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = Redis(tmp_path_factory.mktemp("two-gateways") / "redis")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wechat_api():
    api = WeChatApi()
    yield api
    api.server.shutdown()


@pytest.fixture(scope="module")
def gateways(stacks, redis_server, wechat_api, tmp_path_factory):
    env = {
        "REDIS_URL": redis_server.url,
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_ENCODING_AES_KEY": "",  # plaintext mode: the signing is tests/bot's business
        "WECHAT_API_BASE": wechat_api.url,
        "ANJU_RATE_LIMIT_BURST": str(BURST),
        "ANJU_RATE_LIMIT_PER_SECOND": "0.01",  # no refill while Rasa answers the burst
    }
    started = []
    try:
        for name in "ab":
            started.append(Gateway(tmp_path_factory.mktemp(f"gateway-{name}"), stacks["postgresql"], env=env))
        yield started
    finally:
        for gateway in started:
            gateway.stop()
    for gateway in started:
        assert "Traceback" not in gateway.log.read_text()


def signed(content: str, open_id: str, msg_id: int) -> tuple[dict, bytes]:
    """(query, body) of a text message as WeChat posts it in plaintext mode, signed now with a fresh nonce."""
    from bot.clients.wechat import signature

    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    query = {"signature": signature(WECHAT_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    body = (
        f"<xml><ToUserName><![CDATA[gh_two]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    return query, body.encode()


def post(gateway: Gateway, query: dict, body: bytes) -> tuple[int, str]:
    response = requests.post(f"{gateway.url}/wechat", params=query, data=body, timeout=60)
    return response.status_code, response.text


def passive_content(text: str) -> str | None:
    return None if text == "success" else ET.fromstring(text).findtext("Content")


def user_messages(stacks, sender: str) -> list[str]:
    return [e.get("text") for e in stacks["postgresql"].stored_events(sender) if e.get("event") == "user"]


def test_a_wechat_retry_at_the_other_gateway_is_one_turn(stacks, gateways, wechat_api):
    a, b = gateways
    open_id, msg_id = f"o-two-{uuid.uuid4().hex[:8]}", uuid.uuid4().int % 10**18
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, a, *signed(QUESTION, open_id, msg_id))
        time.sleep(0.3)  # WeChat's retry, signed afresh, reaches the other gateway while the first waits for Rasa
        retry = pool.submit(post, b, *signed(QUESTION, open_id, msg_id))
        replies = [first.result(), retry.result()]
    assert [status for status, _ in replies] == [200, 200]
    passive = [content for _, text in replies if (content := passive_content(text)) is not None]
    if not passive:  # Rasa slower than WeChat's deadline on a busy machine: the answer went out afterwards
        eventually(lambda: wechat_api.sent_to(open_id), 30, every=0.5)
    time.sleep(1)
    answers = passive + wechat_api.sent_to(open_id)
    assert answers and len(set(answers)) == 1 and FIGURE in answers[0], answers
    assert not (passive and wechat_api.sent_to(open_id))  # never in a reply and through the service API both
    assert user_messages(stacks, f"wechat:{open_id}") == [QUESTION]  # Rasa was asked once


def test_a_request_spent_at_one_gateway_is_refused_at_the_other(stacks, gateways):
    a, b = gateways
    open_id = f"o-two-{uuid.uuid4().hex[:8]}"
    query, body = signed(QUESTION, open_id, uuid.uuid4().int % 10**18)
    assert post(a, query, body)[0] == 200
    assert post(b, query, body)[0] == 403
    verify = dict(signed(QUESTION, open_id, 1)[0], echostr="two")
    assert requests.get(f"{b.url}/wechat", params=verify, timeout=30).text == "two"
    assert requests.get(f"{a.url}/wechat", params=verify, timeout=30).status_code == 403
    assert user_messages(stacks, f"wechat:{open_id}") == [QUESTION]


def burst(gateways, sender: str) -> list[int]:
    return [ask_web(gateways[i % 2], sender, QUESTION).status for i in range(BURST + 2)]


def test_a_burst_split_across_both_gateways_is_limited_once(gateways):
    assert burst(gateways, f"two-{uuid.uuid4().hex[:8]}") == [200] * BURST + [429] * 2


def test_redis_stopped_then_started_again(gateways, redis_server, wechat_api):
    a, b = gateways
    redis_server.stop()
    try:
        for gateway in gateways:
            status, dependencies, _ = health(gateway)
            assert status == 503 and dependencies["redis"] == "down"
            assert {name for name, state in dependencies.items() if state == "down"} == {"redis"}
        # both keep answering, each on its own
        reply = ask_web(a, f"two-{uuid.uuid4().hex[:8]}", QUESTION)
        assert reply.status == 200 and FIGURE in reply.text
        open_id = f"o-two-{uuid.uuid4().hex[:8]}"
        status, text = post(b, *signed(QUESTION, open_id, uuid.uuid4().int % 10**18))
        assert status == 200
        if passive_content(text) is None:
            eventually(lambda: wechat_api.sent_to(open_id), 30, every=0.5)
        assert FIGURE in (passive_content(text) or wechat_api.sent_to(open_id)[0])
    finally:
        redis_server.start()
    for gateway in gateways:
        eventually(lambda gateway=gateway: health(gateway)[1].get("redis") == "ok", 30, every=0.5)
        assert "Redis is down" in gateway.log.read_text()
    # shared again: a burst split across both is limited once
    assert burst(gateways, f"two-{uuid.uuid4().hex[:8]}") == [200] * BURST + [429] * 2
