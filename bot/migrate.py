"""The database schema, managed by Alembic (revisions in bot/migrations/versions/) for SQLite and PostgreSQL.

`upgrade()` brings a database to the current revision: an empty one gets every table; one created by `create_all`
before migrations existed is stamped with the baseline revision first, then upgraded. `python -m bot.migrate` does it
for DATABASE_URL (make run and make import call it); `python -m bot.migrate current` prints the revision.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema as `create_all` made it before migrations existed


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


def upgrade(url: str | None = None) -> str:
    """Upgrades the database at `url` (default: the settings') to the newest revision; returns that revision."""
    url = url or db.database_url()
    config = alembic_config(url)
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
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
