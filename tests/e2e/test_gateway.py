"""The gateway in front of the real servers: /api/chat keeps Rasa's REST contract, and Rasa stopping mid-conversation
gets a friendly message, never a stack trace."""

import os
import uuid

import pytest
import requests
import yaml

from bot.settings import ROOT

from .conftest import Gateway, Stack

pytestmark = pytest.mark.e2e


def heldout(per_intent=3):
    """A few held-out questions of every policy intent (never trained on)."""
    data = yaml.safe_load((ROOT / "tests/nlu/heldout.yml").read_text(encoding="utf-8"))
    for block in data["nlu"]:
        if block["intent"].startswith(("ask_", "follow_up", "out_of_scope")) and block["intent"] != "ask_household":
            lines = [line[2:] for line in block["examples"].splitlines() if line.startswith("- ")]
            yield from lines[:per_intent]


def test_api_chat_answers_like_the_rest_channel(gateway, stacks):
    for question in heldout():
        sender = f"gw-{uuid.uuid4().hex[:8]}"
        via_gateway = requests.post(f"{gateway.url}/api/chat", json={"sender": sender, "message": question}, timeout=30)
        stack = stacks["sqlite"]
        direct = requests.post(
            stack.rest, json={"sender": sender + "-d", "message": question}, headers=stack.headers, timeout=30
        )
        assert via_gateway.status_code == 200
        got, expected = via_gateway.json(), direct.json()
        assert [r.get("text") for r in got] == [r.get("text") for r in expected if "custom" not in r], question
        assert all(r["recipient_id"] == sender for r in got)


def test_health_reports_every_dependency(gateway):
    body = requests.get(f"{gateway.url}/healthz", timeout=10).json()
    assert body == {**body, "status": "ok"}
    assert body["dependencies"] == {"rasa": "ok", "action_server": "ok", "database": "ok"}


def test_rasa_stopped_mid_conversation(tmp_path, stacks):
    own = Stack(_mkdir(tmp_path / "stack"), stacks["sqlite"].database_url, _model()).wait()
    gw = Gateway(_mkdir(tmp_path / "gw"), own)
    try:
        url, sender = f"{gw.url}/api/chat", "gw-stop"
        first = requests.post(url, json={"sender": sender, "message": "交通补贴多少钱"}, timeout=30)
        assert first.status_code == 200 and "800元/人" in first.json()[0]["text"]
        own.processes["rasa"].terminate()
        own.processes["rasa"].wait(timeout=30)
        second = requests.post(url, json={"sender": sender, "message": "那在省内呢"}, timeout=30)
        assert second.status_code == 503
        [reply] = second.json()
        assert "稍后再试" in reply["text"] and "Traceback" not in second.text
        health = requests.get(f"{gw.url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["dependencies"]["rasa"] == "down"
        assert "Traceback" not in gw.log.read_text()
    finally:
        gw.stop()
        own.stop()


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def _model():
    return os.environ["ANJU_MODEL"]
