"""action_answer with rasa_sdk's Tracker and CollectingDispatcher: the right entry, variant and context."""

import shutil

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import ActionAnswer
from bot import knowledge
from bot.settings import ROOT

from ..conftest import user_turn


def tracker(intent, entities=(), topic=None, text="问一下"):
    latest, event = user_turn(text, intent, entities)
    return Tracker(
        sender_id="test",
        slots={"topic": topic},
        latest_message=latest,
        events=[event],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


async def run(intent, entities=(), topic=None):
    dispatcher = CollectingDispatcher()
    events = await ActionAnswer().run(dispatcher, tracker(intent, entities, topic), {})
    [message] = dispatcher.messages
    return message, events


async def test_transport_subsidy_gives_both_standards_and_sets_the_topic():
    message, events = await run("ask_transport_subsidy")
    assert "800元/人" in message["text"] and "300元/人" in message["text"] and "一次性" in message["text"]
    assert "忻州日报2022年7月13日" in message["text"]
    assert events == [SlotSet("topic", "transport_subsidy")]
    assert {"title": "那在省内呢", "payload": "那在省内呢"} in message["buttons"]


async def test_a_place_in_the_question_picks_the_standard():
    message, _ = await run("ask_transport_subsidy", [("work_region", "省外")])
    assert "800元/人" in message["text"] and "300" not in message["text"]


async def test_county_work_points_to_the_employment_award():
    message, _ = await run("ask_transport_subsidy", [("work_region", "县内")])
    assert "没有务工交通补贴" in message["text"] and "3个月" in message["text"] and "300元/人" in message["text"]


@pytest.mark.parametrize(
    "topic, entities, expected, unexpected",
    [
        ("transport_subsidy", [("work_region", "县外省内")], "300元/人", "800"),
        ("transport_subsidy", [("work_region", "省外")], "800元/人", "300"),
        ("school", [("school_level", "幼儿园")], "仰峤幼儿园", "桃园昇小学"),
        ("school", [("school_level", "小学")], "桃园昇小学", "仰峤幼儿园"),
        ("employment_award", [("work_region", "省外")], "800元/人", "县外省内务工"),
        # the topic has no such variant: the entity says which topic is meant
        ("medical", [("school_level", "幼儿园")], "仰峤幼儿园", "医保"),
        (None, [("work_region", "县外省内")], "300元/人", "800"),
    ],
)
async def test_follow_ups_in_context(topic, entities, expected, unexpected):
    message, _ = await run("follow_up", entities, topic)
    assert expected in message["text"]
    assert unexpected not in message["text"]


async def test_follow_up_without_anything_to_follow_asks_back():
    message, events = await run("follow_up", [], None)
    assert "您想接着问哪一方面" in message["text"]
    assert events == []


async def test_junior_school_zoning_is_not_invented():
    message, _ = await run("ask_school", [("school_level", "初中")])
    assert "没有写初中的具体划片" in message["text"] and "县教育部门" in message["text"]


async def test_medical_answer_sends_rates_to_the_contact(monkeypatch):
    monkeypatch.setenv("ANJU_MEDICAL_CONTACT", "县医保中心（电话 0350-0000000）")
    message, _ = await run("ask_medical")
    assert "大病保险" in message["text"] and "医疗救助" in message["text"] and "分类资助" in message["text"]
    assert "报销比例和资助标准报道里没有写" in message["text"]
    assert "县医保中心（电话 0350-0000000）" in message["text"]
    assert "%" not in message["text"]


@pytest.mark.parametrize("intent", ["out_of_scope", "nlu_fallback"])
async def test_unrelated_questions_get_no_policy_answer(intent, monkeypatch):
    monkeypatch.setenv("ANJU_SERVICE_PHONE", "0350-1234567")
    message, events = await run(intent, topic="transport_subsidy")
    assert "0350-1234567" in message["text"]
    assert not any(figure in message["text"] for figure in ("800", "300", "1773"))
    assert events == []  # the context of the last real answer is kept


async def test_asking_for_a_person_names_contact_and_hours(monkeypatch):
    monkeypatch.setenv("ANJU_SERVICE_DESK", "广惠园社区便民服务大厅")
    monkeypatch.setenv("ANJU_OFFICE_HOURS", "工作日 8:00-12:00")
    message, _ = await run("request_human")
    assert "广惠园社区便民服务大厅" in message["text"] and "工作日 8:00-12:00" in message["text"]


async def test_greeting_offers_the_topics_as_buttons():
    message, _ = await run("greet")
    payloads = {b["payload"] for b in message["buttons"]}
    assert "/ask_school" in payloads and "/request_human" in payloads


async def test_staff_edits_take_effect_and_a_broken_edit_keeps_the_last_good_copy(tmp_path, monkeypatch):
    for name in ("answers.yml", "sources.yml"):
        shutil.copy(ROOT / "knowledge" / name, tmp_path / name)
    monkeypatch.setenv("ANJU_KNOWLEDGE_DIR", str(tmp_path))
    answers = tmp_path / "answers.yml"
    text = answers.read_text(encoding="utf-8")
    answers.write_text(text.replace("看病有“三重制度保障”", "看病有三重保障（已更新）"), encoding="utf-8")
    message, _ = await run("ask_medical")
    assert "已更新" in message["text"]

    answers.write_text(text + "\n  broken: [", encoding="utf-8")
    message, _ = await run("ask_medical")
    assert "已更新" in message["text"]
    with pytest.raises(knowledge.KnowledgeError):
        knowledge.Knowledge.from_dir(tmp_path)
