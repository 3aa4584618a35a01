"""Tracker stores that never keep personal numbers: ID numbers, phone numbers and verification codes are masked in
every event before a conversation is stored, so neither the store nor anything reading it ever sees them.

endpoints.yml:  tracker_store: {type: policies.tracker_store.ScrubbingSQLTrackerStore}  (the default: SQL, kept across
                    restarts, on ANJU_TRACKER_URL: run/conversations.sqlite3, or the PostgreSQL of DATABASE_URL)
                tracker_store: {type: policies.tracker_store.ScrubbingTrackerStore}     (in memory, lost on restart)

bot/conversations.py reads the SQL store's `events` table: what is kept, and deleting it after the retention period.

A turn costs the same at the 300th message as at the first: the SQL store keeps every event, but loads per turn only a
window of the current session (the session start, the events that set the state before the window — the latest value
of each slot, the active loop, a pause — and the last `window_events` events), and stores exactly the events added
since it loaded them. The policies, the action server (which gets the tracker Rasa holds) and the masking all work on
that window. endpoints.yml may set `window_events:` (default 100; actions/respond.py reads the last 40).
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any, Dict, Iterator, List, Tuple

import sqlalchemy as sa
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot import conversations, db
from bot.privacy import install_log_masking, mask_text
from policies import event_types

# slots that hold what a resident typed to prove who they are: never stored, whatever their value
SECRET_SLOTS = ("id_suffix",)
MASK = "******"
# slots sealed by bot.sealing (a household id, an expiry and a MAC, no personal number): masking a digit run of the
# MAC would break the seal and end the resident's check at the next message
SEALED_SLOTS = ("verified_household",)

logger = logging.getLogger(__name__)

# events loaded per turn besides the session start and the state before them: rules look at the last turn, memoization
# (max_history unset) matches only stories shorter than a window, actions/respond.py's transcript() the last 40 events
DEFAULT_WINDOW_EVENTS = 100
# events after which nothing earlier in the session counts (the session start, a restart, all slots reset)
RESET_TYPES = ("session_started", "restart", "reset_slots")
# events whose latest value (per slot, per loop) is the conversation's state
STATE_TYPES = ("slot", "active_loop", "form", "loop_interrupted", "form_validation", "pause", "resume")
# events that undo earlier ones by replaying the tracker: before the window, the whole session is loaded instead
REVERT_TYPES = ("rewind", "undo")
# on the tracker: how many of its events are in the database already (set by retrieve and save)
STORED = "_anju_stored_events"

# the Rasa server imports this module when it starts, so its own logs are masked from here on (and events load fast)
install_log_masking()
event_types.install()


def scrub(tracker: DialogueStateTracker, start: int = 0) -> DialogueStateTracker:
    """Masks personal numbers in the tracker's events (from the `start`th on: those before were masked when they
    were stored) and slots, in place, and returns the tracker."""
    for event in itertools.islice(tracker.events, start, None):
        if isinstance(event, UserUttered):
            event.text = mask_text(event.text)
            if isinstance(event.parse_data, dict) and event.parse_data.get("text"):
                event.parse_data["text"] = mask_text(event.parse_data["text"])
        elif isinstance(event, BotUttered):
            event.text = mask_text(event.text)
        elif isinstance(event, SlotSet) and event.key in SECRET_SLOTS and event.value is not None:
            event.value = MASK
        elif isinstance(event, SlotSet) and isinstance(event.value, str) and event.key not in SEALED_SLOTS:
            event.value = mask_text(event.value)
    for name, slot in tracker.slots.items():
        if name in SECRET_SLOTS and slot.value is not None:
            slot.value = MASK
        elif isinstance(slot.value, str) and name not in SEALED_SLOTS:
            slot.value = mask_text(slot.value)
    return tracker


class ScrubbingTrackerStore(InMemoryTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(scrub(tracker))


# the window is the last events of one sender: read backwards along this index, not the whole conversation
SENDER_EVENTS_INDEX = sa.Index(
    "ix_events_sender_id_id", SQLTrackerStore.SQLEvent.sender_id, SQLTrackerStore.SQLEvent.id
)
# what comes before the window (the latest session start, reset, undo and value of each slot) is found in this index
# alone, one seek for each kind of event: never the events' data, and no more work however long the conversation
SENDER_TYPES_INDEX = sa.Index(
    "ix_events_sender_id_type_name_action_name_id",
    SQLTrackerStore.SQLEvent.sender_id,
    SQLTrackerStore.SQLEvent.type_name,
    SQLTrackerStore.SQLEvent.action_name,
    SQLTrackerStore.SQLEvent.id,
)


def _write_ahead(engine: sa.engine.Engine) -> None:
    """SQLite in write-ahead mode: a commit no longer waits for a full sync of the file on every turn (16 ms each,
    blocking Rasa's event loop), readers never wait for the writer, and several Rasa servers on one machine share
    the file. WAL is a property of the file (set once); `synchronous=NORMAL` is per connection, as SQLite advises
    for WAL (a power cut may lose the last turns, never corrupt the file)."""

    @sa.event.listens_for(engine, "connect")
    def _per_connection(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    except sa.exc.OperationalError as e:  # e.g. another server holds the file this instant: it is WAL already or soon
        logger.warning("could not switch the tracker database to write-ahead mode: %s", e)
    engine.dispose()  # connections made before the listener get the pragma on their next connect


class ScrubbingSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQLTrackerStore on the project's tracker database (bot.conversations.tracker_url()) unless endpoints.yml
    names one itself (`url:` with a whole SQLAlchemy URL, or Rasa's dialect/host/db/username/password). An SQLite file
    is created private (folder 0700, file 0600) before Rasa opens it. Loads a bounded window of the current session
    (module docstring); `retrieve_full_tracker` still reads the whole conversation."""

    def __init__(
        self,
        domain=None,
        host: str | None = None,
        event_broker=None,
        window_events: int = DEFAULT_WINDOW_EVENTS,
        **kwargs,
    ) -> None:
        if not host and not kwargs.get("db") and not kwargs.get("dialect"):
            host = conversations.tracker_url()
        if host and "://" in host:
            db.private_sqlite_file(host)
        elif kwargs.get("dialect", "sqlite") == "sqlite" and kwargs.get("db"):
            db.private_sqlite_file(f"sqlite:///{kwargs['db']}")
        super().__init__(domain=domain, host=host, event_broker=event_broker, **kwargs)
        self.window_events = int(window_events)
        self._latest_statement: Tuple[List[Tuple[str, str | None]], Any] | None = None
        if self.window_events < 1:
            raise ValueError(f"window_events must be at least 1, not {window_events!r}")
        if self.engine.dialect.name == "sqlite":
            # SQLAlchemy 1.4 opens a file-based SQLite database anew for every session (NullPool): five opens a turn,
            # each with its pragma. Rasa uses the store from its event loop only; a pool keeps one connection open.
            self.engine.dispose()
            self.engine = sa.create_engine(
                self.engine.url, poolclass=sa.pool.QueuePool, connect_args={"check_same_thread": False}
            )
            self.sessionmaker = sa.orm.sessionmaker(bind=self.engine)
            _write_ahead(self.engine)
        for index in (SENDER_EVENTS_INDEX, SENDER_TYPES_INDEX):
            try:  # a database made before the index existed; several servers starting at once may race to create it
                index.create(self.engine, checkfirst=True)
            except (sa.exc.OperationalError, sa.exc.ProgrammingError) as e:
                logger.warning("could not create the index %s: %s", index.name, e)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The current session as a bounded window (module docstring); None for a conversation never stored."""
        with self.session_scope() as session:
            rows = self._window(session, sender_id)
        if not rows or not self.domain:
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, [json.loads(data) for data in rows], self.domain.slots)
        setattr(tracker, STORED, len(tracker.events))
        return tracker

    def _window(self, session: Any, sender_id: str) -> List[str]:
        """The stored events (as JSON) that make up the tracker: the whole session when it is no longer than the
        window, else the session start, the last reset, the latest state-setting events before the window, and the
        window itself — each a real stored event, in the order they were stored. Three statements whatever the
        length: the last events, the latest id of each kind that matters (`_latest`), those events' data."""
        E = self.SQLEvent
        mine = session.query(E).filter(E.sender_id == sender_id)
        tail = mine.order_by(E.id.desc()).limit(self.window_events + 1).with_entities(E.id, E.data).all()
        if not tail:
            return []
        latest = self._latest(session, sender_id)  # (type, name) -> the latest id
        start = latest.get(("session_started", None))  # Rasa's own retrieve: from the latest session start on
        tail = [(i, data) for i, data in tail if start is None or i >= start]
        if len(tail) <= self.window_events:
            return [data for _, data in reversed(tail)]
        window = tail[: self.window_events][::-1]
        first = window[0][0]
        resets = [i for (kind, _), i in latest.items() if kind in RESET_TYPES and i < first]
        reset = max(resets, default=None)
        boundary = max((i for i in (start, reset) if i is not None), default=0)
        if any(boundary < i for (kind, _), i in latest.items() if kind in REVERT_TYPES):
            # an undo after the boundary: in the window only, or before it too (then the whole session is replayed)
            undone = mine.filter(E.type_name.in_(REVERT_TYPES), E.id > boundary, E.id < first).first()
            if undone is not None:
                session_events = mine.filter(E.id >= start) if start is not None else mine
                return [data for (data,) in session_events.order_by(E.id).with_entities(E.data)]
        state = {i for (kind, _), i in latest.items() if kind in STATE_TYPES and boundary < i < first}
        kept = state | {i for i in (start, reset) if i is not None}
        head = mine.filter(E.id.in_(kept)).order_by(E.id).with_entities(E.data).all() if kept else []
        return [data for (data,) in head] + [data for _, data in window]

    def _latest(self, session: Any, sender_id: str) -> Dict[Tuple[str, str | None], int]:
        """The latest id of each kind of event that matters before a window, in one statement of one index seek per
        kind (SENDER_TYPES_INDEX): the same cost at the 10th turn as at the 10,000th."""
        if self._latest_statement is None:  # built once: the kinds follow the domain
            E = self.SQLEvent
            kinds = [(kind, None) for kind in ("session_started", *RESET_TYPES[1:], *REVERT_TYPES, *STATE_TYPES)]
            kinds += [("slot", slot.name) for slot in self.domain.slots]
            kinds += [(kind, form) for kind in ("active_loop", "form") for form in self.domain.form_names]
            sender = sa.bindparam("sender")
            seeks = [
                sa.select(sa.func.max(E.id))
                .where(
                    E.sender_id == sender,
                    E.type_name == kind,
                    E.action_name.is_(None) if name is None else E.action_name == name,
                )
                .scalar_subquery()
                for kind, name in kinds
            ]
            self._latest_statement = (kinds, sa.select(*seeks))
        kinds, statement = self._latest_statement
        row = session.execute(statement, {"sender": sender_id}).one()
        return {kind: last for kind, last in zip(kinds, row, strict=True) if last is not None}

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        """The events added since the tracker was loaded or last saved. A loaded tracker is a window, so Rasa's way
        (count the session's stored events, skip as many of the tracker's) would skip the wrong ones; a tracker this
        store did not load (a new conversation) is counted Rasa's way."""
        stored = getattr(tracker, STORED, None)
        if stored is None:
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, stored, None)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(scrub(tracker, getattr(tracker, STORED, None) or 0))  # what is stored is masked already
        setattr(tracker, STORED, len(tracker.events))
