"""Where conversations are kept and for how long (bot/conversations.py), on SQLite and PostgreSQL: what the command
shows, and that pruning deletes whole conversations whose last event is past the retention period, nothing else.

Rows are written the way Rasa's SQLTrackerStore writes them (tests/policies/test_tracker_store.py checks the real
store against the same reader)."""

import json
import time

import pytest
from sqlalchemy import func, select

from bot import conversations, db

DAY = 86400
NOW = time.time()


def store(url, sender, days_ago, channel="web", turns=2):
    """A conversation as Rasa stores it: session start, then `turns` user/bot pairs, the last `days_ago[-1]` days ago.
    `days_ago` is (first, last)."""
    first, last = days_ago
    engine = db.make_engine(url)
    conversations.events.create(engine, checkfirst=True)
    rows = [("action", None, first, {"event": "action", "name": "action_session_start"})]
    for i in range(turns):
        at = first + (last - first) * (i + 1) / turns
        rows.append(("user", "ask", at, {"event": "user", "text": "问个事", "input_channel": channel}))
        rows.append(("bot", None, at, {"event": "bot", "text": "好的"}))
    with engine.begin() as connection:
        for type_name, intent, ago, data in rows:
            connection.execute(
                conversations.events.insert().values(
                    sender_id=sender,
                    type_name=type_name,
                    timestamp=NOW - ago * DAY,
                    intent_name=intent,
                    data=json.dumps({**data, "timestamp": NOW - ago * DAY}),
                )
            )
    engine.dispose()
    return len(rows)


def senders(url):
    engine = db.make_engine(url)
    with engine.connect() as connection:
        found = set(connection.execute(select(conversations.events.c.sender_id).distinct()).scalars())
    engine.dispose()
    return found


def test_the_summary_counts_conversations_events_doors_and_what_is_due(tracker_url):
    n = store(tracker_url, "recent", (2, 1), "web")
    n += store(tracker_url, "old", (120, 100), "kiosk")
    n += store(tracker_url, "old-but-active", (200, 3), "wechat")
    n += store(tracker_url, "second-kiosk", (5, 5), "kiosk", turns=1)
    s = conversations.summary(now=NOW)
    assert (s.conversations, s.events, s.retention_days, s.due) == (4, n, 90, 1)
    assert s.channels == {"kiosk": 2, "web": 1, "wechat": 1}
    assert s.oldest == pytest.approx(NOW - 200 * DAY) and s.newest == pytest.approx(NOW - 1 * DAY)
    text = conversations.report(s)
    assert "保留 90 天" in text and "对话 4 个" in text and f"事件 {n} 条" in text and "kiosk 2" in text
    assert "待删除：1 个对话" in text


def test_prune_deletes_whole_conversations_past_the_retention_period_only(tracker_url, monkeypatch):
    store(tracker_url, "recent", (2, 1))
    old = store(tracker_url, "old", (120, 100))
    store(tracker_url, "old-but-active", (200, 3))  # began long ago, still going: kept whole
    store(tracker_url, "just-inside", (89, 89))
    done = conversations.prune(now=NOW)
    assert (done.conversations, done.events) == (1, old)
    assert senders(tracker_url) == {"recent", "old-but-active", "just-inside"}
    assert len(conversations.stored_events("old-but-active")) == 5  # none of its old events was cut away
    assert conversations.prune(now=NOW).conversations == 0  # nothing left to do
    monkeypatch.setenv("ANJU_CONVERSATION_RETENTION_DAYS", "30")  # the setting
    assert conversations.prune(now=NOW).conversations == 1
    assert senders(tracker_url) == {"recent", "old-but-active"}
    assert conversations.prune(days=2, now=NOW).conversations == 1  # --days for one run
    assert senders(tracker_url) == {"recent"}


def test_stored_events_reads_one_conversation_in_order(tracker_url):
    store(tracker_url, "a", (3, 1), turns=3)
    store(tracker_url, "b", (3, 1))
    kinds = [e["event"] for e in conversations.stored_events("a")]
    assert kinds == ["action"] + ["user", "bot"] * 3
    assert conversations.stored_events("nobody") == []


def test_nothing_stored_yet_is_reported_and_nothing_is_created(tracker_url):
    path = db.sqlite_path(tracker_url)
    s = conversations.summary()
    assert (s.conversations, s.events, s.due, s.channels) == (0, 0, 0, {})
    assert "现在没有保存的对话" in conversations.report(s)
    done = conversations.prune()
    assert (done.conversations, done.events) == (0, 0)
    assert conversations.stored_events("anyone") == []
    if path is not None:
        assert not path.exists()  # looking does not create the database


def test_the_command_shows_and_prunes(tracker_url, capsys, monkeypatch):
    store(tracker_url, "recent", (2, 1), "web")
    store(tracker_url, "old", (120, 100), "kiosk")
    assert conversations.main([]) == 0
    out = capsys.readouterr().out
    assert "对话 2 个" in out and "待删除：1 个对话" in out and "web 1" in out
    assert "anju:anju@" not in out  # no password printed
    assert conversations.main(["--prune"]) == 0
    assert "删除了 1 个对话" in capsys.readouterr().out
    assert senders(tracker_url) == {"recent"}
    assert conversations.main(["--prune", "--days", "1"]) == 0
    assert "删除了 1 个对话" in capsys.readouterr().out
    assert conversations.main([]) == 0
    assert "现在没有保存的对话" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0", "-3", "ninety"])
def test_a_bad_retention_setting_is_refused(tracker_url, capsys, monkeypatch, bad):
    store(tracker_url, "old", (120, 100))
    monkeypatch.setenv("ANJU_CONVERSATION_RETENTION_DAYS", bad)
    assert conversations.main(["--prune"]) == 2
    assert "ANJU_CONVERSATION_RETENTION_DAYS" in capsys.readouterr().err
    assert senders(tracker_url) == {"old"}  # nothing deleted on a setting nobody meant
    assert conversations.main(["--prune", "--days", "0"]) == 2


def test_the_tracker_database_follows_database_url(monkeypatch, tmp_path):
    monkeypatch.delenv("ANJU_TRACKER_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'anju.sqlite3'}")
    assert conversations.tracker_url() == f"sqlite:///{tmp_path / 'data' / 'conversations.sqlite3'}"
    monkeypatch.delenv("DATABASE_URL")
    assert conversations.tracker_url() == f"sqlite:///{db.RUN_DIR / 'conversations.sqlite3'}"
    postgres = "postgresql://anju:secret@db.example/anju"
    monkeypatch.setenv("DATABASE_URL", postgres)
    assert conversations.tracker_url() == postgres  # the same database: an `events` table beside the ledger
    monkeypatch.setenv("ANJU_TRACKER_URL", "sqlite:////srv/anju/talk.sqlite3")
    assert conversations.tracker_url() == "sqlite:////srv/anju/talk.sqlite3"
    assert conversations.shown_url(postgres) == "postgresql://anju:***@db.example/anju"


def test_prune_on_a_busy_store_counts_rows_once(tracker_url):
    for i in range(30):
        store(tracker_url, f"old-{i}", (100 + i, 95), channel="web", turns=1)
    kept = store(tracker_url, "new", (1, 1))
    done = conversations.prune(now=NOW)
    assert (done.conversations, done.events) == (30, 30 * 3)
    engine = db.make_engine(tracker_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(conversations.events)).scalar_one() == kept
    engine.dispose()
