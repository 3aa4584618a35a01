"""Alembic manages the schema: an empty database and one made by the pre-migration code (create_all) both reach the
current revision, with every table and column of bot.models, on SQLite and PostgreSQL."""

import datetime as dt

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


def test_revision_0003_keeps_accounts_and_groups_earlier_questions(empty_database_url):
    """Login locks become throttles (staff_users.locked_until goes), and unanswered questions written before groups
    were kept are grouped the first time the staff console lists them; the revision also goes back down."""
    from sqlalchemy import text

    from bot import accounts, tickets

    url = empty_database_url
    config = migrate.alembic_config(url)
    command.upgrade(config, "0002")
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO staff_users (username, password_hash, role, active, failed_logins, locked_until,"
                " created_at) VALUES ('clerk1', :hash, 'staff', :yes, 3, :now, :now)"
            ),
            {"hash": accounts.hash_password("correct-horse-42"), "yes": True, "now": dt.datetime(2026, 1, 1)},
        )
        for text_ in ("医保卡丢了咋补办啊", "医保卡丢了怎么补办", "明天会下雨吗"):
            connection.execute(
                text(
                    "INSERT INTO unanswered (at, channel, conversation_id, text, kind, topic, handled)"
                    " VALUES (:now, 'web', 'c1', :text, 'nlu_fallback', '', :no)"
                ),
                {"now": dt.datetime(2026, 1, 1), "text": text_, "no": False},
            )
    engine.dispose()
    assert migrate.upgrade(url) == migrate.head()
    assert "locked_until" not in _columns(url)["staff_users"]
    with db.session_scope(url) as session:
        assert [(g.count, g.text) for g in tickets.unanswered_groups(session).items] == [
            (2, "医保卡丢了咋补办啊"),
            (1, "明天会下雨吗"),
        ]
    assert accounts.log_in("clerk1", "correct-horse-42", "192.0.2.1", 30, url=url).token
    command.downgrade(config, "0002")
    assert "login_throttles" not in _columns(url) and "locked_until" in _columns(url)["staff_users"]
    assert migrate.upgrade(url) == migrate.head()
    assert _columns(url) == EXPECTED


def test_rasas_events_table_is_left_to_rasa_and_dropped_with_the_rest(empty_database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    migrate.upgrade(empty_database_url)
    engine = db.make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255))")
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_object": migrate.ours})
            assert compare_metadata(context, Base.metadata) == []  # no "drop table events" proposed
    finally:
        engine.dispose()
    migrate.drop_all(empty_database_url)
    assert _columns(empty_database_url) == {}


def _upgrade_in_a_process(url, start):
    import time as _time

    _time.sleep(max(0.0, start - _time.time()))  # all at the same instant, as gateways started together are
    return migrate.upgrade(url)


def test_servers_starting_together_upgrade_the_database_once(empty_database_url):
    """Two gateways (or a gateway and `make import`) starting at the same moment both upgrade the schema: one does,
    the others wait for it and find nothing left to do; none fails."""
    import multiprocessing
    import time

    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        start = time.time() + 3  # after every process has imported the code
        revisions = pool.starmap(_upgrade_in_a_process, [(empty_database_url, start)] * 4)
    assert revisions == [migrate.head()] * 4
    assert _columns(empty_database_url) == EXPECTED
