"""The whole stack (action server, Rasa server, gateway) on free loopback ports, for benchmarks: the same commands as
the Procfile, on a database of their own with the demo ledger, stopped by process id.

    with LocalStack(workdir) as stack:  # waits until every part answers
        stack.url                      # the gateway
        stack.rss_mb()                 # {"actions": …, "rasa": …, "gateway": …}
        stack.rasa_urls                # every Rasa server behind the gateway (its gateway channel wants stack.token())
        stack.up_after                 # seconds from starting the processes until each one answered its health check

ANJU_RASA_REPLICAS=N (in `env` or the environment) starts N Rasa servers ("rasa-1" … "rasa-N"; one is "rasa") on the
same tracker store, with Redis's lock store when REDIS_URL is set (bot/layout.py, as `make run`). DATABASE_URL in
`env` puts the ledger and the conversations there instead of SQLite files in `work`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# the gateway's own virtualenv, as the Procfile starts it (README, Dependencies)
GATEWAY_PYTHON = ROOT / ".venv-gateway" / "bin" / "python"
sys.path.insert(0, str(ROOT))

from bot import conversations, layout  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_processes(processes: Iterable[subprocess.Popen], grace_seconds: float = 20) -> None:
    """SIGTERM to every process still running (continued first, in case a test paused it with SIGSTOP: a stopped
    process cannot hear it), then each given `grace_seconds` to exit before SIGKILL."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process (and nothing else) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class LocalStack:
    def __init__(self, work: Path, model: Path = ROOT / "models" / "anju.tar.gz", env: Dict[str, str] | None = None):
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.model = model
        given = {**os.environ, **(env or {})}
        replicas = max(1, int(given.get("ANJU_RASA_REPLICAS", "1").strip() or "1"))
        rasa_names = ["rasa"] if replicas == 1 else [f"rasa-{i + 1}" for i in range(replicas)]
        ports = {name: free_port() for name in ("actions", *rasa_names, "gateway")}
        self.url = f"http://127.0.0.1:{ports['gateway']}"
        self.rasa_urls = [f"http://127.0.0.1:{ports[name]}" for name in rasa_names]
        self.rasa_url = self.rasa_urls[0]
        database = (env or {}).get("DATABASE_URL") or f"sqlite:///{work / 'anju.sqlite3'}"
        tracker = f"sqlite:///{work / 'conversations.sqlite3'}"
        if (env or {}).get("DATABASE_URL"):
            tracker = conversations.default_tracker_url(database)
        self.env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
            "DATABASE_URL": database,
            "ANJU_TRACKER_URL": tracker,
            "ANJU_SECRET_FILE": str(work / "secret.key"),
            "ANJU_RASA_URL": self.rasa_url,
            "ANJU_RASA_URLS": ",".join(self.rasa_urls),
            "ANJU_ACTIONS_URL": f"http://127.0.0.1:{ports['actions']}",
            "ANJU_GATEWAY_HOST": "127.0.0.1",
            "ANJU_GATEWAY_PORT": str(ports["gateway"]),
            # the load comes from one address on loopback: the per-address limit would measure itself
            "ANJU_RATE_LIMIT_PER_IP": "0",
            **(env or {}),
        }
        # endpoints.yml as make run has it (bot/layout.py): this stack's action server, with REDIS_URL Redis's locks
        endpoints_config = layout.endpoints_config(self.env["ANJU_ACTIONS_URL"], self.env.get("REDIS_URL", "").strip())
        endpoints = work / "endpoints.yml"
        endpoints.write_text(yaml.safe_dump(endpoints_config, sort_keys=False), encoding="utf-8")
        rasa = str(VENV_BIN / "rasa")
        self.commands = {
            "actions": [rasa, "run", "actions", "--actions", "actions", "--port", str(ports["actions"])],
            **{
                name: [
                    rasa, "run", "--model", str(model), "--interface", "127.0.0.1", "--port", str(ports[name]),
                    "--credentials", str(ROOT / "credentials.yml"), "--endpoints", str(endpoints),
                ]
                for name in rasa_names
            },
            "gateway": [str(GATEWAY_PYTHON) if GATEWAY_PYTHON.exists() else sys.executable, "-m", "bot.web"],
        }  # fmt: skip
        self.health = {
            "actions": f"http://127.0.0.1:{ports['actions']}/health",
            **{name: f"http://127.0.0.1:{ports[name]}/" for name in rasa_names},
            "gateway": f"{self.url}/healthz",
        }
        self.processes: Dict[str, subprocess.Popen] = {}
        self.spawned_at = 0.0  # time.monotonic() when the processes were started
        self.up_after: Dict[str, float] = {}

    def _load_demo_ledger(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "bot.importer", "--households", "demo/households.csv", "--members",
             "demo/members.csv", "--only-if-empty"],
            cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> LocalStack:
        self._load_demo_ledger()
        self.spawned_at = time.monotonic()
        for name, command in self.commands.items():
            log = (self.work / f"{name}.log").open("w")
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 300
        for name, url in self.health.items():
            while True:
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited: see {self.work / (name + '.log')}")
                try:
                    if requests.get(url, timeout=2).ok:
                        self.up_after[name] = time.monotonic() - self.spawned_at
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not come up: see {self.work / (name + '.log')}")
                time.sleep(1)
        self._check_an_answer()
        return self

    def _check_an_answer(self) -> None:
        """A Rasa server that could not load its model still answers its health check; the gateway then apologises
        for every message. The stack is up when a question gets an answer that is not an apology."""
        reply = requests.post(f"{self.url}/api/chat", json={"sender": "stack-check", "message": "你好"}, timeout=60)
        texts = [r.get("text", "") for r in reply.json()] if reply.ok and isinstance(reply.json(), list) else []
        if not texts or any(t.startswith("抱歉") for t in texts):
            raise RuntimeError(f"the stack answers with an apology or nothing ({reply.status_code}): see {self.work}")

    def token(self) -> str:
        """The bearer token of the Rasa servers' gateway channel (bot.sealing.rasa_token, with this stack's secret)."""
        return subprocess.run(
            [sys.executable, "-c", "from bot import sealing; print(sealing.rasa_token())"],
            cwd=ROOT, env=self.env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    def rss_mb(self) -> Dict[str, float]:
        return {name: rss_mb(p.pid) for name, p in self.processes.items() if p.poll() is None}

    def stop(self) -> None:
        stop_processes(self.processes.values())

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:  # nothing started is left running when the start fails halfway
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
