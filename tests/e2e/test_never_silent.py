"""Never silent, as a property: hypothesis sends random sequences of residents' real questions and junk (emoji,
Latin noise, punctuation, numbers, mixed scripts) to the real gateway, Rasa and action servers; every message gets a
reply with text. Bounded: a few dozen short conversations."""

import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.e2e

REAL = [
    "俺想问问交通补贴",
    "那在省内呢",
    "要带啥材料",
    "我家能领啥",
    "张三",
    "一二五四四七",
    "算了不查了",
    "转人工",
    "解决了",
    "孩子上学咋整",
    "不对我说的是县内",
    "医保咋报 娃娃上哪个学校",
    "那我爱人呢",
    "谢谢",
    "/request_human",
    "/forget_verification",
]
JUNK = st.text(
    alphabet=st.sampled_from(list("啊哦嗯的了吗？！。，,.!?0123456789abcxyzXYZ😀🙏 \t-_/#@%&*()[]{}<>\"'\\")),
    min_size=1,
    max_size=24,
).filter(lambda s: s.strip())
MESSAGES = st.one_of(st.sampled_from(REAL), JUNK)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=st.lists(MESSAGES, min_size=1, max_size=5))
def test_every_message_gets_a_reply_with_text(gateway, conversation):
    sender = f"prop-{uuid.uuid4().hex[:10]}"
    for message in conversation:
        response = requests.post(f"{gateway.url}/api/web/chat", json={"sender": sender, "message": message}, timeout=30)
        assert response.status_code == 200, (message, response.text)
        texts = [r.get("text") for r in response.json() if r.get("text")]
        assert texts, f"no text for {message!r} in {conversation!r}"
