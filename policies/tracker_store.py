"""Tracker stores that never keep personal numbers: ID numbers, phone numbers and verification codes are masked in
every event before a conversation is stored, so neither the store nor anything reading it ever sees them.

endpoints.yml:  tracker_store: {type: policies.tracker_store.ScrubbingSQLTrackerStore}  (the default: SQL, kept across
                    restarts, on ANJU_TRACKER_URL: run/conversations.sqlite3, or the PostgreSQL of DATABASE_URL)
                tracker_store: {type: policies.tracker_store.ScrubbingTrackerStore}     (in memory, lost on restart)

bot/conversations.py reads the SQL store's `events` table: what is kept, and deleting it after the retention period.
"""

from __future__ import annotations

from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot import conversations, db
from bot.privacy import install_log_masking, mask_text

# slots that hold what a resident typed to prove who they are: never stored, whatever their value
SECRET_SLOTS = ("id_suffix",)
MASK = "******"
# slots sealed by bot.sealing (a household id, an expiry and a MAC, no personal number): masking a digit run of the
# MAC would break the seal and end the resident's check at the next message
SEALED_SLOTS = ("verified_household",)

# the Rasa server imports this module when it starts, so its own logs are masked from here on
install_log_masking()


def scrub(tracker: DialogueStateTracker) -> DialogueStateTracker:
    """Masks personal numbers in the tracker's events and slots, in place, and returns the tracker."""
    for event in tracker.events:
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


class ScrubbingSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQLTrackerStore on the project's tracker database (bot.conversations.tracker_url()) unless endpoints.yml
    names one itself (`url:` with a whole SQLAlchemy URL, or Rasa's dialect/host/db/username/password). An SQLite file
    is created private (folder 0700, file 0600) before Rasa opens it."""

    def __init__(self, domain=None, host: str | None = None, event_broker=None, **kwargs) -> None:
        if not host and not kwargs.get("db") and not kwargs.get("dialect"):
            host = conversations.tracker_url()
        if host and "://" in host:
            db.private_sqlite_file(host)
        elif kwargs.get("dialect", "sqlite") == "sqlite" and kwargs.get("db"):
            db.private_sqlite_file(f"sqlite:///{kwargs['db']}")
        super().__init__(domain=domain, host=host, event_broker=event_broker, **kwargs)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(scrub(tracker))
