"""action_respond: the one action that answers every resident message. Thin: it reads the tracker, lets the core
(bot.dialogue) decide, and turns the result into messages and slot events. Whatever fails, the resident gets a reply."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Text, Tuple

import requests
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import dialogue, knowledge, privacy, rules, sealing
from bot import settings as settings_module
from bot.dialogue_services import DatabaseServices
from bot.faq import FaqIndex
from bot.replicas import Replicas
from bot.text_normalization import clean_input

logger = logging.getLogger(__name__)
STATE_SLOTS = [f.name for f in dataclasses.fields(dialogue.State)]
PARSE_TIMEOUT_SECONDS = 5
PARSE_CONNECT_SECONDS = 1
# the answer is given up after this long (Rasa's own wait for an action is 5 minutes)
ANSWER_DEADLINE_SECONDS = 8
PRIVATE_MARK = privacy.PRIVATE_REPLY_MARK


def said(tracker: Tracker) -> str:
    """What the resident wrote: the user event keeps the original text; the parse data holds the NLU's normalized
    copy (王三元 stays 王三元 here, though the NLU saw 王3元). Cleaned as every door cleans it (a message sent to
    Rasa some other way may still carry control or bidi characters), so nothing the core stores carries them."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return clean_input(event.get("text") or "")
    return clean_input(tracker.latest_message.get("text") or "")


def state_of(tracker: Tracker, s: settings_module.Settings) -> dialogue.State:
    """The conversation's state from its slots; the verified household only when its seal holds for this
    conversation and has not run out (bot.sealing): a slot written by anyone else opens to nothing."""
    values = {name: tracker.get_slot(name) for name in STATE_SLOTS}
    values["misses"] = int(values.get("misses") or 0)
    values["asides"] = int(values.get("asides") or 0)
    values["verified_household"] = sealing.unseal(values.get("verified_household"), tracker.sender_id, s)
    if values["verified_household"] is None:
        values["household_topics"] = None
    return dialogue.State(**values)


def slot_events(tracker: Tracker, before: dialogue.State, after: dialogue.State, s) -> List[Dict[Text, Any]]:
    """SlotSet for what changed; a newly verified household is stored sealed to this conversation, and a household
    whose seal ran out (or never held) is cleared from the slot."""
    events = []
    for name in STATE_SLOTS:
        value = getattr(after, name)
        if name == "verified_household":
            stored = tracker.get_slot(name)
            if value and value != before.verified_household:
                events.append(SlotSet(name, sealing.seal(value, tracker.sender_id, s)))
            elif not value and stored is not None:
                events.append(SlotSet(name, None))
        elif value != getattr(before, name):
            events.append(SlotSet(name, value))
    return events


def transcript(tracker: Tracker) -> List[str]:
    lines = []
    for event in tracker.events[-40:]:
        if event.get("event") == "user" and event.get("text"):
            lines.append(f"居民：{clean_input(event['text'])}")
        elif event.get("event") == "bot" and event.get("text"):
            lines.append(f"助手：{event['text']}")
    return lines[-20:]


def model_id(tracker: Tracker) -> str | None:
    """The id of the model that understood the resident's message (Rasa writes it into each event's metadata)."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return (event.get("metadata") or {}).get("model_id")
    return None


class ParseCache:
    """What a model made of a clause, by (model id, clause), the least recently used forgotten past `size`. The same
    model reads the same text the same way, and the same pieces come back all day from many residents ("在省内",
    "孩子上学", "要带什么材料"): each costs a full NLU pass on a Rasa server, as much as the resident's message itself.
    A new model has a new id, so nothing a model said outlives it. Shared by the action server's worker threads."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, text: str) -> dialogue.Understood | None:
        with self._lock:
            found = self._items.get((model, text))
            if found is None:
                return None
            self._items.move_to_end((model, text))
        return dataclasses.replace(found, entities=dict(found.entities))  # each turn its own copy

    def put(self, model: str, text: str, understood: dialogue.Understood) -> None:
        with self._lock:
            self._items[model, text] = dataclasses.replace(understood, entities=dict(understood.entities))
            self._items.move_to_end((model, text))
            while len(self._items) > self.size:
                self._items.popitem(last=False)


PARSES = ParseCache()


