"""run/ and the SQLite databases are private: folders made 0700, database files 0600, before anything writes to them
(the app's database through bot.db / bot.migrate, the conversations through the tracker store)."""

import os
import stat

import pytest

from bot import db, migrate


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    """The usual umask (022): private modes must not depend on a careful one."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_database_and_its_folder_are_private(tmp_path):
    url = f"sqlite:///{tmp_path / 'run' / 'deeper' / 'anju.sqlite3'}"
    migrate.upgrade(url)
    assert mode(tmp_path / "run" / "deeper") == 0o700
    assert mode(tmp_path / "run" / "deeper" / "anju.sqlite3") == 0o600
    with db.session_scope(url) as session:  # and it is a working database
        assert db.ping(session)
    db.dispose(url)
    assert not [p.name for p in (tmp_path / "run" / "deeper").iterdir() if mode(p) & 0o077]


def test_an_existing_open_database_is_narrowed(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    path = folder / "anju.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    db.private_sqlite_file(f"sqlite:///{path}")
    assert mode(path) == 0o600
    assert mode(folder) == 0o755  # a folder we did not make is not ours to close (it may be /srv, /tmp…)


def test_the_projects_run_folder_is_made_private_even_when_it_exists(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    os.chmod(run, 0o755)
    monkeypatch.setattr(db, "RUN_DIR", run)
    db.private_sqlite_file(f"sqlite:///{run / 'anju.sqlite3'}")
    assert mode(run) == 0o700 and mode(run / "anju.sqlite3") == 0o600


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "postgresql://anju@127.0.0.1/anju"])
def test_databases_without_a_file_are_left_alone(url):
    assert db.sqlite_path(url) is None and db.private_sqlite_file(url) is None


def test_the_default_databases_live_in_run(monkeypatch):
    from bot import conversations, settings

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ANJU_TRACKER_URL", raising=False)
    assert db.sqlite_path(settings.load().database_url) == db.RUN_DIR / "anju.sqlite3"
    assert db.sqlite_path(conversations.tracker_url()) == db.RUN_DIR / "conversations.sqlite3"
