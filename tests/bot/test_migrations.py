"""Alembic manages the schema: an empty database and one made by the pre-migration code (create_all) both reach the
current revision, with every table and column of bot.models, on SQLite and PostgreSQL."""

from alembic import command
from sqlalchemy import inspect

from bot import db, migrate
from bot.models import Base


def _columns(url):
    engine = db.make_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names() if t != "alembic_version"}
    finally:
        engine.dispose()


EXPECTED = {table.name: {c.name for c in table.columns} for table in Base.metadata.sorted_tables}


def test_an_empty_database_is_upgraded_to_the_head(empty_database_url):
    database_url = empty_database_url
    assert migrate.current(database_url) is None
    assert migrate.upgrade(database_url) == migrate.head()
    assert _columns(database_url) == EXPECTED
    assert migrate.upgrade(database_url) == migrate.head()  # a second upgrade changes nothing


def test_a_database_made_before_migrations_is_stamped_and_upgraded(empty_database_url):
    database_url = empty_database_url
    from bot.importer import import_ledger

    from ..conftest import DEMO

    # the tables as `create_all` made them before Alembic: the baseline revision's schema, with no revision recorded
    command.upgrade(migrate.alembic_config(database_url), migrate.BASELINE)
    engine = db.make_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()
    assert migrate.current(database_url) is None
    assert migrate.upgrade(database_url) == migrate.head()
    assert _columns(database_url) == EXPECTED
    with db.session_scope(database_url) as session:  # and the data layer works on it
        assert import_ledger(session, DEMO / "households.csv", DEMO / "members.csv").households_added > 0


def test_the_migrate_command_upgrades_the_configured_database(empty_database_url, capsys):
    assert migrate.main([]) == 0
    assert migrate.head() in capsys.readouterr().out
    assert migrate.main(["current"]) == 0
    assert capsys.readouterr().out.strip() == migrate.head()
