"""End to end on SQLite and PostgreSQL: verify over the REST channel, get this household's answers, and find no
full ID number or verification code in replies, logs or the tracker store."""

import csv
import json
import uuid

import pytest
import requests

from bot.settings import ROOT

pytestmark = pytest.mark.e2e

HOUSEHOLDS = {row["户编号"]: row for row in csv.DictReader((ROOT / "demo/households.csv").open(encoding="utf-8"))}
MEMBERS = list(csv.DictReader((ROOT / "demo/members.csv").open(encoding="utf-8")))
SECRETS = [row["户主身份证号"] for row in HOUSEHOLDS.values()] + [row["身份证号"] for row in MEMBERS]
SECRETS += [row["联系电话"] for row in HOUSEHOLDS.values()]


class Resident:
    def __init__(self, stack):
        self.stack = stack
        self.sender = f"e2e-{uuid.uuid4().hex[:8]}"
        self.said = []

    def ask(self, message):
        response = requests.post(
            self.stack.rest, json={"sender": self.sender, "message": message}, headers=self.stack.headers, timeout=30
        )
        response.raise_for_status()
        text = "\n".join(r.get("text", "") for r in response.json())
        self.said.append(text)
        return text


def suffix(household_id):
    return HOUSEHOLDS[household_id]["户主身份证号"][-6:]


def assert_nothing_leaked(stack, resident, codes):
    stored = stack.stored_events(resident.sender)  # straight from the tracker store's database
    assert len([e for e in stored if e["event"] == "user"]) == len(resident.said)
    tracker = json.dumps(stored, ensure_ascii=False)
    logs = "".join(path.read_text() for path in stack.logs.values())
    for where, text in (("replies", "\n".join(resident.said)), ("tracker store", tracker), ("logs", logs)):
        for secret in SECRETS:
            assert secret not in text, f"a full ID or phone number is in the {where}"
        for code in codes:
            assert code not in text and code.lower() not in text, f"the verification code is in the {where}"


def test_verify_then_answer(stack):
    resident = Resident(stack)
    assert "户主的姓名" in resident.ask("我家能领什么补贴")
    assert "最后6位" in resident.ask("张三")
    text = resident.ask(suffix("GHY00001"))
    assert "核对通过" in text and "张三家（户编号GHY00001" in text
    assert "省外务工，可申请一次性交通补贴800元" in text and "还差" not in text
    # the verification holds for the rest of the conversation: no second check
    text = resident.ask("查一下我家孩子上哪个学校")
    assert "桃园昇小学" in text and "仰峤幼儿园" in text and "户主的姓名" not in text
    assert_nothing_leaked(stack, resident, [suffix("GHY00001")])


def test_both_at_once_and_another_household(stack):
    resident = Resident(stack)
    resident.ask("帮我查查我家")
    text = resident.ask(f"李四 {suffix('GHY00002')}")
    assert "李四家" in text and "已纳入“13810”监测帮扶" in text and "还差1个月" in text
    assert "张三" not in text
    assert_nothing_leaked(stack, resident, [suffix("GHY00002")])


def test_wrong_digits_reveal_nothing_and_five_lock(stack):
    resident = Resident(stack)
    resident.ask("查下我家的情况")
    resident.ask("赵六")
    wrong = resident.ask("000000")
    # 赵六 is kept for this test: its lock must not get in the way of the others
    assert "不对" in wrong and "赵六家" not in wrong
    other = Resident(stack)
    other.ask("查下我家的情况")
    other.ask("钱多多")  # a name no household head has
    assert other.ask("000000") == wrong  # the same words whether the name exists or not
    for _ in range(4):
        resident.ask("赵六")
        text = resident.ask("000000")
    assert "锁定" in text and "15分钟" in text
    resident.ask("查下我家的情况")
    text = resident.ask(f"赵六 {suffix('GHY00004')}")
    assert "赵六家" not in text and "锁定" in text
    assert_nothing_leaked(stack, resident, [suffix("GHY00004")])


def test_forget(stack):
    resident = Resident(stack)
    resident.ask("查一下我家")
    assert "王五家" in resident.ask(f"王五 {suffix('GHY00003')}")
    assert "已退出" in resident.ask("换个人查")
    assert "户主的姓名" in resident.ask("我家能享受什么")


def test_nothing_on_the_machine_reaches_a_conversation_without_the_token(stack):
    """Rasa runs without its HTTP API and its only channel wants the token: a local caller can neither read nor set
    a conversation's slots, nor post as a resident."""
    resident = Resident(stack)
    resident.ask("我家能领什么补贴")
    resident.ask("张三")
    assert "核对通过" in resident.ask(suffix("GHY00001"))
    for method, path in (
        ("get", f"/conversations/{resident.sender}/tracker"),
        ("post", f"/conversations/{resident.sender}/tracker/events"),
        ("post", "/model/parse"),
        ("post", "/webhooks/rest/webhook"),
    ):
        response = getattr(requests, method)(stack.base + path, json={"event": "slot"}, timeout=10)
        assert response.status_code in (404, 405), path
    for headers in ({}, {"Authorization": "Bearer guessed"}, {"Authorization": stack.headers["Authorization"][:-1]}):
        response = requests.post(
            stack.rest, json={"sender": resident.sender, "message": "我家能领什么补贴"}, headers=headers, timeout=10
        )
        assert response.status_code == 401 and "张三家" not in response.text
    # with the token, the conversation itself goes on as before
    assert "张三家" in resident.ask("我家能领什么补贴")
