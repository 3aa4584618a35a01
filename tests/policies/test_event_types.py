"""Rasa's lookup of an event class by name, remembered (policies/event_types.py): the same answers as Rasa's own."""

import pytest
from rasa.shared.core import events as rasa_events
from rasa.shared.utils.common import all_subclasses

from policies import event_types


def rasas_own(type_name, default=None):
    for cls in all_subclasses(rasa_events.Event):
        if cls.type_name == type_name:
            return cls
    if type_name == "topic":
        return None
    if default is not None:
        return default
    raise ValueError(type_name)


def test_every_event_name_resolves_as_rasa_resolves_it_twice_over():
    event_types.install()
    event_types.install()  # installing twice wraps once
    assert rasa_events.Event.resolve_by_type.remembered
    names = {cls.type_name for cls in all_subclasses(rasa_events.Event)}
    assert {"user", "bot", "slot", "action", "session_started", "restart"} <= names
    for _ in range(2):
        for name in names:
            assert rasa_events.Event.resolve_by_type(name) is rasas_own(name)


def test_unknown_names_are_rasas_default_none_or_error_and_are_not_remembered():
    event_types.install()
    resolve = rasa_events.Event.resolve_by_type
    assert resolve("topic") is None
    assert resolve("no_such_event", rasa_events.BotUttered) is rasa_events.BotUttered
    with pytest.raises(ValueError):
        resolve("no_such_event")
    assert "no_such_event" not in event_types._resolved


def test_stored_events_come_back_equal():
    event_types.install()
    stored = [
        rasa_events.UserUttered("那在省内呢", {"name": "follow_up", "confidence": 0.9}).as_dict(),
        rasa_events.SlotSet("topic", "transport_subsidy").as_dict(),
        rasa_events.ActionExecuted("action_respond").as_dict(),
        rasa_events.BotUttered("好的").as_dict(),
    ]
    loaded = rasa_events.deserialise_events(stored)
    assert [e.as_dict() for e in loaded] == stored
