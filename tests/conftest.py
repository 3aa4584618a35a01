"""Shared fixtures: each database test runs against a fresh SQLite file and a fresh PostgreSQL schema."""

import os
from pathlib import Path

import pytest

from bot import db, migrate
from bot.text_normalization import TextNormalizer

ROOT = Path(__file__).resolve().parent.parent
# one secret for every process a test starts (gateway, Rasa, action server), and none written under run/
os.environ.setdefault("ANJU_SECRET_KEY", "tests-only-secret-" + os.urandom(8).hex())
NORMALIZE = TextNormalizer()


def user_turn(text, intent="inform", entities=(), confidence=0.9, channel="rest"):
    """(latest_message, user event) as Rasa hands them to the action server: the NLU pipeline's ChineseNormalizer has
    rewritten the parse data's text, the user event keeps what the resident typed."""
    parse_data = {
        "text": NORMALIZE(text),
        "intent": {"name": intent, "confidence": confidence},
        "entities": [{"entity": kind, "value": value} for kind, value in entities],
    }
    return parse_data, {"event": "user", "text": text, "input_channel": channel, "parse_data": parse_data}


DEMO = ROOT / "demo"


def _postgres_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.fail("TEST_POSTGRES_URL is not set: run the tests through `make test` (it starts PostgreSQL)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path, monkeypatch):
    """DATABASE_URL for one test, with no tables. PostgreSQL comes from TEST_POSTGRES_URL (make test starts one)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'anju.sqlite3'}"
    else:
        url = _postgres_url()
        migrate.drop_all(url)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    db.dispose(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def tracker_url(request, tmp_path, monkeypatch):
    """ANJU_TRACKER_URL for one test, with nothing stored (Rasa's events table); the default retention period."""
    from bot import conversations

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'run' / 'conversations.sqlite3'}"
    else:
        url = _postgres_url()
        conversations.drop_store(url)
    monkeypatch.setenv("ANJU_TRACKER_URL", url)
    monkeypatch.delenv("ANJU_CONVERSATION_RETENTION_DAYS", raising=False)
    yield url
    conversations.drop_store(url)


@pytest.fixture
def database_url(empty_database_url):
    """DATABASE_URL for one test, upgraded to the current schema (as `make migrate` does), with empty tables."""
    migrate.upgrade(empty_database_url)
    return empty_database_url


@pytest.fixture
def demo_database(database_url):
    """The fictitious demo ledger, imported."""
    from bot.importer import import_ledger

    with db.session_scope() as session:
        import_ledger(session, DEMO / "households.csv", DEMO / "members.csv")
    return database_url


@pytest.fixture
def redis_url():
    """A real Redis server (TEST_REDIS_URL: make test starts one with tools/test-redis), emptied for each test."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.fail("TEST_REDIS_URL is not set: run the tests through `make test` (it starts Redis)")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
