"""Two Rasa servers behind the real gateway, as `make run` starts them with ANJU_RASA_REPLICAS=2: one action server,
both Rasa servers on one PostgreSQL tracker store and one Redis lock store (README: Scaling).

Ten conversations of five turns, with more conversations as load beside them. Between two turns of the conversations
kept on it, one Rasa server is SIGKILLed while the other is answering; each of its conversations goes on at the other
with its topic (a follow-up that needs it is answered right). The killed server is started again, and its
conversations come back to it: they are answered while the other is frozen (SIGSTOP). In the tracker store every
message of every conversation is there exactly once, followed by the replies the resident got: no turn lost, none
answered twice.

Its own database on TEST_POSTGRES_URL's server and its own Redis database on TEST_REDIS_URL's: the other tests' are
left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
import sqlalchemy
import yaml

from bot import conversations, db, layout
from bot.replicas import rendezvous_order
from bot.settings import ROOT
from tools.stack import stop_processes

from .conftest import Gateway, _free_port, _load_demo_ledger, _wait_until_up

pytestmark = pytest.mark.e2e

DATABASE = "anju_replicas"
REDIS_DB = 7
# each topic: its first question, what its answer says, and how the answer to a follow-up names the topic
TOPICS = {
    "transport": ("交通补贴多少钱", "800元/人", "务工交通补贴"),
    "medical": ("医保怎么交", "三重制度保障", "医保看病"),
}
FOLLOW_UPS = ["要带什么材料", "找谁办", "在哪里办", "要带什么材料"]  # turns 2-5: each answer names the topic
CONVERSATIONS = 10
LOAD_CLIENTS = 4


@pytest.fixture(scope="module")
def postgres_url():
    shared = os.environ.get("TEST_POSTGRES_URL")
    if not shared:
        pytest.fail("TEST_POSTGRES_URL is not set: run these tests through `make test` (it starts PostgreSQL)")
    admin = sqlalchemy.create_engine(shared, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {DATABASE}"))
    url = urlunsplit(urlsplit(shared)._replace(path=f"/{DATABASE}"))
    _load_demo_ledger([url])
    yield url
    db.dispose(url)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="module")
def redis_url():
    shared = os.environ.get("TEST_REDIS_URL")
    if not shared:
        pytest.fail("TEST_REDIS_URL is not set: run these tests through `make test` (it starts Redis)")
    url = urlunsplit(urlsplit(shared)._replace(path=f"/{REDIS_DB}"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


class Replicas:
    """One action server and two Rasa servers ("a", "b") on one tracker store and one Redis lock store."""

    def __init__(self, work: Path, database_url: str, redis_url: str, model: str):
        self.work = work
        self.database_url, self.tracker_url = database_url, conversations.default_tracker_url(database_url)
        ports = {name: _free_port() for name in ("actions", "a", "b")}
        self.urls = {name: f"http://127.0.0.1:{ports[name]}" for name in ("a", "b")}
        actions_url = f"http://127.0.0.1:{ports['actions']}"
        endpoints = work / "endpoints.yml"  # as bot/layout.py writes it for make run: Redis's lock store
        endpoints.write_text(yaml.safe_dump(layout.endpoints_config(actions_url, redis_url)), encoding="utf-8")
        self.env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "DATABASE_URL": database_url,
            "ANJU_TRACKER_URL": self.tracker_url,
            "ANJU_RASA_URLS": ",".join(self.urls.values()),
            "REDIS_URL": redis_url,
        }
        rasa = str(Path(sys.executable).parent / "rasa")
        self.commands = {
            "actions": [rasa, "run", "actions", "--actions", "actions", "--port", str(ports["actions"])],
            **{
                name: [
                    rasa, "run", "--model", model, "--interface", "127.0.0.1", "--port", str(ports[name]),
                    "--credentials", str(ROOT / "credentials.yml"), "--endpoints", str(endpoints),
                ]
                for name in ("a", "b")
            },
        }  # fmt: skip
        self.health = {"actions": f"{actions_url}/health", **{name: f"{url}/" for name, url in self.urls.items()}}
        self.processes = {name: self.start(name, "w") for name in self.commands}
        # what conftest's Gateway needs of a stack, and the gateway's own settings
        self.base = self.urls["a"]
        self.gateway_env = {"ANJU_RASA_URLS": self.env["ANJU_RASA_URLS"], "REDIS_URL": redis_url}

    def start(self, name: str, mode: str = "a") -> subprocess.Popen:
        log = (self.work / f"{name}.log").open(mode)
        return subprocess.Popen(self.commands[name], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait(self, *names: str) -> None:
        for name in names or self.commands:
            _wait_until_up(self.health[name], self.processes[name], self.work / f"{name}.log")

    def stop(self) -> None:
        stop_processes(self.processes.values())


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_url, redis_url):
    model = os.environ.get("ANJU_MODEL")
    if not model or not Path(model).is_file():
        pytest.fail("ANJU_MODEL must name a trained model: run these tests through `make test`")
    stack = Replicas(tmp_path_factory.mktemp("replicas"), postgres_url, redis_url, model)
    try:
        stack.wait()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def gateway(replicas, tmp_path_factory):
    stack = SimpleNamespace(
        database_url=replicas.database_url, base=replicas.base, health={"actions": replicas.health["actions"]}
    )
    gw = Gateway(tmp_path_factory.mktemp("replicas-gateway"), stack, env=replicas.gateway_env)
    yield gw
    gw.stop()


@dataclass
class Conversation:
    """A resident at /api/chat: what was said, and what came back, turn by turn."""

    gateway: Gateway
    sender: str
    topic: str
    turns: List[tuple] = field(default_factory=list)  # (message, HTTP status, reply texts)

    @property
    def id(self) -> str:
        return f"api:{self.sender}"

    def ask(self, message: str) -> str:
        response = requests.post(
            f"{self.gateway.url}/api/chat", json={"sender": self.sender, "message": message}, timeout=60
        )
        texts = [r.get("text", "") for r in response.json() if r.get("text")]
        self.turns.append((message, response.status_code, texts))
        return "\n".join(texts)

    def first(self) -> None:
        question, says, _ = TOPICS[self.topic]
        assert says in self.ask(question), self.turns[-1]

    def follow_up(self, turn: int) -> None:
        """Turn 2-5: a follow-up answered for this conversation's topic, which only the stored conversation knows."""
        message = FOLLOW_UPS[turn - 2]
        text = self.ask(message)
        assert self.turns[-1][1] == 200 and f"关于“{TOPICS[self.topic][2]}”" in text, (self.sender, turn, self.turns)


