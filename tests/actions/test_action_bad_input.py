"""action_respond reads the resident's words cleaned, whatever reached Rasa: control, bidi and zero-width characters
never reach the core, so nothing it stores (tickets, unanswered questions, slots) carries them."""

from __future__ import annotations

import uuid

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions import respond
from actions.respond import ActionRespond, said, transcript
from bot import db
from bot.dialogue import State
from bot.models import Ticket, Unanswered

from ..conftest import user_turn

INVISIBLE = "\x00\x07\x1b\x7f\x85\x9b\u200b\u200d\u202a\u202e\u2066\u2069\ufeff\ud800"


@pytest.fixture(autouse=True)
def no_rasa_server(monkeypatch):
    """Never reach a real Rasa server: no clause is understood."""
    monkeypatch.setattr(respond, "RasaParser", lambda *args: lambda text: None)


def tracker(text, intent="inform", state=None, earlier=()):
    latest, event = user_turn(text, intent)
    return Tracker(
        sender_id=f"api:bad-input-{uuid.uuid4().hex[:12]}",
        slots=dict(vars(state or State())),
        latest_message=latest,
        events=[*earlier, {"event": "action", "name": "action_listen"}, event],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


@pytest.mark.parametrize(
    "typed, seen", [("\u202e转人工\x00", "转人工"), ("张\u200b三\n125447", "张三 125447"), (INVISIBLE, " ")]
)
def test_the_action_reads_the_cleaned_text(typed, seen):
    assert said(tracker(typed)) == seen


def test_the_transcript_for_staff_is_cleaned():
    earlier = [{"event": "user", "text": "医保\u202e在哪交\x1b[2J"}, {"event": "bot", "text": "在便民服务窗口"}]
    assert transcript(tracker("转人工", earlier=earlier))[:2] == ["居民：医保在哪交[2J", "助手：在便民服务窗口"]


async def test_a_name_with_a_zero_width_space_still_verifies(demo_database):
    """ "张\u200b三" was two pieces to the identity parser, so the name was never taken."""
    dispatcher = CollectingDispatcher()
    state = State(verify_step="name", pending_question="俺家能领啥补贴")
    events = await ActionRespond().run(dispatcher, tracker("\u2066张\u200b三\u2069", state=state), {})
    assert SlotSet("head_name", "张三") in events


async def test_nothing_stored_carries_invisible_characters(demo_database):
    dispatcher = CollectingDispatcher()
    earlier = [{"event": "user", "text": "\u202e火星上\x00有补贴吗"}]
    await ActionRespond().run(dispatcher, tracker("\u2067转\u200b人工\x07", "request_human", earlier=earlier), {})
    assert any("工作人员" in (m.get("text") or "") for m in dispatcher.messages)
    await ActionRespond().run(dispatcher, tracker("\u202e火星上\x00有补贴吗\ufeff", "out_of_scope"), {})
    with db.session_scope() as session:
        stored = [t.transcript for t in session.scalars(select(Ticket))]
        stored += [u.text for u in session.scalars(select(Unanswered))]
    assert stored and "居民：火星上有补贴吗" in stored[0]
    for text in stored:
        assert not any(ch in text for ch in INVISIBLE), repr(text)
