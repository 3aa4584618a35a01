"""Tracker stores that never keep personal numbers: ID numbers, phone numbers and verification codes are masked in
every event before a conversation is stored, so neither the store nor anything reading it ever sees them.

endpoints.yml:  tracker_store: {type: policies.tracker_store.ScrubbingTrackerStore}        (in memory)
                tracker_store: {type: policies.tracker_store.ScrubbingSQLTrackerStore, …}  (SQL, e.g. PostgreSQL)
"""

from __future__ import annotations

from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.privacy import install_log_masking, mask_text

# slots that hold what a resident typed to prove who they are: never stored, whatever their value
SECRET_SLOTS = ("id_suffix",)
MASK = "******"

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
        elif isinstance(event, SlotSet) and isinstance(event.value, str):
            event.value = mask_text(event.value)
    for name, slot in tracker.slots.items():
        if name in SECRET_SLOTS and slot.value is not None:
            slot.value = MASK
        elif isinstance(slot.value, str):
            slot.value = mask_text(slot.value)
    return tracker


class ScrubbingTrackerStore(InMemoryTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(scrub(tracker))


class ScrubbingSQLTrackerStore(SQLTrackerStore):
    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(scrub(tracker))