def senders_of(server: str, servers: List[str], prefix: str, n: int) -> List[str]:
    """n senders whose conversations the gateway keeps on `server`."""
    candidates = (f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(100_000))
    return [s for s in candidates if rendezvous_order(servers, f"api:{s}")[0] == server][:n]


def stored_turns(replicas: Replicas, conversation_id: str) -> List[tuple]:
    """The conversation as the tracker store keeps it: (what the resident said, [what the assistant said]) per turn."""
    turns: List[tuple] = []
    for event in conversations.stored_events(conversation_id, replicas.tracker_url):
        if event["event"] == "user":
            turns.append((event["text"], []))
        elif event["event"] == "bot" and event.get("text") and turns:
            turns[-1][1].append(event["text"])
    return turns


def test_a_killed_rasa_server_hands_its_conversations_over_and_takes_them_back(replicas, gateway):
    servers = [replicas.urls["a"], replicas.urls["b"]]
    victim, survivor = "a", "b"
    topics = list(TOPICS)
    kept = {
        name: senders_of(replicas.urls[name], servers, f"rep-{name}", CONVERSATIONS // 2) for name in (victim, survivor)
    }
    residents: Dict[str, List[Conversation]] = {
        name: [Conversation(gateway, sender, topics[i % 2]) for i, sender in enumerate(senders)]
        for name, senders in kept.items()
    }
    everyone = residents[victim] + residents[survivor]
    after_two, after_four = threading.Barrier(CONVERSATIONS + 1), threading.Barrier(CONVERSATIONS + 1)
    killed, back, survivor_free = threading.Event(), threading.Event(), threading.Event()
    errors: List[BaseException] = []

    def resident(conversation: Conversation, kept_on: str) -> None:
        try:
            conversation.first()
            conversation.follow_up(2)
            after_two.wait(timeout=300)
            killed.wait(timeout=300)
            conversation.follow_up(3)
            conversation.follow_up(4)
            after_four.wait(timeout=300)
            (back if kept_on == victim else survivor_free).wait(timeout=600)
            conversation.follow_up(5)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)
            for barrier in (after_two, after_four):
                barrier.abort()

    # the load: conversations on the surviving server, one message after another, until told to stop
    stop_load = threading.Event()
    load: List[Conversation] = []

    def load_client(i: int) -> None:
        try:
            while not stop_load.is_set():
                conversation = Conversation(gateway, senders_of(servers[1], servers, f"load{i}", 1)[0], topics[i % 2])
                load.append(conversation)
                conversation.first()
                for turn in (2, 3):
                    conversation.follow_up(turn)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=resident, args=(c, name)) for name, cs in residents.items() for c in cs] + [
        threading.Thread(target=load_client, args=(i,)) for i in range(LOAD_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    try:
        # every conversation between turns 2 and 3, the load going on at the survivor: kill the victim
        after_two.wait(timeout=300)
        assert all(thread.is_alive() for thread in threads[CONVERSATIONS:])
        replicas.processes[victim].send_signal(signal.SIGKILL)
        replicas.processes[victim].wait(timeout=30)
        killed.set()
        after_four.wait(timeout=300)  # the victim's conversations went on at the survivor (turns 3 and 4)
        health = requests.get(f"{gateway.url}/healthz", timeout=30)
        assert health.status_code == 200 and health.json()["dependencies"]["rasa"] == "ok"
        assert health.json()["rasa_servers"] == {replicas.urls[victim]: "down", replicas.urls[survivor]: "ok"}

        # the victim starts again on its port; its conversations come back: they are answered with the survivor
        # frozen, which a conversation still sent to the survivor would not be
        replicas.processes[victim] = replicas.start(victim)
        replicas.wait(victim)
        stop_load.set()
        for thread in threads[CONVERSATIONS:]:
            thread.join(timeout=300)
        os.kill(replicas.processes[survivor].pid, signal.SIGSTOP)
        try:
            back.set()
            for thread in threads[: CONVERSATIONS // 2]:
                thread.join(timeout=120)
        finally:
            os.kill(replicas.processes[survivor].pid, signal.SIGCONT)
        survivor_free.set()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        stop_load.set()
        killed.set()
        back.set()
        survivor_free.set()
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)

    # no turn lost, none answered twice: each message once in the store, followed by the replies the resident got
    assert len(load) >= LOAD_CLIENTS
    for conversation in everyone + load:
        assert all(status == 200 for _, status, _ in conversation.turns), conversation
        stored = stored_turns(replicas, conversation.id)
        assert stored == [(message, texts) for message, _, texts in conversation.turns], conversation.sender
    assert all(len(c.turns) == 5 for c in everyone)
    assert "Traceback" not in gateway.log.read_text()
