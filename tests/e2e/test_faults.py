"""Faults, with the real processes: the action server killed, Rasa killed and started again, the database locked
(SQLite) or stopped (PostgreSQL), Rasa frozen (SIGSTOP) for longer than WeChat waits. Each time the resident gets a
polite reply within 5 s, /healthz names the part that is down, and everything works again once the part is back,
with nothing else restarted.

One stack (action server and Rasa on SQLite) and one gateway serve the file; a test restarts only the part it broke.
The PostgreSQL case has its own throwaway server (tools/test-postgres on a free port, stopped and started again
mid-test), never TEST_POSTGRES_URL's, which the other tests share."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from bot import db
from bot.clients import wechat
from bot.settings import ROOT

from .conftest import Gateway, Stack, _free_port, _load_demo_ledger
from .test_household import suffix

pytestmark = pytest.mark.e2e

WITHIN = 5.0  # seconds: WeChat's limit, and what a resident at the chat page or the kiosk is promised
CONTACT = "社区居委会便民服务窗口"  # the unset-phone default of ANJU_SERVICE_DESK: every apology names it
WECHAT_TOKEN, APP_ID, APP_SECRET = "faulttoken", "wxfaults0000000001", "faultsecret"
TIMINGS: list[str] = []  # the reply times, printed at the end of the module (pytest -s shows them)


@dataclass
class Reply:
    status: int
    text: str
    seconds: float


def ask(gateway: Gateway, sender: str, message: str, door: str = "web") -> Reply:
    started = time.monotonic()
    response = requests.post(f"{gateway.url}/api/{door}/chat", json={"sender": sender, "message": message}, timeout=60)
    seconds = time.monotonic() - started
    return Reply(response.status_code, "\n".join(r.get("text", "") for r in response.json()), seconds)


def health(gateway: Gateway) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = requests.get(f"{gateway.url}/healthz", timeout=30)
    return response.status_code, response.json()["dependencies"], time.monotonic() - started


def assert_polite(reply: Reply, what: str) -> None:
    """An apology in Chinese that names the service desk, within WeChat's 5 s; never a stack trace."""
    TIMINGS.append(f"{what}: HTTP {reply.status} in {reply.seconds:.2f} s: {reply.text[:24]}…")
    assert reply.seconds < WITHIN, f"{what}: {reply.seconds:.1f} s"
    assert reply.status in (200, 503), (what, reply)
    assert "抱歉" in reply.text and CONTACT in reply.text, (what, reply)
    assert "Traceback" not in reply.text and "Error" not in reply.text


def assert_down(gateway: Gateway, part: str) -> None:
    status, dependencies, seconds = health(gateway)
    TIMINGS.append(f"/healthz with {part} down: {status} in {seconds:.2f} s")
    assert status == 503 and dependencies[part] == "down", dependencies
    assert [name for name, state in dependencies.items() if state == "down"] == [part]
    assert seconds < 3, f"/healthz took {seconds:.1f} s"  # its checks run side by side, each within 2 s


def eventually(check, seconds: float = 60, every: float = 1):
    """check()'s value once it is truthy (and nothing raised), polling; the last failure when time runs out."""
    deadline, value = time.monotonic() + seconds, None
    while True:
        try:
            value = check()
            if value:
                return value
        except (AssertionError, requests.RequestException):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {value!r}")
        time.sleep(every)


def healthy(gateway: Gateway) -> bool:
    status, dependencies, _ = health(gateway)
    return status == 200 and set(dependencies.values()) == {"ok"}


def verify_household(gateway: Gateway) -> None:
    """A new resident verifies as 张三 and hears the household's answer: the database is read and written."""
    sender = f"faults-{uuid.uuid4().hex[:8]}"
    assert "户主的姓名" in ask(gateway, sender, "我家能领什么补贴").text
    assert "最后6位" in ask(gateway, sender, "张三").text
    reply = ask(gateway, sender, suffix("GHY00001"))
    assert reply.status == 200 and "核对通过" in reply.text and "张三家" in reply.text


# ---------------------------------------------------------------- WeChat's servers, on loopback


