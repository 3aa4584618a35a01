"""action_respond with rasa_sdk's Tracker and CollectingDispatcher: it reads the resident's own words and the state
slots from the tracker, utters the core's replies (text with buttons, or a domain response), sets only the slots that
changed, and apologises when anything fails."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions import respond
from actions.respond import ActionRespond
from bot import db, sealing
from bot.dialogue import State, Understood
from bot.models import AuditEntry

from ..conftest import user_turn

# the clauses the fake Rasa parser understands (action_respond parses clauses through Rasa's HTTP API)
CLAUSES = {
    "交通补贴多少钱": Understood("交通补贴多少钱", "ask_transport_subsidy", 0.95),
    "孩子上学去哪": Understood("孩子上学去哪", "ask_school", 0.92),
}


class FakeRasaParser:
    def __init__(self, base_url: str, token: str = "", model: str | None = None):
        pass

    def __call__(self, text: str) -> Understood | None:
        return CLAUSES.get(text)


@pytest.fixture(autouse=True)
def no_rasa_server(monkeypatch):
    """Never reach a real Rasa server from these tests."""
    monkeypatch.setattr(respond, "RasaParser", FakeRasaParser)


def tracker(text, intent="inform", entities=(), state=None, sender=None, confidence=0.9, sealed=True, **parse_extra):
    """A tracker as Rasa sends it; a verified household in `state` is sealed to the sender, as the action stores it,
    unless `sealed` is False (what a forged slot looks like)."""
    latest, event = user_turn(text, intent, entities, confidence)
    sender = sender or f"conv-{uuid.uuid4().hex[:12]}"
    latest.update(parse_extra)
    slots = dataclasses.asdict(state or State())
    if slots["verified_household"] and sealed:
        slots["verified_household"] = sealing.seal(slots["verified_household"], sender)
    return Tracker(
        sender_id=sender,
        slots=slots,
        latest_message=latest,
        events=[{"event": "action", "name": "action_listen"}, event],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


async def run(text, intent="inform", entities=(), state=None, sender=None, sealed=True, **parse_extra):
    """What the action says (the private mark aside) and the events it returns."""
    dispatcher = CollectingDispatcher()
    turn = tracker(text, intent, entities, state, sender, sealed=sealed, **parse_extra)
    events = await ActionRespond().run(dispatcher, turn, {})
    said = [m for m in dispatcher.messages if not m.get("custom")]
    assert said, f"nothing said to {text!r}"
    for message in said:
        assert message.get("text") or message.get("response"), message
    return said, events


async def test_an_answer_is_uttered_and_only_the_changed_slots_are_set(demo_database):
    [message], events = await run("去外省打工路费给多少", "ask_transport_subsidy", [("work_region", "省外")])
    assert "800元/人" in message["text"] and "300" not in message["text"]
    assert events == [SlotSet("topic", "transport_subsidy"), SlotSet("work_region", "省外")]


async def test_nothing_changed_no_slot_events(demo_database):
    [message], events = await run("你好", "greet", state=State(topic="transport_subsidy", work_region="省外"))
    assert "安居助手" in message["text"]
    assert events == []


async def test_buttons_are_uttered_with_title_and_payload(demo_database):
    [message], _ = await run("你好", "greet")
    assert {"title": "上学划片", "payload": "/ask_school"} in message["buttons"]
    assert {"title": "转人工", "payload": "/request_human"} in message["buttons"]


async def test_a_chitchat_answer_is_the_domain_response(demo_database):
    selector = {"chitchat": {"response": {"utter_action": "utter_chitchat/ask_name"}}}
    [message], events = await run("你叫啥", "chitchat", response_selector=selector)
    assert message["response"] == "utter_chitchat/ask_name" and not message.get("text")
    assert events == []


async def test_the_identity_check_through_the_action(demo_database):
    [asked], events = await run("俺家能领啥补贴", "ask_household")
    assert "户主" in asked["text"]
    assert SlotSet("verify_step", "name") in events and SlotSet("pending_question", "俺家能领啥补贴") in events
    state = State(verify_step="name", pending_question="俺家能领啥补贴")

    # what the resident typed counts, not the NLU's normalized copy: 王三元 stays 王三元 (the NLU sees 王3元)
    assert tracker("好的 王三元").latest_message["text"] == "好的王3元"
    [asked], events = await run("好的 王三元", state=state)
    assert "王三元" in asked["text"] and SlotSet("head_name", "王三元") in events

    state = dataclasses.replace(state, verify_step="code", head_name="张三")
    sender = f"conv-check-{uuid.uuid4().hex[:12]}"
    messages, events = await run("一二五四四七", state=state, sender=sender)
    said = "\n".join(m["text"] for m in messages)
    assert "核对通过" in said and "张三家" in said and "【补贴】" in said
    assert "140929197805125447" not in said and "125447" not in said
    [sealed] = [e["value"] for e in events if e["name"] == "verified_household"]
    assert sealing.unseal(sealed, sender) == "GHY00001" and sealing.unseal(sealed, "another-conversation") is None
    assert SlotSet("verify_step", None) in events and SlotSet("head_name", None) in events
    assert SlotSet("household_topics", "subsidies") in events
    # the lookup is audited with the channel of the resident's message
    with db.session_scope() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.conversation_id == sender)).all()
        assert (entry.channel, entry.household_id, entry.shown) == ("rest", "GHY00001", "subsidies")


async def test_leaving_clears_the_household_slots(demo_database):
    state = State(verified_household="GHY00001", household_topics="subsidies", pending_question="俺家能领啥补贴")
    [message], events = await run("退出", "forget_verification", state=state)
    assert "已清除" in message["text"]
    for cleared in ("verified_household", "household_topics", "pending_question"):
        assert SlotSet(cleared, None) in events


async def test_misses_are_counted_in_a_slot(demo_database):
    _, events = await run("我想买台二手拖拉机哪家便宜", "nlu_fallback", confidence=0.55)
    assert events == [SlotSet("misses", 1)]
    [message], events = await run("村口那棵老槐树是谁家的", "out_of_scope", state=State(misses=1))
    assert {"title": "转人工", "payload": "/request_human"} == message["buttons"][0]
    assert events == [SlotSet("misses", 2)]


async def test_several_questions_are_split_with_the_parser(demo_database):
    [message], _ = await run("交通补贴多少钱，孩子上学去哪", "ask_transport_subsidy")
    assert "【务工交通补贴】" in message["text"] and "【上学划片】" in message["text"]


async def test_a_failing_core_still_gets_an_apology(monkeypatch):
    monkeypatch.setenv("ANJU_SERVICE_PHONE", "0350-1234567")

    def boom(*args, **kwargs):
        raise RuntimeError("the database is down")

    monkeypatch.setattr(ActionRespond, "_respond", staticmethod(boom))
    [message], events = await run("去外省打工路费给多少", "ask_transport_subsidy")
    assert "抱歉" in message["text"] and "0350-1234567" in message["text"]
    assert events == []


async def test_a_broken_knowledge_file_with_no_good_copy_still_gets_an_apology(tmp_path, monkeypatch):
    (tmp_path / "answers.yml").write_text("answers: [", encoding="utf-8")
    (tmp_path / "sources.yml").write_text("sources: {}\n", encoding="utf-8")
    monkeypatch.setenv("ANJU_KNOWLEDGE_DIR", str(tmp_path))
    [message], events = await run("医保咋报销", "ask_medical")
    assert "抱歉" in message["text"] and events == []


@pytest.mark.parametrize(
    "forged",
    [
        "GHY00001",  # the bare household, as a caller with write access to the slots would set it
        "GHY00001|9999999999|" + "0" * 64,  # a made-up seal
        lambda: sealing.seal("GHY00001", "someone-elses-conversation"),  # a real seal, of another conversation
        lambda: sealing.seal("GHY00001", "conv-forged", now=0),  # a real seal that ran out long ago
    ],
)
async def test_a_forged_verified_household_shows_nothing(demo_database, forged):
    value = forged() if callable(forged) else forged
    state = State(verified_household=value, household_topics="subsidies")
    messages, events = await run("俺家能领啥补贴", "ask_household", state=state, sender="conv-forged", sealed=False)
    said = "\n".join(m["text"] for m in messages)
    assert "户主" in said and "张三家" not in said and "【补贴】" not in said  # asked to prove it, shown nothing
    assert SlotSet("verified_household", None) in events
    with db.session_scope() as s:
        assert not s.scalars(select(AuditEntry).where(AuditEntry.conversation_id == "conv-forged")).all()


async def test_a_verified_turn_carries_the_private_mark(demo_database):
    dispatcher = CollectingDispatcher()
    state = State(verified_household="GHY00001")
    await ActionRespond().run(dispatcher, tracker("俺家能领啥补贴", "ask_household", state=state), {})
    assert dispatcher.messages[-1]["custom"] == respond.PRIVATE_MARK
    dispatcher = CollectingDispatcher()
    await ActionRespond().run(dispatcher, tracker("交通补贴多少钱", "ask_transport_subsidy"), {})
    assert all(m.get("custom") != respond.PRIVATE_MARK for m in dispatcher.messages)


async def test_a_hanging_database_still_gets_a_reply_in_time(demo_database, monkeypatch):
    import time

    monkeypatch.setattr(respond, "ANSWER_DEADLINE_SECONDS", 0.5)
    monkeypatch.setattr(ActionRespond, "_respond", staticmethod(lambda *a: time.sleep(3)))
    started = time.monotonic()
    [message], events = await run("医保怎么报销", "ask_medical")
    assert time.monotonic() - started < 2 and "稍等" in message["text"] and events == []
