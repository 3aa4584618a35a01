"""Shared fixtures: each database test runs against a fresh SQLite file and a fresh PostgreSQL schema."""

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from bot import db
from bot.models import Base

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, monkeypatch):
    """DATABASE_URL for one test, with empty tables. PostgreSQL comes from TEST_POSTGRES_URL (make test starts one)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'anju.sqlite3'}"
    else:
        url = os.environ.get("TEST_POSTGRES_URL")
        if not url:
            pytest.fail("TEST_POSTGRES_URL is not set: run the tests through `make test` (it starts PostgreSQL)")
        engine = create_engine(url, future=True)
        Base.metadata.drop_all(engine)
        engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    db.dispose(url)


@pytest.fixture
def demo_database(database_url):
    """The fictitious demo ledger, imported."""
    from bot.importer import import_ledger

    with db.session_scope() as session:
        import_ledger(session, DEMO / "households.csv", DEMO / "members.csv")
    return database_url
