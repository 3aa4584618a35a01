"""The database schema, managed by Alembic (revisions in bot/migrations/versions/) for SQLite and PostgreSQL.

`upgrade()` brings a database to the current revision: an empty one gets every table; one created by `create_all`
before migrations existed is stamped with the baseline revision first, then upgraded. `python -m bot.migrate` does it
for DATABASE_URL (make run and make import call it); `python -m bot.migrate current` prints the revision.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from bot import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema as `create_all` made it before migrations existed
# PostgreSQL advisory lock held by the upgrading transaction (any number, the same in every process)
UPGRADE_LOCK = 0x616E6A75  # "anju"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or db.database_url()).replace("%", "%%"))
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current(url: str | None = None) -> str | None:
    engine = db.make_engine(url or db.database_url())
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """An SQLite database's upgrades one at a time, across processes: a lock on a file beside the database."""
    path = make_url(url).database
    if not url.startswith("sqlite") or not path or path == ":memory:":
        yield
        return
    descriptor = os.open(f"{path}.upgrade-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def upgrade(url: str | None = None) -> str:
    """Upgrades the database at `url` (default: the settings') to the newest revision; returns that revision.
    Processes that start together (two gateways, a gateway and an import) upgrade one after another: the first does
    the work, the others find nothing left to do (on PostgreSQL an advisory lock held until the upgrade commits, on
    SQLite a file lock)."""
    url = url or db.database_url()
    config = alembic_config(url)
    engine = db.make_engine(url)
    try:
        with _sqlite_file_lock(url), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
            config.attributes["connection"] = connection
            tables = set(inspect(connection).get_table_names())
            if "households" in tables and "alembic_version" not in tables:
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def ours(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's include_object: Rasa's tracker store keeps its `events` table in the same PostgreSQL database; it is
    not ours to migrate, and autogenerate must not propose dropping it."""
    return not (type_ == "table" and reflected and compare_to is None and name == "events")


def drop_all(url: str) -> None:
    """Drops every table, the revision and the conversations Rasa keeps beside them on PostgreSQL (tests and
    benchmarks start from an empty database)."""
    from bot.models import Base

    engine = db.make_engine(url)
    try:
        Base.metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            connection.exec_driver_sql("DROP TABLE IF EXISTS events")  # Rasa's SQL tracker store
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["current"]:
        print(current() or "（空库，还没有迁移）")
        return 0
    print(f"数据库已升级到版本 {upgrade()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
