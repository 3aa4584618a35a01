"""End to end: residents' questions over Rasa's REST channel, answered by the real servers and the trained model."""

import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e


class Resident:
    def __init__(self, rest_url, headers):
        self.url, self.headers = rest_url, headers
        self.sender = f"e2e-{uuid.uuid4().hex[:8]}"

    def ask(self, message):
        response = requests.post(
            self.url, json={"sender": self.sender, "message": message}, headers=self.headers, timeout=30
        )
        response.raise_for_status()
        replies = response.json()
        assert replies, f"no reply to {message!r}"
        assert all(r["recipient_id"] == self.sender for r in replies)
        return "\n".join(r.get("text", "") for r in replies), [b for r in replies for b in r.get("buttons", [])]


@pytest.fixture
def resident(servers):
    return Resident(servers["rest"], servers["headers"])


def test_transport_subsidy_by_place_then_follow_up(resident):
    text, _ = resident.ask("我儿子去内蒙古打工了，能领多少路费补贴")
    assert "800元/人" in text and "300元" not in text
    text, _ = resident.ask("那在省内呢")
    assert "300元/人" in text and "800" not in text


def test_school_then_kindergarten(resident):
    text, _ = resident.ask("娃娃上小学去哪个学校")
    assert "桃园昇小学" in text
    text, _ = resident.ask("那幼儿园呢")
    assert "仰峤幼儿园" in text


def test_employment_award(resident):
    text, _ = resident.ask("我在县城超市干了四个多月，就业奖补能给多少")
    assert "300元/人" in text and "3个月" in text


def test_vague_question_gets_a_choice(resident):
    text, buttons = resident.ask("补助")
    assert "哪一种" in text
    assert {"交通补贴", "就业奖补"} <= {b["title"] for b in buttons}


@pytest.mark.parametrize(
    "question, facts",
    [
        ("搬走了老家的地还算俺家的不", ["迁出地8项", "迁入地15项", "代理代办"]),
        ("醫療救助怎麼申請", ["大病保险", "医疗救助", "分类资助"]),
        ("家里老人没人管，社区能上门照顾不", ["日间照料中心", "上门"]),
        ("13810是个啥", ["13810", "11户33人"]),
        ("广惠园住了多少户人家", ["1773户5029人"]),
        ("孩子不想念书了咋整", ["控辍保学"]),
        ("邻居天天吵架谁来管管", ["调解委员会", "网格员"]),
    ],
)
def test_topics(resident, question, facts):
    text, _ = resident.ask(question)
    for fact in facts:
        assert fact in text, f"{question!r} → {text!r}"


@pytest.mark.parametrize(
    "question", ["明天太原下雨不", "帮我订张去北京的火车票", "讲个笑话听听", "qwpoeiruty", "😀😀😀"]
)
def test_unrelated_questions_get_the_fallback(resident, question):
    text, buttons = resident.ask(question)
    assert "帮不上忙" in text or "没听明白" in text, f"{question!r} → {text!r}"
    assert not any(figure in text for figure in ("800", "300", "1773", "桃园"))
    assert "转人工" in {b["title"] for b in buttons}


def test_asking_for_a_person(resident):
    text, _ = resident.ask("我要找工作人员")
    assert "便民服务窗口" in text and "网格员" in text


def test_no_traceback_in_the_server_logs(servers, resident):
    resident.ask("你好")
    for name, log in servers["logs"].items():
        assert "Traceback" not in log.read_text(), f"{name} server logged a traceback"
