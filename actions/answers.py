"""action_answer: says the knowledge entry for the resident's question, and keeps the topic for follow-ups."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import knowledge
from bot import settings

# entities whose values pick a more specific answer (see `variants` in knowledge/answers.yml)
VARIANT_ENTITIES = ("work_region", "school_level")


def latest_entities(tracker: Tracker) -> Dict[str, str]:
    """The first value of each variant entity in the latest message, in the order the resident said them."""
    found: Dict[str, str] = {}
    for entity in tracker.latest_message.get("entities", []):
        kind = entity.get("entity")
        if kind in VARIANT_ENTITIES and kind not in found and entity.get("value"):
            found[kind] = str(entity["value"])
    return found


class ActionAnswer(Action):
    def name(self) -> Text:
        return "action_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        kb = knowledge.load()
        reply = kb.reply(
            intent,
            latest_entities(tracker),
            tracker.get_slot("topic"),
            settings.load().contact_placeholders(),
        )
        dispatcher.utter_message(
            text=reply.text, buttons=[{"title": b.title, "payload": b.payload} for b in reply.buttons]
        )
        if kb.entries[reply.entry_id].is_topic:
            return [SlotSet("topic", reply.entry_id)]
        return []
