"""Starts the real action server and Rasa server on free loopback ports, once for all end-to-end tests."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.settings import ROOT

VENV_BIN = Path(sys.executable).parent
STARTUP_SECONDS = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    model = os.environ.get("ANJU_MODEL")
    if not model or not Path(model).is_file():
        pytest.fail("ANJU_MODEL must name a trained model: run these tests through `make test`")
    work = tmp_path_factory.mktemp("servers")
    actions_port, rasa_port = _free_port(), _free_port()
    endpoints = work / "endpoints.yml"
    endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n', encoding="utf-8")
    logs = {"actions": work / "actions.log", "rasa": work / "rasa.log"}
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    commands = {
        "actions": [str(VENV_BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", str(actions_port)],
        "rasa": [
            str(VENV_BIN / "rasa"),
            "run",
            "--model",
            model,
            "--interface",
            "127.0.0.1",
            "--port",
            str(rasa_port),
            "--credentials",
            str(ROOT / "credentials.yml"),
            "--endpoints",
            str(endpoints),
        ],
    }
    processes = {}
    try:
        for name, command in commands.items():
            processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=logs[name].open("w"), stderr=subprocess.STDOUT
            )
        _wait_until_up(f"http://127.0.0.1:{actions_port}/health", processes["actions"], logs["actions"])
        _wait_until_up(f"http://127.0.0.1:{rasa_port}/", processes["rasa"], logs["rasa"])
        yield {"rest": f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook", "logs": logs}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
