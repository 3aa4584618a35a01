"""Where conversations are kept, and for how long.

The Rasa server keeps every conversation in an SQL tracker store (policies/tracker_store.py, personal numbers masked):
its `events` table, one row per event (sender_id, type_name, timestamp, data as JSON, …). This module reads that table
with SQLAlchemy alone (the core never imports Rasa), so the same code works on SQLite and PostgreSQL:

- ANJU_TRACKER_URL names the database; by default conversations.sqlite3 beside the SQLite file of DATABASE_URL
  (run/conversations.sqlite3), or the DATABASE_URL database itself when that is PostgreSQL.
- ANJU_CONVERSATION_RETENTION_DAYS (default 90): a conversation whose last event is older is deleted by `--prune`.

`python -m bot.conversations` (make conversations) shows what is kept; `--prune` deletes what is past the retention
period (make run does it at start-up; a server that runs for months runs it daily, see the README).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, inspect, select
from sqlalchemy.engine import Engine, make_url

from bot import db
from bot import settings as settings_module

TRACKER_URL_ENV = "ANJU_TRACKER_URL"
RETENTION_ENV = "ANJU_CONVERSATION_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
SQLITE_FILE = "conversations.sqlite3"

# Rasa's SQLTrackerStore.SQLEvent, as far as we read it (its own metadata: Alembic never sees this table)
events = Table(
    "events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)


def default_tracker_url(database_url: str) -> str:
    """Conversations beside the app's SQLite file (run/ when it has none), or in the app's database otherwise."""
    if make_url(database_url).get_backend_name() != "sqlite":
        return database_url
    path = db.sqlite_path(database_url)
    folder = path.parent if path is not None else db.RUN_DIR
    return f"sqlite:///{folder / SQLITE_FILE}"


def tracker_url() -> str:
    """The tracker store's database: ANJU_TRACKER_URL, else the default for DATABASE_URL."""
    s = settings_module.load()
    return s.tracker_url or default_tracker_url(s.database_url)


def retention_days() -> int:
    raw = settings_module.load().conversation_retention_days
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ValueError(f"{RETENTION_ENV} 应为正整数（天），现在是 {raw!r}")
    return days


