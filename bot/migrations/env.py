"""Alembic's environment: the tables of bot.models, on the database bot.migrate hands over (or DATABASE_URL)."""

from __future__ import annotations

from alembic import context

from bot import db, migrate
from bot.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line: DATABASE_URL or the settings' default
        engine = db.make_engine(config.get_main_option("sqlalchemy.url") or db.database_url())
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
        engine.dispose()
    else:
        _run(connection)


def _run(connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table, as Alembic documents
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=migrate.ours,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
