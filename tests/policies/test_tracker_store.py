"""The SQL tracker store that endpoints.yml uses (policies/tracker_store.py), on SQLite and PostgreSQL: personal
numbers are masked before anything is written, a new store (a restarted Rasa server) carries the conversation on, it
finds its database with no per-deployment settings, and bot/conversations.py reads and prunes what it wrote."""

import json
import os
import stat
import time

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import select

from bot import conversations, db
from bot.settings import ROOT
from policies.tracker_store import ScrubbingSQLTrackerStore

DOMAIN = Domain.load(str(ROOT / "domain.yml"))
ID_NUMBER = "140929197805125447"  # the demo ledger's 张三 (fictitious)
PHONE = "13556379995"
CODE = "125447"


def new_store():
    """What the Rasa server does at start-up with endpoints.yml: the type, no other settings."""
    return ScrubbingSQLTrackerStore(domain=DOMAIN)


def user(text, at=None, channel="web"):
    parse = {"text": text, "intent": {"name": "inform", "confidence": 0.9}, "entities": []}
    return UserUttered(text, parse_data=parse, input_channel=channel, timestamp=at)


def verified_conversation(sender):
    return DialogueStateTracker.from_events(
        sender,
        [
            ActionExecuted("action_session_start"),
            SessionStarted(),
            ActionExecuted("action_listen"),
            user("我家能领什么补贴"),
            SlotSet("topic", "transport_subsidy"),
            BotUttered("请告诉我户主的姓名"),
            ActionExecuted("action_listen"),
            user(f"张三 {ID_NUMBER} 电话{PHONE}"),
            SlotSet("id_suffix", CODE),
            SlotSet("head_name", "张三"),
            SlotSet("verified_household", "GHY00001"),
            BotUttered(f"核对通过，张三家（联系电话 {PHONE}）"),
            ActionExecuted("action_listen"),
            user(CODE),
        ],
        DOMAIN.slots,
    )


def raw_rows(url, sender):
    engine = db.make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(conversations.events.c.data)
            .where(conversations.events.c.sender_id == sender)
            .order_by(conversations.events.c.id)
        ).scalars()
        found = list(rows)
    engine.dispose()
    return found


async def test_personal_numbers_never_reach_the_database(tracker_url):
    await new_store().save(verified_conversation("s1"))
    rows = raw_rows(tracker_url, "s1")
    assert len(rows) == 14
    stored = "\n".join(rows) + json.dumps([json.loads(r) for r in rows], ensure_ascii=False)
    for secret in (ID_NUMBER, PHONE, CODE, ID_NUMBER[-6:]):
        assert secret not in stored
    assert "140929************" in stored and "135****9995" in stored
    assert {"event": "slot", "name": "id_suffix", "value": "******"}.items() <= {
        k: v for k, v in json.loads(rows[8]).items() if k != "timestamp"
    }.items()


async def test_a_restarted_store_carries_the_conversation_on(tracker_url):
    await new_store().save(verified_conversation("s2"))
    restarted = new_store()  # a new Rasa server on the same database
    tracker = await restarted.retrieve("s2")
    assert tracker.get_slot("verified_household") == "GHY00001"
    assert tracker.get_slot("topic") == "transport_subsidy"
    tracker.update(user("那孩子上学呢"))
    tracker.update(BotUttered("张三家的孩子……"))
    await restarted.save(tracker)
    again = await new_store().retrieve("s2")
    assert [e.text for e in again.events if isinstance(e, UserUttered)][-1] == "那孩子上学呢"
    assert len(raw_rows(tracker_url, "s2")) == 16  # the new turn once, nothing written twice


async def test_bot_conversations_reads_and_prunes_what_the_store_wrote(tracker_url):
    long_ago = time.time() - 100 * 86400
    old = DialogueStateTracker.from_events(
        "old", [ActionExecuted("action_listen", timestamp=long_ago), user("你好", at=long_ago, channel="kiosk")]
    )
    store = new_store()
    await store.save(old)
    await store.save(verified_conversation("recent"))
    s = conversations.summary()
    assert (s.conversations, s.events, s.due) == (2, 16, 1)
    assert s.channels == {"kiosk": 1, "web": 1}
    assert [e["event"] for e in conversations.stored_events("old")] == ["action", "user"]
    assert conversations.prune().conversations == 1
    assert await store.retrieve("old") is None
    assert (await store.retrieve("recent")).get_slot("verified_household") == "GHY00001"


def test_with_no_settings_the_store_is_a_private_file_beside_the_app_database(tmp_path, monkeypatch):
    monkeypatch.delenv("ANJU_TRACKER_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'anju.sqlite3'}")
    old = os.umask(0o022)
    try:
        store = new_store()
    finally:
        os.umask(old)
    path = tmp_path / "data" / "conversations.sqlite3"
    assert str(store.engine.url) == f"sqlite:///{path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_store_follows_a_postgresql_database_url(monkeypatch):
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.fail("TEST_POSTGRES_URL is not set: run the tests through `make test` (it starts PostgreSQL)")
    monkeypatch.delenv("ANJU_TRACKER_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        store = new_store()
        assert store.engine.dialect.name == "postgresql"
        assert store.engine.url.render_as_string(hide_password=False) == url
    finally:
        conversations.drop_store(url)


def test_rasas_own_settings_still_work(tmp_path):
    path = tmp_path / "rasa.db"
    store = ScrubbingSQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(path))
    assert str(store.engine.url) == f"sqlite:///{path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# a long conversation, turn by turn as the Rasa server runs it: retrieve, the turn's events, save
SLOT_CYCLE = [
    ("topic", "transport_subsidy"),
    ("work_region", "县外省内"),
    ("topic", "school"),
    ("school_level", "小学"),
]