class RasaParser:
    """Understands a piece of a message (a clause, a correction) with the same model, through a Rasa server's gateway
    channel (policies/gateway_channel.py): any of them (ANJU_RASA_URLS) in turn, the next when one refuses the
    connection (a parse changes nothing, so asking another is always safe). Connections are kept open between turns.
    Given the id of the model that read the message, a clause that model has read before is not sent again
    (ParseCache)."""

    def __init__(self, base_urls: Sequence[str] | str, token: str, model: str | None = None):
        urls = (base_urls,) if isinstance(base_urls, str) else tuple(base_urls)
        # one set of marks per list of servers, kept across turns: a server that is down is passed over a while
        self.replicas = _parse_replicas.get(urls) or _parse_replicas.setdefault(urls, Replicas(urls))
        self.headers = {"Authorization": f"Bearer {token}"}
        self.model = model

    def __call__(self, text: str) -> dialogue.Understood | None:
        known = PARSES.get(self.model, text) if self.model else None
        if known is not None:
            return known
        understood = self._parse(text)
        if understood is not None and self.model:
            PARSES.put(self.model, text, understood)
        return understood

    def _parse(self, text: str) -> dialogue.Understood | None:
        for base in self.replicas.any():
            try:
                response = _http().post(
                    f"{base}/webhooks/gateway/parse",
                    json={"text": text},
                    headers=self.headers,
                    timeout=(PARSE_CONNECT_SECONDS, PARSE_TIMEOUT_SECONDS),
                )
                response.raise_for_status()
                self.replicas.mark_up(base)
                return dialogue.Understood.from_parse_data(response.json())
            except requests.ConnectionError as e:
                self.replicas.mark_down(base)
                logger.warning("Rasa server %s is not reachable for a parse (%s); trying the next", base, e)
            except (requests.RequestException, ValueError) as e:
                logger.warning("could not parse a clause through Rasa: %s", e)
                return None
        return None


_parse_replicas: Dict[Tuple[str, ...], Replicas] = {}
_sessions = threading.local()


def _http() -> requests.Session:
    """This worker thread's HTTP session (requests' sessions are not shared between threads): keep-alive to Rasa."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    return session


_faq_cache: Dict[int, FaqIndex] = {}


def faq_for(kb: knowledge.Knowledge) -> FaqIndex:
    """The keyword index over the same knowledge (rebuilt when staff edit it), for questions the model was unsure of."""
    index = _faq_cache.get(id(kb))
    if index is None:
        _faq_cache.clear()
        index = _faq_cache[id(kb)] = FaqIndex(kb, settings_module.ROOT / "data" / "nlu")
    return index


class ActionRespond(Action):
    def name(self) -> Text:
        return "action_respond"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        s = settings_module.load()
        try:
            before = state_of(tracker, s)
            turn = await asyncio.wait_for(asyncio.to_thread(self._respond, tracker, before, s), ANSWER_DEADLINE_SECONDS)
        except asyncio.TimeoutError:  # a database that hangs: Rasa would wait 5 minutes for us, the resident not
            logger.error("action_respond took longer than %s s", ANSWER_DEADLINE_SECONDS)
            contact = s.contact_placeholders()["contact"]
            dispatcher.utter_message(text=f"抱歉，系统这会儿有点慢，请稍等一会儿再问一次。着急的话请联系{contact}。")
            return []
        except Exception:  # the resident is never left without a reply
            logger.exception("action_respond failed")
            contact = s.contact_placeholders()["contact"]
            dispatcher.utter_message(text=f"抱歉，我这边出了点问题，请稍后再问一次。着急的话请联系{contact}。")
            return []
        for reply in turn.replies:
            if reply.response:
                dispatcher.utter_message(response=reply.response)
            elif reply.text:
                buttons = [{"title": title, "payload": payload} for title, payload in reply.buttons]
                dispatcher.utter_message(text=reply.text, buttons=buttons)
        if turn.state.verified_household:
            dispatcher.utter_message(json_message=PRIVATE_MARK)  # the doors keep nothing of this turn
        elif before.verified_household:
            dispatcher.utter_message(json_message=privacy.FORGOTTEN_REPLY_MARK)  # the pages clear what they showed
        return slot_events(tracker, before, turn.state, s)

    @staticmethod
    def _respond(tracker: Tracker, state: dialogue.State, s) -> dialogue.Turn:
        kb = knowledge.load()
        services = DatabaseServices(tracker.sender_id, tracker.get_latest_input_channel() or "", s, transcript(tracker))
        conversation = dialogue.Conversation(
            kb,
            s,
            services,
            RasaParser(s.rasa_urls, sealing.rasa_token(s), model_id(tracker)),
            rules.PolicyFacts.from_knowledge(kb.entries),
            faq_for(kb),
        )
        understood = dialogue.Understood.from_parse_data(tracker.latest_message)
        return conversation.respond(said(tracker), understood, state)
