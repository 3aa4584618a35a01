"""Starts the real action server and Rasa server on free loopback ports, once for all end-to-end tests."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot import conversations, sealing
from bot.settings import ROOT
from tools.stack import free_port as _free_port
from tools.stack import stop_processes

VENV_BIN = Path(sys.executable).parent
# the gateway runs in its own virtualenv (make install; README, Dependencies), as `make run` starts it
GATEWAY_PYTHON = ROOT / ".venv-gateway" / "bin" / "python"
STARTUP_SECONDS = 240


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not come up in {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


class Stack:
    """An action server and a Rasa server (the gateway channel; no HTTP API) on one database. Conversations are kept
    as `make run` keeps them (endpoints.yml's SQL tracker store): beside the SQLite database, or in the PostgreSQL
    one; a new Stack on the same database carries them on, as after a restart."""

    def __init__(self, work: Path, database_url: str, model: str):
        self.database_url = database_url
        self.tracker_url = conversations.default_tracker_url(database_url)
        actions_port, rasa_port = _free_port(), _free_port()
        endpoints = work / "endpoints.yml"
        endpoints.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
            "tracker_store:\n  type: policies.tracker_store.ScrubbingSQLTrackerStore\n",
            encoding="utf-8",
        )
        self.logs = {"actions": work / "actions.log", "rasa": work / "rasa.log"}
        env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "DATABASE_URL": database_url,
            "ANJU_TRACKER_URL": self.tracker_url,
            "ANJU_RASA_URL": f"http://127.0.0.1:{rasa_port}",
        }
        rasa = str(VENV_BIN / "rasa")
        commands = {
            "actions": [rasa, "run", "actions", "--actions", "actions", "--port", str(actions_port)],
            "rasa": [
                rasa, "run", "--model", model, "--interface", "127.0.0.1", "--port", str(rasa_port),
                "--credentials", str(ROOT / "credentials.yml"), "--endpoints", str(endpoints),
            ],
        }  # fmt: skip
        self._commands, self._env = commands, env
        self.processes = {name: self._start(name, "w") for name in commands}
        self.base = f"http://127.0.0.1:{rasa_port}"
        # Rasa's REST contract on the gateway channel, which wants the token (bot.sealing); no HTTP API
        self.rest = f"{self.base}/webhooks/gateway/webhook"
        self.headers = {"Authorization": f"Bearer {sealing.rasa_token()}"}
        self.health = {"actions": f"http://127.0.0.1:{actions_port}/health", "rasa": f"{self.base}/"}

    def wait(self) -> "Stack":
        for name, url in self.health.items():
            _wait_until_up(url, self.processes[name], self.logs[name])
        return self

    def _start(self, name: str, log_mode: str = "a") -> subprocess.Popen:
        log = self.logs[name].open(log_mode)
        return subprocess.Popen(self._commands[name], cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT)

    def restart(self, name: str) -> None:
        """Starts "actions" or "rasa" again on its port (killing it first if it still runs), and waits until it is up;
        the other process is left alone. Its log goes on in the same file."""
        old = self.processes[name]
        if old.poll() is None:
            old.kill()
        old.wait(timeout=30)
        self.processes[name] = self._start(name)
        _wait_until_up(self.health[name], self.processes[name], self.logs[name])

    def stored_events(self, sender: str) -> list:
        """The conversation as the tracker store keeps it, read straight from its database (no Rasa HTTP API)."""
        return conversations.stored_events(sender, self.tracker_url)

    def stop(self) -> None:
        stop_processes(self.processes.values())


@pytest.fixture(scope="session")
def stacks(tmp_path_factory):
    """Both stacks start together (they load in parallel); each test picks one."""
    model = os.environ.get("ANJU_MODEL")
    if not model or not Path(model).is_file():
        pytest.fail("ANJU_MODEL must name a trained model: run these tests through `make test`")
    postgres = os.environ.get("TEST_POSTGRES_URL")
    if not postgres:
        pytest.fail("TEST_POSTGRES_URL is not set: run these tests through `make test` (it starts PostgreSQL)")
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'anju.sqlite3'}", "postgresql": postgres}
    _load_demo_ledger(urls.values())
    started = {}
    try:
        for name, url in urls.items():
            started[name] = Stack(tmp_path_factory.mktemp(name), url, model)
        yield {name: stack.wait() for name, stack in started.items()}
    finally:
        for stack in started.values():
            stack.stop()
        conversations.drop_store(postgres)  # the shared test PostgreSQL keeps no conversations between runs


def _load_demo_ledger(urls):
    from bot import db, migrate
    from bot.importer import import_ledger

    for url in urls:
        migrate.drop_all(url)
        conversations.drop_store(conversations.default_tracker_url(url))
        migrate.upgrade(url)
        with db.session_scope(url) as session:
            import_ledger(session, ROOT / "demo/households.csv", ROOT / "demo/members.csv")
        db.dispose(url)


@pytest.fixture(scope="session")
def servers(stacks):
    """The SQLite stack, for tests that do not touch household data."""
    stack = stacks["sqlite"]
    return {"rest": stack.rest, "headers": stack.headers, "logs": stack.logs}


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request, stacks):
    return stacks[request.param]


class Gateway:
    """`python -m bot.web` on a free port, in front of a stack."""

    def __init__(self, work: Path, stack: "Stack", idle_seconds: int = 90, env: dict | None = None):
        self.port = _free_port()
        self.log = work / "gateway.log"
        env = {
            **os.environ,
            "DATABASE_URL": stack.database_url,
            "ANJU_GATEWAY_HOST": "127.0.0.1",
            "ANJU_GATEWAY_PORT": str(self.port),
            "ANJU_RASA_URL": stack.base,
            "ANJU_ACTIONS_URL": stack.health["actions"].rsplit("/", 1)[0],
            "ANJU_KIOSK_IDLE_SECONDS": str(idle_seconds),
            # the tests type faster than any resident; throttling is tested in tests/bot/test_api.py
            "ANJU_RATE_LIMIT_PER_IP": "0",
            "ANJU_RATE_LIMIT_BURST": "1000",
            # these tests check what is answered, on a shared 2-core machine where a turn can take longer than a
            # county server's 4.5 s; tests/e2e/test_faults.py checks the deadline itself with the default
            "ANJU_REPLY_DEADLINE": "30",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [str(GATEWAY_PYTHON) if GATEWAY_PYTHON.exists() else sys.executable, "-m", "bot.web"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        _wait_until_up(f"{self.url}/static/style.css", self.process, self.log)

    def stop(self) -> None:
        stop_processes([self.process], grace_seconds=10)


@pytest.fixture(scope="session")
def gateway(stacks, tmp_path_factory):
    """The gateway in front of the SQLite stack; the kiosk forgets after 4 idle seconds so tests can watch it."""
    gw = Gateway(tmp_path_factory.mktemp("gateway"), stacks["sqlite"], idle_seconds=4)
    yield gw
    gw.stop()