def turn_events(i):
    """One turn's events; every 4th turn sets a slot, turn 7 forever sets misses, the last turn carries a phone."""
    text = f"问题{i}" if i != 149 else f"我的电话是{PHONE}"
    events = [user(text), ActionExecuted("action_respond"), BotUttered(f"回答{i}")]
    if i % 4 == 0:
        events.append(SlotSet(*SLOT_CYCLE[(i // 4) % len(SLOT_CYCLE)]))
    if i == 7:
        events.append(SlotSet("misses", 2))
    return [*events, ActionExecuted("action_listen")]


def event_key(event):
    return (event["event"], event.get("text") or event.get("name"), event.get("value"))


async def test_a_long_conversation_loads_a_bounded_window_and_stores_every_event_once(tracker_url):
    start = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    everything = list(start)
    await new_store().save(DialogueStateTracker.from_events("long", start, DOMAIN.slots))
    loaded_sizes = []
    for i in range(150):
        if i % 50 == 0:
            store = new_store()  # a restarted server now and then
        tracker = await store.retrieve("long")
        loaded_sizes.append(len(tracker.events))
        for event in turn_events(i):
            tracker.update(event)
            everything.append(event)
        await store.save(tracker)
        await store.save(tracker)  # saving the same tracker again adds nothing

    stored = [json.loads(r) for r in raw_rows(tracker_url, "long")]
    expected = [event_key(e.as_dict()) for e in everything]
    expected = [(kind, text.replace(PHONE, "135****9995") if kind == "user" else text, v) for kind, text, v in expected]
    assert [event_key(e) for e in stored] == expected  # every event once, in order, masked

    window = store.window_events
    assert max(loaded_sizes) <= window + 1 + len(DOMAIN.slots)  # session start, latest slots, the window
    assert loaded_sizes[-1] < len(everything) / 5
    tracker = await new_store().retrieve("long")
    full = DialogueStateTracker.from_events("long", everything[1:], DOMAIN.slots)
    assert tracker.current_slot_values() == full.current_slot_values()
    assert tracker.get_slot("misses") == 2  # set once, 140 turns before the window
    assert [e.as_dict() for e in tracker.events][-window:] == [e.as_dict() for e in full.events][-window:]
    assert tracker.latest_message.text == "我的电话是135****9995"


async def test_the_window_starts_after_a_restart_or_a_new_session(tracker_url):
    store = new_store()
    events = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    events += [SlotSet("head_name", "张三"), *turn_events(0)]
    events += [Restarted(), ActionExecuted("action_listen"), *[e for i in range(1, 40) for e in turn_events(i)]]
    await store.save(DialogueStateTracker.from_events("r", events, DOMAIN.slots))
    tracker = await store.retrieve("r")
    assert len(tracker.events) < store.window_events + 10
    assert tracker.get_slot("head_name") is None  # set before the restart
    full = DialogueStateTracker.from_events("r", events, DOMAIN.slots)
    assert tracker.current_slot_values() == full.current_slot_values()
    assert tracker.get_slot("school_level") == "小学"

    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))
    await store.save(tracker)
    again = await new_store().retrieve("r")
    assert [e.type_name for e in again.events] == ["session_started", "action"]
    assert again.get_slot("topic") is None
    assert len(raw_rows(tracker_url, "r")) == len(events) + 2


async def test_an_undone_turn_before_the_window_loads_the_whole_session(tracker_url):
    store = new_store()
    events = [SessionStarted(), ActionExecuted("action_listen"), user("问题"), SlotSet("topic", "medical")]
    events += [UserUtteranceReverted(), *[e for i in range(1, 40) for e in turn_events(i)]]
    await store.save(DialogueStateTracker.from_events("u", events, DOMAIN.slots))
    tracker = await store.retrieve("u")
    assert len(tracker.events) == len(events)
    assert tracker.get_slot("topic") == DialogueStateTracker.from_events("u", events, DOMAIN.slots).get_slot("topic")


def test_an_sqlite_store_writes_ahead_and_stays_private(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'run' / 'conversations.sqlite3'}"
    monkeypatch.setenv("ANJU_TRACKER_URL", url)
    store = new_store()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert stat.S_IMODE((tmp_path / "run" / "conversations.sqlite3").stat().st_mode) == 0o600


async def test_loading_costs_the_same_at_the_600th_turn_as_at_the_30th(tmp_path, monkeypatch):
    """Counted in SQLite's own steps (not time): what is before the window comes from an index, not from reading every
    earlier event of the conversation."""
    monkeypatch.setenv("ANJU_TRACKER_URL", f"sqlite:///{tmp_path / 'long.sqlite3'}")
    store = new_store()
    start = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    await store.save(DialogueStateTracker.from_events("long", start, DOMAIN.slots))
    counted = []

    def count_steps(dbapi_connection, *_):
        dbapi_connection.set_progress_handler(lambda: counted.append(1), 10)

    steps, statements, executed = {}, {}, []

    def record(_connection, _cursor, statement, *_):
        executed.append(statement)

    for i in range(1, 601):
        tracker = await store.retrieve("long")
        for event in turn_events(i % 140):  # never the turn with the phone number
            tracker.update(event)
        await store.save(tracker)
        if i in (30, 600):
            executed.clear()
            sa.event.listen(store.engine, "checkout", count_steps)
            sa.event.listen(store.engine, "before_cursor_execute", record)
            counted.clear()
            loaded = await store.retrieve("long")
            steps[i], statements[i] = len(counted), len(executed)
            sa.event.remove(store.engine, "checkout", count_steps)
            sa.event.remove(store.engine, "before_cursor_execute", record)
            assert loaded.get_slot("misses") == 2  # set at turn 7, long before the window
    assert statements[600] == statements[30] <= 3
    assert steps[600] < 1.3 * steps[30], steps
