"""action_answer: says the knowledge entry for the resident's question, and keeps the topic for follow-ups.
Questions it cannot answer are logged for staff; asking for a person (or two misses in a row) opens a ticket."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import db, knowledge, settings, tickets

logger = logging.getLogger(__name__)
MISSED = ("nlu_fallback", "out_of_scope")

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
        text = reply.text
        if intent in MISSED:
            await _record(_log_unanswered, tracker, intent, _topic_guess(tracker, kb))
        if intent == "request_human" or (intent in MISSED and _missed_before(tracker)):
            await _record(_open_ticket, tracker)
            text = (text if intent == "request_human" else "看来我没帮上忙，已经帮您转给工作人员。") + (
                "\n工作人员会在这里直接回复您，请稍等。"
            )
        buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
        # a button that repeats the question just answered is noise
        latest = tracker.latest_message.get("text")
        dispatcher.utter_message(text=text, buttons=[b for b in buttons if b["payload"] != latest])
        if kb.entries[reply.entry_id].is_topic:
            return [SlotSet("topic", reply.entry_id)]
        return []


def _topic_guess(tracker: Tracker, kb: knowledge.Knowledge) -> str:
    """The title of the policy topic the model thought closest, for the staff's weekly chart."""
    for ranked in tracker.latest_message.get("intent_ranking") or []:
        entry = kb.for_intent(ranked.get("name"))
        if entry is not None and entry.is_topic:
            return entry.title
    return ""


def _missed_before(tracker: Tracker) -> bool:
    """Whether the resident's previous message also fell to the fallback or out of scope."""
    users = [e for e in tracker.events if e.get("event") == "user"]
    if len(users) < 2:
        return False
    return ((users[-2].get("parse_data") or {}).get("intent") or {}).get("name") in MISSED


def _transcript(tracker: Tracker) -> List[str]:
    lines = []
    for event in tracker.events[-40:]:
        if event.get("event") == "user" and event.get("text"):
            lines.append(f"居民：{event['text']}")
        elif event.get("event") == "bot" and event.get("text"):
            lines.append(f"助手：{event['text']}")
    return lines[-20:]


async def _record(fn, tracker: Tracker, *args) -> None:
    """Writes to the database without holding up the answer's event loop; a failure is logged, never shown."""
    channel = tracker.get_latest_input_channel() or "unknown"

    def work() -> None:
        with db.session_scope() as session:
            fn(session, tracker, channel, *args)

    try:
        await asyncio.to_thread(work)
    except Exception:  # the resident still gets the answer
        logger.exception("could not record %s", fn.__name__)


def _log_unanswered(session, tracker: Tracker, channel: str, intent: str, topic: str) -> None:
    text = tracker.latest_message.get("text") or ""
    tickets.log_unanswered(session, channel, tracker.sender_id, text, intent, topic)


def _open_ticket(session, tracker: Tracker, channel: str) -> int | None:
    ticket = tickets.open_ticket(
        session, tracker.sender_id, channel, _transcript(tracker), tracker.get_slot("verified_household")
    )
    return ticket.id
