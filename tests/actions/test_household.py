"""Verification and household answers with rasa_sdk's Tracker and CollectingDispatcher, against both databases."""

import datetime as dt

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.household import ActionForgetVerification, ActionHouseholdAnswer, topics_of
from actions.verification import ValidateVerifyForm, parse_identity
from bot import db, repository
from bot.models import AuditEntry, utcnow

from ..conftest import user_turn

DOMAIN = {
    "forms": {"verify_form": {"required_slots": ["head_name", "id_suffix"]}},
    "slots": {
        name: {"type": "text", "mappings": [{"type": "custom"}]}
        for name in ("head_name", "id_suffix", "verified_household", "verification_locked")
    },
}
ZHANG_SUFFIX = "125447"  # 张三, GHY00001, in demo/households.csv


def tracker(text, slots=None, intent="inform", sender="conv-1", events=None):
    base = {"requested_slot": "head_name", "head_name": None, "id_suffix": None, "verified_household": None}
    latest, event = user_turn(text, intent)
    return Tracker(
        sender_id=sender,
        slots={**base, **(slots or {})},
        latest_message=latest,
        events=(events or []) + [event],
        paused=False,
        followup_action=None,
        active_loop={"name": "verify_form"},
        latest_action_name="action_listen",
    )


async def validate(text, slots=None, sender="conv-1"):
    dispatcher = CollectingDispatcher()
    events = await ValidateVerifyForm().run(dispatcher, tracker(text, slots, sender=sender), DOMAIN)
    values = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    return values, " ".join(m.get("text") or m.get("response") or "" for m in dispatcher.messages)


@pytest.mark.parametrize(
    "text, name, code",
    [
        ("张三", "张三", None),
        ("户主叫张三", "张三", None),
        ("我是户主张三", "张三", None),
        ("125447", None, "125447"),
        ("04291x", None, "04291X"),
        ("张三 125447", "张三", "125447"),
        ("户主李四，后六位304224", "李四", "304224"),
        ("交通补贴多少钱啊我想问问", None, None),
        ("13810", None, None),
    ],
)
def test_parse_identity(text, name, code):
    assert parse_identity(text) == (name, code)


async def test_name_then_code(demo_database):
    values, _ = await validate("张三")
    assert values["head_name"] == "张三" and "verified_household" not in values
    values, said = await validate(ZHANG_SUFFIX, {"head_name": "张三", "requested_slot": "id_suffix"})
    assert values["verified_household"] == "GHY00001"
    assert values["id_suffix"] is None and values["requested_slot"] is None
    assert "核对通过" in said


async def test_both_in_one_message_with_lowercase_x(demo_database):
    with db.session_scope() as s:
        wang = repository.household_with_members(s, "GHY00003")
        suffix = wang.head_id_number[-6:].lower()
    values, _ = await validate(f"王五 {suffix}")
    assert values["verified_household"] == "GHY00003"


async def test_a_wrong_answer_reveals_nothing(demo_database):
    wrong_code, wrong_said = await validate("000000", {"head_name": "张三", "requested_slot": "id_suffix"})
    no_name, no_name_said = await validate("000000", {"head_name": "无此人", "requested_slot": "id_suffix"}, "conv-2")
    assert wrong_said == no_name_said  # the same words whether or not the name exists
    assert "不对" in wrong_said and "张三" not in wrong_said
    for values in (wrong_code, no_name):
        # both are asked again (by Rasa's form, name first): nothing tells which one was wrong
        assert values["head_name"] is None and values["id_suffix"] is None and "verified_household" not in values


async def test_five_wrong_answers_lock_conversation_and_household(demo_database):
    for _ in range(4):
        values, said = await validate("000000", {"head_name": "张三", "requested_slot": "id_suffix"})
        assert "verification_locked" not in values
    values, _ = await validate("000000", {"head_name": "张三", "requested_slot": "id_suffix"})
    assert values["verification_locked"] is True and values["requested_slot"] is None
    # even the right answer is refused now, in this conversation ...
    values, _ = await validate(ZHANG_SUFFIX, {"head_name": "张三", "requested_slot": "id_suffix"})
    assert "verified_household" not in values
    # ... and for this household from another conversation
    values, _ = await validate(ZHANG_SUFFIX, {"head_name": "张三", "requested_slot": "id_suffix"}, "conv-3")
    assert "verified_household" not in values and values["verification_locked"] is True
    # another household from another conversation is not affected
    with db.session_scope() as s:
        li_suffix = repository.household_with_members(s, "GHY00002").head_id_number[-6:]
    values, _ = await validate(f"李四 {li_suffix}", sender="conv-4")
    assert values["verified_household"] == "GHY00002"


