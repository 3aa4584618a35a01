"""The knowledge files: complete for every intent, every figure traceable to its source, every button answerable."""

import re
import string

import pytest
import yaml

from bot.faq import nlu_examples
from bot.knowledge import Knowledge, KnowledgeError
from bot.settings import ROOT, Settings

KNOWLEDGE = Knowledge.from_dir(ROOT / "knowledge")
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
TRAINING = nlu_examples(sorted((ROOT / "data/nlu").glob("*.yml")))
HELDOUT = nlu_examples([ROOT / "tests/nlu/heldout.yml"])


def _paragraphs(source_id):
    text = KNOWLEDGE.source_text(source_id)
    return [line for line in text.splitlines() if line.strip()]


def _templates(entry):
    yield entry.answer
    for values in entry.variants.values():
        yield from values.values()


def _rules():
    for path in sorted((ROOT / "data/rules").glob("*.yml")):
        yield from yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]


def test_every_intent_goes_to_action_respond_and_every_entry_is_reachable():
    answered_by_rules = set()
    for rule in _rules():
        steps = rule["steps"]
        for step, following in zip(steps, steps[1:], strict=False):
            if "intent" in step and following.get("action") == "action_respond":
                answered_by_rules.add(step["intent"])
    assert answered_by_rules == set(DOMAIN["intents"]) | {"nlu_fallback"}
    assert {e.intent for e in KNOWLEDGE.entries.values()} <= answered_by_rules


def test_every_intent_has_a_rule():
    ruled = {step["intent"] for rule in _rules() for step in rule["steps"] if "intent" in step}
    assert set(DOMAIN["intents"]) <= ruled


@pytest.mark.parametrize("entry", [e for e in KNOWLEDGE.entries.values() if e.source], ids=lambda e: e.id)
def test_every_figure_is_in_the_cited_paragraphs(entry):
    paragraphs = _paragraphs(entry.source["id"])
    cited = "\n".join(paragraphs[n - 1] for n in entry.source["paras"])
    figures = set()
    for template in _templates(entry):
        figures |= set(re.findall(r"\d+(?:\.\d+)?", template))
    for value in _flatten(entry.facts):
        figures.add(str(value))
    missing = [f for f in sorted(figures) if not re.search(rf"(?<![\d.]){re.escape(f)}(?![\d.])", cited)]
    assert not missing, f"{entry.id}: figures not in paragraphs {entry.source['paras']}: {missing}"


def _flatten(facts):
    for value in facts.values() if isinstance(facts, dict) else facts:
        if isinstance(value, dict):
            yield from _flatten(value)
        elif isinstance(value, (int, float)):
            yield value


def test_entries_without_a_source_state_no_figures():
    for entry in KNOWLEDGE.entries.values():
        if not entry.source:
            assert not re.search(r"\d", "".join(_templates(entry))), entry.id


def test_placeholders_are_known_settings():
    known = set(Settings().contact_placeholders())
    for entry in KNOWLEDGE.entries.values():
        for template in _templates(entry):
            used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            assert used <= known, f"{entry.id}: unknown placeholders {used - known}"


def test_every_button_leads_somewhere():
    """A button either names an intent, or sends a sentence the model was trained on."""
    every_example = {text for lines in TRAINING.values() for text in lines}
    for entry in KNOWLEDGE.entries.values():
        for button in KNOWLEDGE.reply(entry.intent, {}, None, Settings().contact_placeholders()).buttons:
            if button.payload.startswith("/"):
                assert button.payload[1:] in DOMAIN["intents"], (entry.id, button)
            else:
                assert button.payload in every_example, f"{entry.id}: button {button.title!r} is not in data/nlu"


def test_training_and_heldout_examples():
    base = lambda name: name.split("/")[0]  # noqa: E731 - chitchat/ask_name counts for chitchat
    for intent in DOMAIN["intents"]:
        assert len({t for i, lines in TRAINING.items() if base(i) == intent for t in lines}) >= 30, intent
        assert len({t for i, lines in HELDOUT.items() if base(i) == intent for t in lines}) >= 10, intent
    trained = {text for lines in TRAINING.values() for text in lines}
    leaked = [text for lines in HELDOUT.values() for text in lines if text in trained]
    assert not leaked, f"held-out examples also in data/nlu: {leaked}"


def test_unknown_source_is_refused(tmp_path):
    (tmp_path / "sources.yml").write_text("sources: {}\n", encoding="utf-8")
    (tmp_path / "answers.yml").write_text(
        "answers:\n  x: {intent: a, title: t, answer: '1', source: {id: nowhere, paras: [1]}}\n", encoding="utf-8"
    )
    with pytest.raises(KnowledgeError, match="unknown source"):
        Knowledge.from_dir(tmp_path)
