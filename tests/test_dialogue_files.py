"""The residents' conversations of tests/dialogues/*.yml, checked without any server: the schema the runner
(tests/e2e/test_dialogues.py) relies on, unique ids, how many conversations each pattern has, that they are written in
residents' own words (not copied from the brief, dialect or voice style in a good share), that every item of the
identity check is covered, and that none of them can lock a household of the shared demo ledger."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DIALOGUE_DIR = ROOT / "tests" / "dialogues"

# file stem → the fewest conversations it must hold
PATTERNS = {
    "silence_handoff": 15,
    "identity_check": 25,
    "normalizer_names": 15,
    "follow_up_context": 15,
    "corrections": 15,
    "multi_question": 15,
    "household_only_with_my_home": 15,
    "short_after_situation": 15,
    "out_of_scope_and_junk": 15,
    "what_residents_hear": 36,
    "new_topic_wins": 4,
    "moving_on": 4,
    "general": 1,
}
MIN_TOTAL = 196
CHANNELS = ("web", "kiosk")
DIALOGUE_KEYS = {"id", "channel", "note", "turns"}
TURN_KEYS = {"say", "expect_any", "expect_all", "expect_none", "buttons_any"}
LIST_KEYS = TURN_KEYS - {"say"}
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")
MAX_MESSAGE_CHARS = 2000  # the gateway refuses longer messages

# the brief's own examples: the suite is written in residents' words, not these
NOT_VERBATIM = [
    "敬老院怎么申请",
    "在省外干活有路费补贴吗",
    "要准备什么证件",
    "那我爱人呢",
    "孩子念书呢",
    "不对，我说的是省内",
    "我在县城上班 我儿子在西安打工 我们能领啥",
    "大病保险怎么报 初中去哪念",
    "给多少钱",
    "在县城干了半年了",
    "不查了",
    "算了",
    "五六七八九零",
    "56 78 90",
]

DIALECT_WORDS = ("俺", "咱", "娃", "咋", "啥", "营生", "寻个活", "额们", "额想", "额还", "老汉", "婆姨", "闺女", "仨",
                 "俩", "瞅", "嘞", "哇", "咋整")  # fmt: skip
RUN_ON = re.compile(r"^[^\s，。！？,.!?、；;：:]{22,}$")  # voice input: a long stretch without any pause
CANCEL_REPLIES = {"不查", "好的", "已取消", "取消"}
WRONG_CODE_REPLIES = {"不对", "有误", "不符", "不一致", "错"}
CORRECTION_WORDS = re.compile(r"不对|说错|错了|弄错|搞错")
HANDOFF_WORDS = re.compile(r"转人工|人工|工作人员")
LOCKED_HOUSEHOLD = "赵六"  # tests/e2e/test_household.py locks it on the shared database: never used here

# ---------------------------------------------------------------- the demo ledger

HOUSEHOLDS = list(csv.DictReader((ROOT / "demo/households.csv").open(encoding="utf-8")))
MEMBERS = list(csv.DictReader((ROOT / "demo/members.csv").open(encoding="utf-8")))
HEAD_CODE = {row["户主姓名"]: row["户主身份证号"][-6:].upper() for row in HOUSEHOLDS}
HEAD_ID = {row["户主姓名"]: row["户主身份证号"].upper() for row in HOUSEHOLDS}
ALL_IDS = {row["户主身份证号"].upper() for row in HOUSEHOLDS} | {row["身份证号"].upper() for row in MEMBERS}
MEMBER_NAMES = {row["姓名"] for row in MEMBERS} - set(HEAD_CODE)

# ---------------------------------------------------------------- reading what residents type

DIGITS = str.maketrans("零〇一二三四五六七八九０１２３４５６７８９Ｘｘ", "001234567890123456789Xx")
BETWEEN_DIGITS = re.compile(r"(?<=\d)[\s\-－—_]+(?=[\dXx])")
DIGIT_RUN = re.compile(r"\d+[Xx]?")
CHINESE_NUMERAL_RUN = re.compile(r"[零〇一二三四五六七八九]{5,}")
FULL_WIDTH_DIGIT = re.compile(r"[０-９]")


def digits_of(text: str) -> str:
    """Chinese numerals and full-width digits as ASCII digits, with spaces and dashes between digits taken out."""
    return BETWEEN_DIGITS.sub("", text.translate(DIGITS))


def codes_in(text: str) -> List[str]:
    """The verification codes a message gives: the last 6 characters of every run of 6 or more digits."""
    return [run[-6:].upper() for run in DIGIT_RUN.findall(digits_of(text)) if len(run) >= 6]


def heads_in(text: str) -> List[str]:
    return [name for name in HEAD_CODE if name in text]


def ids_in(text: str) -> List[str]:
    plain = text.translate(DIGITS).upper()
    return [number for number in ALL_IDS if number in plain]


def expects(turn: Dict[str, Any]) -> List[str]:
    return [s for key in ("expect_any", "expect_all") for s in turn.get(key) or []]


def is_success(turn: Dict[str, Any]) -> bool:
    """The turn expects a verified household's answer."""
    return "户编号" in (turn.get("expect_all") or [])


