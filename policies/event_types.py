"""Rasa's lookup of an event's class by its name, remembered.

Rasa 3.6 turns each stored event back into an object with `Event.resolve_by_type`, which walks every subclass of
Event (recursively, checking each for abstractness) for every single event: ~70 µs an event, 3–8 ms of every turn for
a tracker of 50–100 events, more than the database query that loaded them (issue 12). The classes do not change once
Rasa has imported them, so `install()` keeps what each name resolved to; a name not known yet (an event class defined
later) is looked up Rasa's way, and the default or error of an unknown name is exactly Rasa's.
policies/gateway_channel.py and policies/tracker_store.py install it when Rasa loads them.
"""

from __future__ import annotations

from typing import Dict, Text, Type

from rasa.shared.core.events import Event

_resolved: Dict[Text, Type[Event]] = {}


def install() -> None:
    if getattr(Event.resolve_by_type, "remembered", False):
        return
    walk = Event.resolve_by_type

    def resolve_by_type(type_name: Text, default: Type[Event] | None = None) -> Type[Event] | None:
        known = _resolved.get(type_name)
        if known is not None:
            return known
        found = walk(type_name, default)
        if found is not None and found.type_name == type_name:  # not the default of a name no class has
            _resolved[type_name] = found
        return found

    resolve_by_type.remembered = True  # type: ignore[attr-defined]
    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]
