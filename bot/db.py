"""The database: one engine and session factory per URL. SQLite file by default, PostgreSQL via DATABASE_URL; the
schema is Alembic's (bot.migrate).

Sessions are per request and the caller owns the transaction: `with session_scope() as s: ...` commits on success
and rolls back on error.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import settings as settings_module

T = TypeVar("T")
_lock = threading.Lock()
_factories: Dict[str, sessionmaker] = {}


def database_url() -> str:
    return settings_module.load().database_url


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    return session.execute(text("SELECT 1")).scalar() == 1


def dispose(url: str | None = None) -> None:
    """Closes the pooled connections for `url` (tests dropping a database call this first)."""
    with _lock:
        factory = _factories.pop(url or database_url(), None)
    if factory is not None:
        factory.kw["bind"].dispose()