def shown_url(url: str) -> str:
    """The URL without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def _engine(url: str) -> Engine | None:
    """An engine on the store, or None when nothing was ever stored (a missing SQLite file is not created)."""
    path = db.sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = db.make_engine(url)
    if not inspect(engine).has_table(events.name):
        engine.dispose()
        return None
    return engine


@dataclass
class Summary:
    url: str
    retention_days: int
    cutoff: float  # conversations whose last event is older than this (epoch seconds) are due for deletion
    conversations: int = 0
    events: int = 0
    oldest: float | None = None  # the earliest event kept
    newest: float | None = None
    due: int = 0  # conversations past the retention period, deleted by the next prune
    channels: Dict[str, int] = field(default_factory=dict)  # conversations per door (the first message's channel)


def _last_event_per_conversation():
    return (
        select(events.c.sender_id, func.max(events.c.timestamp).label("last")).group_by(events.c.sender_id).subquery()
    )


def summary(url: str | None = None, days: int | None = None, now: float | None = None) -> Summary:
    url = url or tracker_url()
    days = days or retention_days()
    cutoff = (time.time() if now is None else now) - days * 86400
    result = Summary(url, days, cutoff)
    engine = _engine(url)
    if engine is None:
        return result
    try:
        with engine.connect() as connection:
            count, oldest, newest = connection.execute(
                select(func.count(), func.min(events.c.timestamp), func.max(events.c.timestamp))
            ).one()
            result.events, result.oldest, result.newest = count, oldest, newest
            last = _last_event_per_conversation()
            result.conversations = connection.execute(select(func.count()).select_from(last)).scalar_one()
            result.due = connection.execute(
                select(func.count()).select_from(last).where(last.c.last < cutoff)
            ).scalar_one()
            # the door: the channel of each conversation's first message (one JSON document per conversation)
            first = (
                select(func.min(events.c.id).label("id"))
                .where(events.c.type_name == "user")
                .group_by(events.c.sender_id)
                .subquery()
            )
            channels: Counter = Counter()
            for (data,) in connection.execute(select(events.c.data).join(first, events.c.id == first.c.id)):
                channels[_channel(data)] += 1
            silent = result.conversations - sum(channels.values())
            if silent:
                channels["（没有消息）"] += silent
            result.channels = dict(channels.most_common())
    finally:
        engine.dispose()
    return result


def _channel(data: str | None) -> str:
    try:
        return str(json.loads(data or "{}").get("input_channel") or "unknown")
    except (ValueError, AttributeError):
        return "unknown"


@dataclass(frozen=True)
class Pruned:
    conversations: int
    events: int
    cutoff: float


def prune(url: str | None = None, days: int | None = None, now: float | None = None) -> Pruned:
    """Deletes every conversation whose last event is older than the retention period, all its events at once."""
    url = url or tracker_url()
    days = days or retention_days()
    cutoff = (time.time() if now is None else now) - days * 86400
    engine = _engine(url)
    if engine is None:
        return Pruned(0, 0, cutoff)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":  # deleted text is overwritten, not left behind in free pages
                connection.exec_driver_sql("PRAGMA secure_delete=ON")
            last = _last_event_per_conversation()
            expired = select(last.c.sender_id).where(last.c.last < cutoff)
            conversations = connection.execute(select(func.count()).select_from(expired.subquery())).scalar_one()
            deleted = connection.execute(events.delete().where(events.c.sender_id.in_(expired))).rowcount
    finally:
        engine.dispose()
    return Pruned(conversations, deleted, cutoff)


def stored_events(sender_id: str, url: str | None = None) -> List[Dict[str, Any]]:
    """The events stored for one conversation, oldest first, as Rasa wrote them (every session)."""
    engine = _engine(url or tracker_url())
    if engine is None:
        return []
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(events.c.data).where(events.c.sender_id == sender_id).order_by(events.c.id)
            ).scalars()
            return [json.loads(data) for data in rows]
    finally:
        engine.dispose()


def drop_store(url: str) -> None:
    """Drops the events table: every stored conversation (tests start from an empty store)."""
    engine = _engine(url)
    if engine is not None:
        events.drop(engine, checkfirst=True)
        engine.dispose()


def _when(timestamp: float | None) -> str:
    return "—" if timestamp is None else dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def report(s: Summary) -> str:
    lines = [
        f"对话保存在 {shown_url(s.url)}（身份证号、电话号码、核对码已打码）",
        f"保留 {s.retention_days} 天（{RETENTION_ENV}）：最后一条消息早于 {_when(s.cutoff)} 的对话会被删除",
    ]
    if not s.conversations:
        lines.append("现在没有保存的对话")
        return "\n".join(lines)
    lines.append(f"对话 {s.conversations} 个，事件 {s.events} 条；最早 {_when(s.oldest)}，最新 {_when(s.newest)}")
    lines.append("按入口：" + "，".join(f"{name} {count}" for name, count in s.channels.items()))
    if s.due:
        lines.append(f"已过保留期、待删除：{s.due} 个对话（make conversations PRUNE=1 删除）")
    else:
        lines.append("没有过了保留期的对话")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.conversations", description="保存的对话：看保留了什么，删掉过期的"
    )
    parser.add_argument("--prune", action="store_true", help="删除最后一条消息早于保留期的对话")
    parser.add_argument(
        "--days", type=int, help=f"这一次用的保留天数（默认 {RETENTION_ENV}，{DEFAULT_RETENTION_DAYS} 天）"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        days = args.days if args.days is not None else retention_days()
        if days < 1:
            raise ValueError("--days 应为正整数")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.prune:
        done = prune(days=days)
        print(
            f"保留 {days} 天：删除了 {done.conversations} 个对话（{done.events} 条事件），"
            f"它们的最后一条消息早于 {_when(done.cutoff)}"
        )
        return 0
    print(report(summary(days=days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