class WeChatApi:
    """Stands in for api.weixin.qq.com (WECHAT_API_BASE): the access token and the customer-service messages sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # /cgi-bin/token
                self._json({"access_token": "FAULTS-TOKEN", "expires_in": 7200})

            def do_POST(self):  # /cgi-bin/message/custom/send
                length = int(self.headers.get("Content-Length", 0))
                api.sent.append({"path": self.path, **json.loads(self.rfile.read(length))})
                self._json({"errcode": 0, "errmsg": "ok"})

            def _json(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sent_to(self, open_id: str) -> list[str]:
        return [m["text"]["content"] for m in self.sent if m["touser"] == open_id]


def wechat_text(gateway: Gateway, open_id: str, content: str) -> Reply:
    """A text message as WeChat posts it in plaintext mode: signed with the current time and a fresh nonce."""
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    query = {"signature": wechat.signature(WECHAT_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    body = (
        f"<xml><ToUserName><![CDATA[gh_faults]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{uuid.uuid4().int % 10**18}</MsgId></xml>"
    )
    started = time.monotonic()
    response = requests.post(f"{gateway.url}/wechat", params=query, data=body.encode(), timeout=60)
    return Reply(response.status_code, response.text, time.monotonic() - started)


# ---------------------------------------------------------------- one stack and one gateway for the file


def _model() -> str:
    model = os.environ.get("ANJU_MODEL")
    if not model or not Path(model).is_file():
        pytest.fail("ANJU_MODEL must name a trained model: run these tests through `make test`")
    return model


def _started(work: Path, database_url: str) -> Stack:
    work.mkdir(parents=True, exist_ok=True)
    stack = Stack(work, database_url, _model())
    try:
        return stack.wait()
    except BaseException:
        stack.stop()
        raise


@pytest.fixture(scope="module")
def wechat_api():
    api = WeChatApi()
    yield api
    api.server.shutdown()


@pytest.fixture(scope="module")
def database_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults-db") / "anju.sqlite3"
    _load_demo_ledger([f"sqlite:///{path}"])
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory, database_file):
    started = _started(tmp_path_factory.mktemp("faults-stack"), f"sqlite:///{database_file}")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, stack, wechat_api):
    env = {
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_ENCODING_AES_KEY": "",  # plaintext mode
        "WECHAT_API_BASE": wechat_api.url,
        "ANJU_REPLY_DEADLINE": "4.5",  # the product's default (the other e2e gateways wait longer)
    }
    gw = Gateway(tmp_path_factory.mktemp("faults-gateway"), stack, env=env)
    yield gw
    gw.stop()
    print("\nreply times with a part down:\n  " + "\n  ".join(TIMINGS))


@pytest.fixture
def all_up(stack, gateway):
    """Each test starts with every part up, and leaves the stack as it found it: the same gateway throughout."""
    assert healthy(gateway)
    pid = gateway.process.pid
    yield
    assert gateway.process.poll() is None and gateway.process.pid == pid  # never restarted


# ---------------------------------------------------------------- the faults


def test_action_server_killed_then_restarted(stack, gateway, all_up):
    """SIGKILL: Rasa answers without the action, the gateway says so politely at once; restarted, all goes on."""
    rasa = stack.processes["rasa"]
    sender = f"faults-{uuid.uuid4().hex[:8]}"
    assert "800元/人" in ask(gateway, sender, "交通补贴多少钱").text

    stack.processes["actions"].send_signal(signal.SIGKILL)
    stack.processes["actions"].wait(timeout=30)
    for who, message in ((sender, "医保怎么报销"), (f"faults-{uuid.uuid4().hex[:8]}", "我家能领什么补贴")):
        reply = ask(gateway, who, message)
        assert_polite(reply, f"action server killed, {message}")
        assert "稍后再问" in reply.text  # not only "say it another way": no wording helps while it is down
    assert_down(gateway, "action_server")

    stack.restart("actions")
    assert stack.processes["rasa"] is rasa and rasa.poll() is None  # Rasa was left running
    assert eventually(lambda: healthy(gateway), 30)
    # the conversation goes on where it was: the follow-up is read as the transport subsidy, for the region it names
    reply = ask(gateway, sender, "那在省内呢")
    assert reply.status == 200 and "县外、省内" in reply.text and "务工交通补贴300元" in reply.text
    verify_household(gateway)


def test_rasa_killed_then_started_again(stack, gateway, all_up):
    """SIGKILL: a 503 with a polite text at once; a new Rasa on the same port carries the conversation on."""
    actions = stack.processes["actions"]
    sender = f"faults-{uuid.uuid4().hex[:8]}"
    assert "800元/人" in ask(gateway, sender, "交通补贴多少钱").text

    stack.processes["rasa"].send_signal(signal.SIGKILL)
    stack.processes["rasa"].wait(timeout=30)
    reply = ask(gateway, sender, "那在省内呢")
    assert_polite(reply, "Rasa killed")
    assert reply.status == 503 and "稍后再试" in reply.text
    assert_down(gateway, "rasa")

    stack.restart("rasa")  # a new Rasa process on the same port, the same tracker store
    assert stack.processes["actions"] is actions and actions.poll() is None  # the action server was left running
    assert eventually(lambda: healthy(gateway), 30)
    # the conversation from before the kill goes on: its topic was kept in the SQL tracker store
    reply = ask(gateway, sender, "那在省内呢")
    assert reply.status == 200 and "县外、省内" in reply.text and "务工交通补贴300元" in reply.text
    assert "Traceback" not in gateway.log.read_text()


def test_sqlite_database_locked(stack, gateway, all_up, database_file):
    """Another connection holds the SQLite file (BEGIN EXCLUSIVE): the action waits on it, the resident does not."""
    household, plain = f"faults-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:8]}"
    lock = sqlite3.connect(database_file, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # nobody else reads or writes the file until ROLLBACK
        assert_polite(ask(gateway, household, "我家能领什么补贴"), "SQLite locked, household question")
        reply = ask(gateway, plain, "交通补贴多少钱")
        TIMINGS.append(f"SQLite locked, plain question: HTTP {reply.status} in {reply.seconds:.2f} s")
        assert reply.seconds < WITHIN and reply.text
        assert "800元/人" in reply.text or ("抱歉" in reply.text and CONTACT in reply.text), reply
        assert_down(gateway, "database")
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert eventually(lambda: healthy(gateway), 30)
    verify_household(gateway)
    # the residents who asked during the lock are answered again, once what was waiting on the lock has given up
    assert eventually(lambda: "800元/人" in ask(gateway, plain, "交通补贴多少钱").text, 60, every=3)
    assert eventually(lambda: "户主的姓名" in ask(gateway, household, "我家能领什么补贴").text, 60, every=3)


def test_postgresql_stopped_then_started(tmp_path):
    """The PostgreSQL server stops (households and conversations with it) and starts again: nothing else restarts."""
    pg = {**os.environ, "ANJU_PG_DIR": f"/tmp/anju-faults-pg-{uuid.uuid4().hex[:8]}", "ANJU_PG_PORT": str(_free_port())}
    tool = str(ROOT / "tools/test-postgres")
    url = subprocess.run([tool, "start"], env=pg, check=True, capture_output=True, text=True).stdout.strip()
    stack = gw = None
    try:
        _load_demo_ledger([url])
        stack = _started(tmp_path / "stack", url)
        gw = Gateway(tmp_path, stack)
        assert healthy(gw)
        household, plain = f"faults-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:8]}"
        assert "800元/人" in ask(gw, plain, "交通补贴多少钱").text

        subprocess.run([tool, "pause"], env=pg, check=True)  # the server stops; households and conversations stay
        assert_polite(ask(gw, household, "我家能领什么补贴"), "PostgreSQL stopped, household question")
        assert_polite(ask(gw, plain, "交通补贴多少钱"), "PostgreSQL stopped, plain question")
        assert_down(gw, "database")

        subprocess.run([tool, "resume"], env=pg, check=True, capture_output=True)
        assert eventually(lambda: healthy(gw), 30)
        assert all(p.poll() is None for p in [*stack.processes.values(), gw.process])  # nothing was restarted
        assert eventually(lambda: "800元/人" in ask(gw, plain, "交通补贴多少钱").text, 30)
        verify_household(gw)
        assert "Traceback" not in gw.log.read_text()
    finally:
        if gw is not None:
            gw.stop()
        if stack is not None:
            stack.stop()
        db.dispose(url)
        subprocess.run([tool, "stop"], env=pg, check=False)


def test_rasa_slower_than_wechat_waits(stack, gateway, all_up, wechat_api):
    """Rasa frozen for 6 s (SIGSTOP, then SIGCONT): WeChat gets "success" within its 5 s and the answer afterwards
    through the customer-service API; the chat page gets a polite word within 5 s; /healthz says rasa is down."""
    rasa = stack.processes["rasa"]
    open_id, sender = f"o-faults-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:8]}"
    assert "800元/人" in ask(gateway, sender, "交通补贴多少钱").text  # warm: the model answers at once when awake

    with ThreadPoolExecutor(2) as pool:
        rasa.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            on_wechat = pool.submit(wechat_text, gateway, open_id, "去外省打工有交通补贴吗")
            on_web = pool.submit(ask, gateway, sender, "那在省内呢")
            time.sleep(0.5)
            assert_down(gateway, "rasa")
            time.sleep(max(0.0, 6 - (time.monotonic() - frozen)))  # frozen for 6 s, whatever the replies do
        finally:
            rasa.send_signal(signal.SIGCONT)
        wechat_reply, web_reply = on_wechat.result(), on_web.result()

    TIMINGS.append(f"Rasa frozen, WeChat passive reply: {wechat_reply.text!r} in {wechat_reply.seconds:.2f} s")
    assert wechat_reply.status == 200 and wechat_reply.text == "success"
    assert wechat_reply.seconds < WITHIN
    assert_polite(web_reply, "Rasa frozen, chat page")
    assert web_reply.status == 503 and "稍后再试" in web_reply.text

    # Rasa wakes up and answers; the gateway sends WeChat's answer through the customer-service API
    [late] = eventually(lambda: wechat_api.sent_to(open_id), 30, every=0.5)
    TIMINGS.append(f"Rasa frozen, WeChat answer through the service API {time.monotonic() - frozen:.1f} s after")
    assert "800元" in late
    assert eventually(lambda: healthy(gateway), 30)
    assert "800元/人" in ask(gateway, f"faults-{uuid.uuid4().hex[:8]}", "交通补贴多少钱").text
