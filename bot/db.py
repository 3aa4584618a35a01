"""The database: one engine and session factory per URL. SQLite file by default, PostgreSQL via DATABASE_URL; the
schema is Alembic's (bot.migrate).

Sessions are per request and the caller owns the transaction: `with session_scope() as s: ...` commits on success
and rolls back on error.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from bot import settings as settings_module

T = TypeVar("T")
_lock = threading.Lock()
_factories: Dict[str, sessionmaker] = {}


def database_url() -> str:
    return settings_module.load().database_url


# the project's own folder for databases and run-time files (the default SQLite files live here)
RUN_DIR = settings_module.ROOT / "run"


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for an in-memory database or another kind of database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def private_sqlite_file(url: str) -> Path | None:
    """Makes the SQLite file of `url` private before anything opens it: a missing folder is created 0700 (and the
    project's run/ folder is made 0700 even when an older version created it open), the file 0600 (SQLite gives its
    journal the file's mode). A file that is already there is narrowed to 0600. Not SQLite: nothing to do."""
    path = sqlite_path(url)
    if path is None:
        return None
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.resolve() == RUN_DIR.resolve():
        _narrow(folder, 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    _narrow(path, 0o600)
    return path


def _narrow(path: Path, mode: int) -> None:
    """chmod `path` to `mode` when others or the group may read it; a file someone else owns is left alone."""
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(mode)
    except OSError:
        pass


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        engine = create_engine(url, future=True, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def session_factory(url: str | None = None) -> sessionmaker:
    """The sessionmaker for `url` (default: settings). The schema is made by `bot.migrate` (make migrate), not here."""
    url = url or database_url()
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            engine = make_engine(url)
            factory = sessionmaker(bind=engine, future=True, expire_on_commit=False)
            _factories[url] = factory
        return factory


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    with session_factory(url).begin() as session:
        yield session


def run(fn: Callable[..., T], *args) -> T:
    """`fn(session, *args)` in one transaction: the way the doors call a repository function (in a worker thread)."""
    with session_scope() as session:
        return fn(session, *args)


def ping(session: Session) -> bool:
    """Whether the database can be read: a table, since SQLite answers `SELECT 1` without opening the file, so even
    while another connection holds it locked (BEGIN EXCLUSIVE)."""
    return session.execute(text("SELECT count(*) FROM alembic_version")).scalar() is not None


def dispose(url: str | None = None) -> None:
    """Closes the pooled connections for `url` (tests dropping a database call this first)."""
    with _lock:
        factory = _factories.pop(url or database_url(), None)
    if factory is not None:
        factory.kw["bind"].dispose()
