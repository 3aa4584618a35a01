"""The bad-input corpus through the real gateway, Rasa server and action server: no 5xx, and afterwards the same
conversation still gets a Chinese answer to a normal question. (Every piece of the corpus, WeChat's included, runs
against the gateway in-process in tests/bot/test_bad_input.py and tests/bot/test_wechat_bad_input.py.)"""

import json
import re
import uuid

import pytest
import requests

from tests.bot.test_bad_input import RAW_BODIES, TEXTS

pytestmark = pytest.mark.e2e

CHINESE = re.compile(r"[\u4e00-\u9fff]")
NO_ANSWER = "没能回答上来"  # what the gateway says when Rasa answered nothing


def chat(gateway, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = requests.post(f"{gateway.url}/api/chat", data=data, headers={"Content-Type": content_type}, timeout=60)
    assert response.status_code < 500, (str(body)[:80], response.status_code, response.text[:300])
    return response


def test_the_corpus_then_a_normal_question(gateway):
    sender = f"corpus-{uuid.uuid4().hex[:8]}"
    for text in TEXTS:
        response = chat(gateway, {"sender": sender, "message": text})
        if response.status_code == 200:
            assert any(r.get("text") for r in response.json())
    for raw in RAW_BODIES:
        chat(gateway, raw)
        chat(gateway, raw, "text/plain")
    answer = chat(gateway, {"sender": sender, "message": "去外省打工有交通补贴吗"})
    assert answer.status_code == 200
    said = "\n".join(r.get("text") or "" for r in answer.json())
    assert CHINESE.search(said) and "交通补贴" in said and NO_ANSWER not in said


@pytest.mark.parametrize(
    "message", ["交通补贴\ud800怎么领", "\u202e交通补贴\x00怎么领\u200b", "交通\u2066补贴\u2069怎么领"]
)
def test_a_question_with_invisible_characters_is_answered(gateway, message):
    """A lone surrogate used to reach Rasa, which failed on it: the gateway could only apologise (200 [] upstream)."""
    response = chat(gateway, {"sender": f"inv-{uuid.uuid4().hex[:8]}", "message": message})
    assert response.status_code == 200
    said = "\n".join(r.get("text") or "" for r in response.json())
    assert "交通补贴" in said and NO_ANSWER not in said


@pytest.mark.parametrize("message", ["\ud800", "\x00\u200b\u202e", " \t\n"])
def test_a_message_with_nothing_visible_gets_a_polite_error(gateway, message):
    response = chat(gateway, {"sender": "nothing-visible", "message": message})
    assert response.status_code == 400 and response.json()["error"] == "empty_message"
    assert CHINESE.search(response.json()["message"])