# ---------------------------------------------------------------- loading


def _load() -> Tuple[Dict[str, Any], List[str]]:
    files, errors = {}, []
    for path in sorted(DIALOGUE_DIR.glob("*.yml")):
        try:
            files[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            errors.append(f"{path.name}: not valid YAML: {e}")
    return files, errors


FILES, LOAD_ERRORS = _load()


def _dialogues() -> List[Dict[str, Any]]:
    found = []
    for stem, data in FILES.items():
        if isinstance(data, dict) and isinstance(data.get("dialogues"), list):
            found += [{**d, "pattern": stem} for d in data["dialogues"] if isinstance(d, dict)]
    return found


DIALOGUES = _dialogues()


def of_pattern(pattern: str) -> List[Dict[str, Any]]:
    return [d for d in DIALOGUES if d["pattern"] == pattern]


def turns_of(dialogue: Dict[str, Any]) -> List[Dict[str, Any]]:
    turns = dialogue.get("turns")
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


# ---------------------------------------------------------------- the files and their schema


def test_every_file_parses():
    assert not LOAD_ERRORS, "\n".join(LOAD_ERRORS)


def test_one_file_per_pattern():
    assert sorted(FILES) == sorted(PATTERNS), f"expected exactly {sorted(PATTERNS)} in {DIALOGUE_DIR}"


def test_each_file_holds_a_list_of_dialogues():
    for stem, data in FILES.items():
        assert isinstance(data, dict) and set(data) == {"dialogues"}, f"{stem}.yml: the only top-level key is dialogues"
        assert isinstance(data["dialogues"], list) and data["dialogues"], f"{stem}.yml: dialogues is a non-empty list"
        assert all(isinstance(d, dict) for d in data["dialogues"]), f"{stem}.yml: every dialogue is a mapping"


def _string_list_errors(where: str, key: str, value: Any) -> List[str]:
    if not isinstance(value, list) or not value:
        return [f"{where}: {key} must be a non-empty list"]
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    # an unquoted 800 is an int in YAML: the runner compares substrings, so every item must be a string
    return [f"{where}: {key} items must be non-empty strings (quote numbers), got {bad!r}"] if bad else []


def schema_errors(dialogue: Dict[str, Any]) -> List[str]:
    where = f"{dialogue['pattern']}.yml {dialogue.get('id', '<no id>')}"
    errors = []
    keys = set(dialogue) - {"pattern"}
    if keys != DIALOGUE_KEYS:
        errors.append(f"{where}: keys must be {sorted(DIALOGUE_KEYS)}, got {sorted(keys)}")
    if not isinstance(dialogue.get("id"), str) or not ID_PATTERN.match(dialogue["id"]):
        errors.append(f"{where}: id must match {ID_PATTERN.pattern}")
    if dialogue.get("channel") not in CHANNELS:
        errors.append(f"{where}: channel must be one of {CHANNELS}")
    note = dialogue.get("note")
    if not isinstance(note, str) or not note.strip() or "\n" in note.strip():
        errors.append(f"{where}: note must be one non-empty line")
    turns = dialogue.get("turns")
    if not isinstance(turns, list) or not turns:
        return errors + [f"{where}: turns must be a non-empty list"]
    for n, turn in enumerate(turns, 1):
        at = f"{where} turn {n}"
        if not isinstance(turn, dict):
            errors.append(f"{at}: must be a mapping")
            continue
        if set(turn) - TURN_KEYS:
            errors.append(f"{at}: unknown keys {sorted(set(turn) - TURN_KEYS)} (allowed: {sorted(TURN_KEYS)})")
        say = turn.get("say")
        if not isinstance(say, str) or not say.strip():
            errors.append(f'{at}: say must be a non-empty string (quote digits: say: "125447")')
        elif len(say) > MAX_MESSAGE_CHARS:
            errors.append(f"{at}: say is longer than the gateway's {MAX_MESSAGE_CHARS} characters")
        for key in sorted(LIST_KEYS & set(turn)):
            errors += _string_list_errors(at, key, turn[key])
        clash = set(turn.get("expect_none") or []) & set(expects(turn))
        if clash:
            errors.append(f"{at}: {sorted(clash)} are both expected and forbidden")
    return errors


def test_schema():
    errors = [e for d in DIALOGUES for e in schema_errors(d)]
    assert not errors, "\n".join(errors)


def test_ids_are_unique_across_files():
    seen: Dict[str, str] = {}
    duplicates = []
    for d in DIALOGUES:
        if d.get("id") in seen:
            duplicates.append(f"{d['id']} in {seen[d['id']]} and {d['pattern']}")
        seen.setdefault(d.get("id"), d["pattern"])
    assert not duplicates, "duplicate ids: " + "; ".join(duplicates)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_enough_conversations_per_pattern(pattern):
    assert len(of_pattern(pattern)) >= PATTERNS[pattern], f"{pattern}.yml needs at least {PATTERNS[pattern]}"


def test_enough_conversations_in_all():
    assert len(DIALOGUES) >= MIN_TOTAL


def test_both_doors_are_used():
    for channel in CHANNELS:
        assert sum(d.get("channel") == channel for d in DIALOGUES) >= 20, f"too few conversations on {channel}"


# ---------------------------------------------------------------- residents' own words


def _plain(say: str) -> str:
    return say.strip().rstrip("。！？!?")


def test_no_say_is_copied_from_the_brief():
    banned = {_plain(s) for s in NOT_VERBATIM}
    copied = [f"{d['id']}: {t['say']}" for d in DIALOGUES for t in turns_of(d) if _plain(str(t.get("say"))) in banned]
    assert not copied, "write these in residents' own words:\n" + "\n".join(copied)


def test_most_conversations_have_three_turns_or_more():
    long_enough = sum(len(turns_of(d)) >= 3 for d in DIALOGUES)
    assert long_enough > len(DIALOGUES) / 2, f"only {long_enough} of {len(DIALOGUES)} have 3+ turns"


def is_dialect_or_voice(dialogue: Dict[str, Any]) -> bool:
    says = [str(t.get("say")) for t in turns_of(dialogue)]
    return any(word in s for s in says for word in DIALECT_WORDS) or any(RUN_ON.match(s) for s in says)


def test_a_good_share_in_dialect_or_voice_style():
    share = sum(map(is_dialect_or_voice, DIALOGUES)) / max(1, len(DIALOGUES))
    assert share >= 0.30, f"only {share:.0%} of the conversations use dialect or voice-input style"


def test_no_first_turn_asks_for_a_person():
    """test_no_turn_is_ever_empty replays every first turn with a fresh sender: none may leave an open ticket."""
    asking = [d["id"] for d in DIALOGUES if turns_of(d) and HANDOFF_WORDS.search(str(turns_of(d)[0].get("say")))]
    assert not asking, f"these first turns would open tickets: {asking}"


# what the assistant can say besides knowledge/answers.yml and the ledger: the mechanics' words (the brief), the
# default contact points (bot/settings.py) and the fixed chitchat answers (domain.yml)
MECHANICS_WORDS = {
    "户主", "后6位", "户编号", "【补贴】", "【上学】", "【医保】", "工作人员", "转人工", "我家", "已结束", "关闭",
    "结束", "工单", "人工", "回复", "稍等", "不查", "好的", "已取消", "取消", "退出", "清除", "不对", "有误", "不符",
    "不一致", "错", "请问", "咨询", "窗口", "还差", "1个月", "医疗保障", "不是真人", "智能助手", "机器", "方言",
    "话筒", "听懂", "说话", "依据", "在哪里干活", "久等", "请直接说",
}  # fmt: skip


def domain_responses() -> str:
    """The texts of domain.yml's fixed responses (the chitchat answers about the assistant itself)."""
    responses = (yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8")) or {}).get("responses") or {}
    return "\n".join(
        str(variant.get("text") or "") for variants in responses.values() for variant in variants or [] if variant
    )


def test_expectations_are_what_the_assistant_can_say():
    """A typo in an expectation (桃源 for 桃园) would fail a correct answer: every expected word comes from
    knowledge/answers.yml, the demo ledger, domain.yml's fixed responses or the mechanics' own words."""
    knowledge = (ROOT / "knowledge/answers.yml").read_text(encoding="utf-8") + "\n" + domain_responses()
    ledger = (ROOT / "demo/households.csv").read_text(encoding="utf-8") + (ROOT / "demo/members.csv").read_text(
        encoding="utf-8"
    )
    unknown = sorted(
        {
            s
            for d in DIALOGUES
            for t in turns_of(d)
            for key in ("expect_any", "expect_all", "buttons_any")
            for s in t.get(key) or []
            if s not in knowledge
            and s not in ledger
            and s not in MECHANICS_WORDS
            and not (s.endswith("家") and s[:-1] in HEAD_CODE)
        }
    )
    assert not unknown, f"expected words found nowhere the assistant's answers come from: {unknown}"


# ---------------------------------------------------------------- the shared demo ledger


def test_no_conversation_can_lock_a_household():
    """At most one wrong code per conversation, always followed by a real one (a success resets the count)."""
    problems = []
    for d in DIALOGUES:
        codes = [(n, code) for n, t in enumerate(turns_of(d)) for code in codes_in(str(t.get("say")))]
        wrong = [(n, code) for n, code in codes if code not in HEAD_CODE.values()]
        if len(wrong) > 1:
            problems.append(f"{d['id']}: {len(wrong)} wrong codes {[c for _, c in wrong]}")
        elif wrong and not any(n > wrong[0][0] and code in HEAD_CODE.values() for n, code in codes):
            problems.append(f"{d['id']}: the wrong code {wrong[0][1]} is not followed by a real one")
        if any(code == HEAD_CODE[LOCKED_HOUSEHOLD] for _, code in codes) or any(
            LOCKED_HOUSEHOLD in str(t.get("say")) for t in turns_of(d)
        ):
            problems.append(f"{d['id']}: uses {LOCKED_HOUSEHOLD}, whom tests/e2e/test_household.py locks")
        if any("锁定" in s for t in turns_of(d) for s in expects(t)):
            problems.append(f"{d['id']}: expects a lock; lock conversations lock the shared households")
    assert not problems, "\n".join(problems)


def test_a_typed_id_number_is_never_echoed():
    missing = [
        f"{d['id']}: {number}"
        for d in DIALOGUES
        for t in turns_of(d)
        for number in ids_in(str(t.get("say")))
        if number not in (t.get("expect_none") or [])
    ]
    assert not missing, "add the full ID number to expect_none of the turn that types it:\n" + "\n".join(missing)


def test_successful_checks_use_a_real_head_and_its_code():
    problems = []
    for d in DIALOGUES:
        said = ""
        for n, t in enumerate(turns_of(d), 1):
            said += " " + str(t.get("say"))
            if not is_success(t):
                continue
            homes = [s[:-1] for s in t.get("expect_all") or [] if s.endswith("家") and s[:-1] in HEAD_CODE]
            if len(homes) != 1:
                problems.append(f"{d['id']} turn {n}: a success expects exactly one real head's 'XX家'")
            elif HEAD_CODE[homes[0]] not in codes_in(said):
                problems.append(f"{d['id']} turn {n}: {homes[0]}'s real code is never given")
    assert not problems, "\n".join(problems)


def test_member_follow_ups_name_ledger_members():
    """Pattern 4: after a household answer, asking about a member is answered with that member's ledger name."""
    named = set()
    for d in DIALOGUES:
        verified = False
        for t in turns_of(d):
            if verified:
                named |= MEMBER_NAMES & set(t.get("expect_all") or [])
            verified = verified or is_success(t)
    assert len(named) >= 8, f"only {sorted(named)} are asked about after a household answer"


# ---------------------------------------------------------------- every item of the identity check


def _pairs(d):
    turns = turns_of(d)
    return list(zip(turns, turns[1:], strict=False))


def _cancel_after(prompt: str) -> Callable[[Dict[str, Any]], bool]:
    def check(d):
        turns = turns_of(d)
        for n in range(1, len(turns) - 1):
            before, cancel, after = turns[n - 1], turns[n], turns[n + 1]
            if (
                prompt in (before.get("expect_all") or [])
                and (prompt == "后6位" or "后6位" not in (before.get("expect_all") or []))
                and CANCEL_REPLIES & set(cancel.get("expect_any") or [])
                and {"户主", "后6位"} & set(after.get("expect_none") or [])
            ):
                return True
        return False

    return check


def _wrong_then(kind: str) -> Callable[[Dict[str, Any]], bool]:
    def check(d):
        for wrong, retry in _pairs(d):
            if not WRONG_CODE_REPLIES & set(wrong.get("expect_any") or []) or not is_success(retry):
                continue
            has_name = bool(heads_in(str(retry["say"])))
            if (kind == "code only") != has_name:
                return True
        return False

    return check


def _together(name_first: bool) -> Callable[[Dict[str, Any]], bool]:
    def check(d):
        for t in turns_of(d):
            say = digits_of(str(t.get("say")))
            for name in heads_in(say):
                code_at = say.find(HEAD_CODE[name][:4])
                if code_at >= 0 and is_success(t) and (say.find(name) < code_at) == name_first:
                    return True
        return False

    return check


def _code_typed(form: re.Pattern) -> Callable[[Dict[str, Any]], bool]:
    return lambda d: any(is_success(t) and form.search(str(t["say"])) for t in turns_of(d))


def _policy_question_mid_check(d) -> bool:
    asked = False
    for t in turns_of(d):
        if "户主" in (t.get("expect_all") or []):
            asked = True
        elif asked and "800" in (t.get("expect_all") or []):
            return any(is_success(later) for later in turns_of(d)[turns_of(d).index(t) :])
    return False


def _corrected_name(d) -> bool:
    return any(CORRECTION_WORDS.search(str(t.get("say"))) and heads_in(str(t.get("say"))) for t in turns_of(d)) and any(
        is_success(t) for t in turns_of(d)
    )


IDENTITY_ITEMS: Dict[str, Callable[[Dict[str, Any]], bool]] = {
    "asks 户主 then 后6位": lambda d: any(
        "户主" in (a.get("expect_all") or []) and "后6位" in (b.get("expect_all") or []) for a, b in _pairs(d)
    ),
    "cancel while asked for the name, next question answered": _cancel_after("户主"),
    "cancel while asked for the code, next question answered": _cancel_after("后6位"),
    "code as Chinese numerals": _code_typed(CHINESE_NUMERAL_RUN),
    "code in full-width digits": _code_typed(FULL_WIDTH_DIGIT),
    "code with spaces": _code_typed(re.compile(r"\d{2,4} +\d{2,4}")),
    "code with dashes": _code_typed(re.compile(r"\d{2,4}-\d{2,4}")),
    "the whole 18-character ID number": lambda d: any(is_success(t) and ids_in(str(t["say"])) for t in turns_of(d)),
    "name and code in one message, name first": _together(name_first=True),
    "name and code in one message, code first": _together(name_first=False),
    "wrong code, then the code only": _wrong_then("code only"),
    "wrong code, then name and code again": _wrong_then("both"),
    "a corrected head's name": _corrected_name,
    "a policy question in the middle, then the check resumes": _policy_question_mid_check,
    "医保 answer": lambda d: any(is_success(t) and "【医保】" in t["expect_all"] for t in turns_of(d)),
    "上学 answer": lambda d: any(is_success(t) and "【上学】" in t["expect_all"] for t in turns_of(d)),
    "补贴 answer": lambda d: any(is_success(t) and "【补贴】" in t["expect_all"] for t in turns_of(d)),
    "code ending in X": lambda d: any(is_success(t) and re.search(r"[XxＸｘ]\s*$", str(t["say"])) for t in turns_of(d)),
}


@pytest.mark.parametrize("item", sorted(IDENTITY_ITEMS))
def test_identity_check_covers(item):
    covering = [d["id"] for d in of_pattern("identity_check") if IDENTITY_ITEMS[item](d)]
    assert covering, f"no identity_check conversation covers: {item}"
