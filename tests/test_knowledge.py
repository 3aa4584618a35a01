"""The knowledge files: complete for every intent, every figure traceable to its source, every button answerable; and
what residents hear, in the knowledge and in the household answers, keeps the source's conditions, dates its amounts
and promises nothing the source does not."""

import ast
import re
import string

import pytest
import yaml

from bot.faq import nlu_examples
from bot.knowledge import Knowledge, KnowledgeError
from bot.settings import ROOT, Settings
from bot.text_normalization import TextNormalizer

KNOWLEDGE = Knowledge.from_dir(ROOT / "knowledge")
# the raw entries, for the fields bot.knowledge does not (or not yet) read, such as `short`
RAW = yaml.safe_load((ROOT / "knowledge/answers.yml").read_text(encoding="utf-8"))["answers"]
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
TRAINING = nlu_examples(sorted((ROOT / "data/nlu").glob("*.yml")))
HELDOUT_FILES = sorted((ROOT / "tests/nlu").glob("*.yml"))
HELDOUT = nlu_examples(HELDOUT_FILES)
COMMUNITY_LIFE = ROOT / "data/nlu/community_life.yml"
COMMUNITY_LIFE_HELDOUT = ROOT / "tests/nlu/heldout_community_life.yml"

# promises the source does not make: removed from every answer and household line, never to come back
PROMISES = (
    "不会丢",  # 老家的权益不会丢: the source says the rights were 厘清 and a counter follows them up
    "不再重复发放",  # the source says 一次性, not whether it can be claimed again
    "不会重复发放",
    "只能领一次",
    "上门照护",  # the source says 上门跟进服务, not home care
    "保证",
    "一定能",
    "肯定能",
    "都能领",
    "包您",
    "专门办理",
    "他们会告诉您",
)
# saying someone can apply or get something; "不能领" / "能不能领" say no such thing
CAN_CLAIM = re.compile(r"可以申请|可申请|可以领|(?<![不没])能领")
AMOUNT_IN_YUAN = re.compile(r"(?:\d+(?:\.\d+)?|\{\})万?元")
SHORT_MAX = 90  # characters, {placeholders} left out
SHORT_MAX_EXPANDED = 110  # with the default contact points filled in


def _paragraphs(source_id):
    text = KNOWLEDGE.source_text(source_id)
    return [line for line in text.splitlines() if line.strip()]


def _templates(entry):
    yield entry.answer
    short = RAW[entry.id].get("short")
    if short:
        yield str(short)
    for values in entry.variants.values():
        yield from values.values()


def _texts():
    """(where, text) for every text of the knowledge a resident can hear."""
    for entry in KNOWLEDGE.entries.values():
        for n, template in enumerate(_templates(entry)):
            yield f"answers.yml {entry.id} #{n}", template


def _household_templates():
    """(where, text) for every string literal of the household answer and the rules; an f-string's values as {}."""
    for path in (ROOT / "bot/household_answer.py", ROOT / "bot/rules.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inside = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if id(node) in inside:
                continue  # a piece of an f-string: checked as part of the whole
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            yield f"{path.name}:{node.lineno}", text


def _without_placeholders(text):
    return re.sub(r"\{[a-z_]+\}", "", text).replace("\n", "")


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
    # the year of the source itself, in the dated note on amounts ("2022年报道的标准")
    figures.discard(str(KNOWLEDGE.sources[entry.source["id"]]["date"])[:4])
    missing = [f for f in sorted(figures) if not re.search(rf"(?<![\d.]){re.escape(f)}(?![\d.])", cited)]
    assert not missing, f"{entry.id}: figures not in paragraphs {entry.source['paras']}: {missing}"


def test_every_cited_source_is_stored():
    """A source cited for a figure or a rule has its text in the repository, so the figure can be checked."""
    for entry_id, raw in RAW.items():
        for key in ("source", "facts_source"):
            cited = raw.get(key)
            if cited:
                source = KNOWLEDGE.sources[cited["id"]]
                assert source.get("file") and (ROOT / source["file"]).is_file(), (entry_id, key, cited["id"])


def test_the_promises_the_source_does_not_make_are_gone():
    found = [
        (where, phrase) for where, text in (*_texts(), *_household_templates()) for phrase in PROMISES if phrase in text
    ]
    assert not found, found


def test_whoever_can_claim_is_told_the_conditions():
    """The source gives its benefits 对符合条件的搬迁群众: no text says one can apply or get something without it."""
    unconditional = [
        (where, text)
        for where, text in (*_texts(), *_household_templates())
        if CAN_CLAIM.search(text) and "符合条件" not in text
    ]
    assert not unconditional, unconditional
    # and who decides: a knowledge text names the office whose 审核 counts (a household line ends its part with it)
    undecided = [(where, text) for where, text in _texts() if CAN_CLAIM.search(text) and "为准" not in text]
    assert not undecided, undecided


def test_every_amount_is_dated():
    """Amounts are the standards the source reported in 2022; the current ones come from the window."""
    undated = [
        (where, text)
        for where, text in (*_texts(), *_household_templates())
        if AMOUNT_IN_YUAN.search(text) and "2022" not in text
    ]
    assert not undated, undated


def test_every_topic_has_a_short_first_reply():
    placeholders = Settings().contact_placeholders()
    for entry in KNOWLEDGE.entries.values():
        if not entry.is_topic:
            continue
        short = str(RAW[entry.id].get("short") or "").strip()
        assert short, f"{entry.id}: no short"
        variants = [v for values in entry.variants.values() for v in values.values()]
        for text in (short, *variants):  # a variant answers one specific question: as short as a short
            assert len(_without_placeholders(text)) <= SHORT_MAX, (entry.id, text)
            assert len(text.format_map(placeholders).replace("\n", "")) <= SHORT_MAX_EXPANDED, (entry.id, text)
            assert text.count("\n") <= 2, (entry.id, text)  # at most 3 lines


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


def test_every_intent_of_community_life_has_a_topic_entry():
    """The article's missing content (五好社区, 帮扶车间扶持, …): one intent each, in the domain, answered from the
    source, with enough examples of its own and held-out questions apart from them."""
    intents = nlu_examples([COMMUNITY_LIFE])
    heldout = nlu_examples([COMMUNITY_LIFE_HELDOUT])
    assert intents and set(intents) == set(heldout)
    for intent, lines in intents.items():
        entry = KNOWLEDGE.for_intent(intent)
        assert entry is not None and entry.is_topic, intent
        assert intent in DOMAIN["intents"], intent
        assert len(set(lines)) >= 12, intent
        assert 3 <= len(set(heldout[intent])), intent
        assert not set(heldout[intent]) & set(lines), intent


def test_the_community_life_heldout_sentences_are_not_training_sentences():
    normalize = TextNormalizer()
    trained = {normalize(text) for lines in TRAINING.values() for text in lines}
    leaked = [
        text
        for lines in nlu_examples([COMMUNITY_LIFE_HELDOUT]).values()
        for text in lines
        if normalize(text) in trained
    ]
    assert not leaked, f"held-out examples also in data/nlu: {leaked}"


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
