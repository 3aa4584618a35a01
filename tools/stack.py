"""The whole stack (action server, Rasa server, gateway) on free loopback ports, for benchmarks: the same commands as
the Procfile, on a database of their own with the demo ledger, stopped by process id.

    with LocalStack(workdir) as stack:  # waits until every part answers
        stack.url                      # the gateway
        stack.rss_mb()                 # {"actions": …, "rasa": …, "gateway": …}
        stack.rasa_urls                # every Rasa server behind the gateway (its gateway channel wants stack.token())
        stack.up_after                 # seconds from starting the processes until each one answered its health check
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        ports = {name: free_port() for name in ("actions", "rasa", "gateway")}
        self.url = f"http://127.0.0.1:{ports['gateway']}"
        self.rasa_url = f"http://127.0.0.1:{ports['rasa']}"
        self.rasa_urls = [self.rasa_url]
        database = f"sqlite:///{work / 'anju.sqlite3'}"
        self.env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
            "DATABASE_URL": database,
            "ANJU_TRACKER_URL": f"sqlite:///{work / 'conversations.sqlite3'}",
            "ANJU_SECRET_FILE": str(work / "secret.key"),
            "ANJU_RASA_URL": self.rasa_url,
            "ANJU_ACTIONS_URL": f"http://127.0.0.1:{ports['actions']}",
            "ANJU_GATEWAY_HOST": "127.0.0.1",
            "ANJU_GATEWAY_PORT": str(ports["gateway"]),
            # the load comes from one address on loopback: the per-address limit would measure itself
            "ANJU_RATE_LIMIT_PER_IP": "0",
            **(env or {}),
        }
        endpoints = work / "endpoints.yml"
        endpoints.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{ports["actions"]}/webhook"\n'
            "tracker_store:\n  type: policies.tracker_store.ScrubbingSQLTrackerStore\n",
            encoding="utf-8",
        )
        rasa = str(VENV_BIN / "rasa")
        self.commands = {
            "actions": [rasa, "run", "actions", "--actions", "actions", "--port", str(ports["actions"])],
            "rasa": [
                rasa, "run", "--model", str(model), "--interface", "127.0.0.1", "--port", str(ports["rasa"]),
                "--credentials", str(ROOT / "credentials.yml"), "--endpoints", str(endpoints),
            ],
            "gateway": [sys.executable, "-m", "bot.web"],
        }  # fmt: skip
        self.health = {
            "actions": f"http://127.0.0.1:{ports['actions']}/health",
            "rasa": f"http://127.0.0.1:{ports['rasa']}/",
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
        return self

    def token(self) -> str:
        """The bearer token of the Rasa servers' gateway channel (bot.sealing.rasa_token, with this stack's secret)."""
        return subprocess.run(
            [sys.executable, "-c", "from bot import sealing; print(sealing.rasa_token())"],
            cwd=ROOT, env=self.env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    def rss_mb(self) -> Dict[str, float]:
        return {name: rss_mb(p.pid) for name, p in self.processes.items() if p.poll() is None}

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