def test_locks_expire_and_success_resets_the_count(demo_database):
    now = utcnow()
    with db.session_scope() as s:
        for _ in range(5):
            result = repository.verify_head(s, "c", "张三", "000000", 5, 15, now)
        assert result.locked_until == now + dt.timedelta(minutes=15)
        later = now + dt.timedelta(minutes=15, seconds=1)
        assert repository.verify_head(s, "c", "张三", ZHANG_SUFFIX, 5, 15, later).household_id == "GHY00001"
        for _ in range(4):
            result = repository.verify_head(s, "c", "张三", "000000", 5, 15, later)
        assert result.locked_until is None and result.failures_left == 1


async def test_nothing_is_asked_once_verified(demo_database):
    form = ValidateVerifyForm()
    slots = await form.required_slots(
        ["head_name", "id_suffix"], CollectingDispatcher(), tracker("", {"verified_household": "GHY00001"}), DOMAIN
    )
    assert slots == []


def question_event(text):
    return user_turn(text, "ask_household")[1]


async def answer(question, verified="GHY00001", sender="conv-1"):
    dispatcher = CollectingDispatcher()
    t = tracker("125447", {"verified_household": verified}, sender=sender, events=[question_event(question)])
    events = await ActionHouseholdAnswer().run(dispatcher, t, DOMAIN)
    return dispatcher.messages[0]["text"], events


async def test_household_summary(demo_database):
    text, _ = await answer("我家能享受什么")
    with db.session_scope() as s:
        household = repository.household_with_members(s, "GHY00001")
        full_ids = [household.head_id_number, household.phone] + [m.id_number for m in household.members]
    assert not any(number in text for number in full_ids)
    assert f"户主身份证{household.head_id_number[:4]}**********{household.head_id_number[-4:]}" in text
    # 张三 works outside the province and has not claimed: 800; 李秀英 has 3 months in the county: the 300 award
    assert "张三：务工交通补贴可申请——省外务工，可申请一次性交通补贴800元" in text
    assert "李秀英：务工交通补贴不享受" in text and "就业奖补可申请——县内就业累计3个月" in text
    assert "张小明（小学）：小学的划片学校是桃园昇小学" in text
    assert "张小红（学前）：学前的划片学校是仰峤幼儿园" in text
    assert "张三：属于脱贫人口，参保时享受分类资助" in text
    assert "没有纳入“13810”监测帮扶" in text and "迁出村" in text


async def test_answers_follow_the_household(demo_database):
    text, _ = await answer("我家的补贴", "GHY00002")
    assert "李四：务工交通补贴已领取" in text
    assert "王桂兰：务工交通补贴不享受" in text and "还差1个月满3个月" in text
    assert "【上学】" not in text
    text, _ = await answer("我家孩子上哪个学校", "GHY00003")
    assert "宋家沟移民新村小学的划片没有登记" in text and "县教育部门" in text
    text, _ = await answer("查一下我家是不是监测户", "GHY00002")
    assert "已纳入“13810”监测帮扶" in text and "【补贴】" not in text


async def test_every_lookup_is_audited(demo_database):
    await answer("我家的医保", sender="conv-audit")
    with db.session_scope() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.conversation_id == "conv-audit")).all()
        assert (entry.channel, entry.household_id, entry.shown, entry.actor) == (
            "rest",
            "GHY00001",
            "medical",
            "resident",
        )


async def test_no_data_without_verification(demo_database):
    text, events = await answer("我家能领什么", verified=None)
    assert "锁定" in text and "张三" not in text
    assert SlotSet("verification_locked", None) in events


async def test_forget(demo_database):
    dispatcher = CollectingDispatcher()
    events = await ActionForgetVerification().run(dispatcher, tracker("退出", {"verified_household": "GHY00001"}), {})
    assert SlotSet("verified_household", None) in events and ActiveLoop(None) in events
    assert "已清除" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize(
    "question, topics",
    [
        ("我家能领什么补贴", ["subsidies"]),
        ("我家孩子上哪个学校", ["schools"]),
        ("查下我家", ["subsidies", "schools", "medical", "monitoring", "migration"]),
        ("我家医保和监测情况", ["medical", "monitoring"]),
    ],
)
def test_topics_of(question, topics):
    assert topics_of(question) == topics
