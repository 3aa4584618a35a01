"""The tracker store masks personal numbers in slots, but leaves a sealed household whole: a MAC with a run of digits
in it, masked, would no longer open and the resident would be asked to prove who they are at every message."""

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from bot import sealing
from policies.tracker_store import scrub

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
slots:
  verified_household: {type: any, mappings: [{type: custom}]}
  head_name: {type: any, mappings: [{type: custom}]}
"""
)


def test_a_sealed_household_survives_scrubbing_and_a_phone_number_does_not():
    sealed = "GHY00001|1764450000|" + "1391234567812345" + "a" * 48  # digit runs in the MAC, as can happen
    assert sealing.unseal(sealed, "c") is None  # (made up: only its shape matters here)
    tracker = DialogueStateTracker.from_events(
        "c", [SlotSet("verified_household", sealed), SlotSet("head_name", "张三 13912345678")], slots=DOMAIN.slots
    )
    scrub(tracker)
    assert tracker.get_slot("verified_household") == sealed
    assert [e.value for e in tracker.events if e.key == "verified_household"] == [sealed]
    assert "13912345678" not in tracker.get_slot("head_name")
