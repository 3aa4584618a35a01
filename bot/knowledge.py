"""The knowledge the assistant answers from (knowledge/answers.yml), loaded and rendered; no Rasa imports.

The file is re-read when it changes on disk, so staff edits take effect without restarting anything.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping

import yaml

from bot import settings as settings_module

logger = logging.getLogger(__name__)

DETAILS = "详细说说"  # the button (and the words) that ask for an entry's whole answer after its short form
# which entry answers a follow-up that names only an entity ("那幼儿园呢") when the topic in context has no such variant
DEFAULT_ENTRY_FOR_ENTITY = {"work_region": "transport_subsidy", "school_level": "school"}


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class Reply:
    entry_id: str
    text: str
    buttons: List[Button] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    id: str
    intent: str
    title: str
    answer: str
    variants: Mapping[str, Mapping[str, str]]
    short: str  # the first reply: a few plain lines; `answer` is the whole of it ("详细说说")
    facts: Mapping[str, Any]
    buttons: List[Any]
    source: Mapping[str, Any] | None

    @property
    def is_topic(self) -> bool:
        """Policy topics carry a source; greetings, menus and fallbacks do not and never become the context."""
        return self.source is not None


class KnowledgeError(ValueError):
    """The knowledge files are malformed; the message says where."""


class Knowledge:
    def __init__(self, entries: Dict[str, Entry], sources: Dict[str, Mapping[str, Any]]):
        self.entries = entries
        self.sources = sources
        self._by_intent = {e.intent: e for e in entries.values()}
        self._by_title = {e.title: e for e in entries.values()}

    @classmethod
    def from_dir(cls, directory: Path) -> Knowledge:
        answers = _read_yaml(directory / "answers.yml").get("answers") or {}
        sources = _read_yaml(directory / "sources.yml").get("sources") or {}
        entries: Dict[str, Entry] = {}
        seen_intents: Dict[str, str] = {}
        for entry_id, raw in answers.items():
            for required in ("intent", "title", "answer"):
                if not raw.get(required):
                    raise KnowledgeError(f"answers.yml: entry '{entry_id}' has no '{required}'")
            if raw["intent"] in seen_intents:
                first = seen_intents[raw["intent"]]
                raise KnowledgeError(f"answers.yml: entries '{first}' and '{entry_id}' share intent {raw['intent']}")
            seen_intents[raw["intent"]] = entry_id
            for key in ("source", "facts_source"):
                cited = raw.get(key)
                if cited is not None and cited.get("id") not in sources:
                    raise KnowledgeError(f"answers.yml: entry '{entry_id}' cites unknown source '{cited.get('id')}'")
            source = raw.get("source")
            entries[entry_id] = Entry(
                id=entry_id,
                intent=raw["intent"],
                title=raw["title"],
                answer=raw["answer"].strip(),
                variants=raw.get("variants") or {},
                short=str(raw.get("short") or "").strip(),
                facts=raw.get("facts") or {},
                buttons=list(raw.get("buttons") or []),
                source=source,
            )
        return cls(entries, sources)

    def for_intent(self, intent: str | None) -> Entry | None:
        return self._by_intent.get(intent or "")

    def reply(
        self,
        intent: str | None,
        entities: Mapping[str, str],
        topic: str | None,
        placeholders: Mapping[str, str],
        detailed: bool = True,
    ) -> Reply:
        """What to say for an intent, given the entities of the message and the topic of the last answer. Not
        `detailed`: the entry's `short` form first, with a 详细说说 button for the whole answer."""
        entry = self.for_intent(intent)
        if intent == "follow_up":
            entry = self._follow_up_entry(entities, topic) or entry
        if entry is None:
            entry = self.for_intent("nlu_fallback")
        assert entry is not None, "answers.yml must have an entry for nlu_fallback"
        text = entry.answer
        more = False
        if not detailed and entry.short:
            text, more = entry.short, True
        for kind, value in entities.items():
            variant = entry.variants.get(kind, {}).get(value)
            if variant:
                text, more = variant.strip(), False
                break
        text = text.format_map(_Placeholders(placeholders))
        if entry.source:
            source = self.sources[entry.source["id"]]
            text += f"\n（依据：{source['short']}）"
        buttons = [self._button(b) for b in entry.buttons]
        if more:
            buttons.insert(0, Button(DETAILS, DETAILS))
        return Reply(entry.id, text, buttons)

    def _follow_up_entry(self, entities: Mapping[str, str], topic: str | None) -> Entry | None:
        current = self.entries.get(topic or "")
        for kind, value in entities.items():
            if current and value in current.variants.get(kind, {}):
                return current
        for kind in entities:
            if kind in DEFAULT_ENTRY_FOR_ENTITY:
                return self.entries[DEFAULT_ENTRY_FOR_ENTITY[kind]]
        return None

    def _button(self, spec: Any) -> Button:
        if isinstance(spec, Mapping):
            return Button(str(spec["title"]), str(spec["payload"]))
        target = self._by_title.get(str(spec))
        return Button(str(spec), f"/{target.intent}" if target else str(spec))

    def source_text(self, source_id: str) -> str:
        return (settings_module.ROOT / self.sources[source_id]["file"]).read_text(encoding="utf-8")


class _Placeholders(dict):
    """format_map mapping that leaves an unknown {name} visible instead of raising, so a typo shows up in review."""

    def __init__(self, values: Mapping[str, str]):
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise KnowledgeError(f"{path.name}: not valid YAML: {e}") from e


_lock = threading.Lock()
_cache: Dict[Path, tuple] = {}


def load(directory: Path | None = None) -> Knowledge:
    """The knowledge in `directory` (default: the settings' knowledge_dir), re-read when a file there changes."""
    directory = Path(directory or settings_module.load().knowledge_dir)
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(directory.glob("*.yml")))
    with _lock:
        cached = _cache.get(directory)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            knowledge = Knowledge.from_dir(directory)
        except KnowledgeError:
            if not cached:
                raise
            # a half-saved or mistyped edit must not take the assistant down: keep answering from the last good copy
            logger.exception("knowledge in %s is invalid; still answering from the previous version", directory)
            return cached[1]
        _cache[directory] = (stamp, knowledge)
        return knowledge
