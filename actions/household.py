"""Answers about the resident's own household, only after verification, and every lookup audited."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.verification import lock_message
from bot import db, knowledge, repository, rules
from bot import settings as settings_module
from bot.privacy import mask_id, mask_phone

# words in the question that narrow the answer to one part; no such word: the whole summary
TOPIC_WORDS = {
    "subsidies": ("补贴", "补助", "奖补", "路费", "交通", "钱", "领"),
    "schools": ("学校", "上学", "幼儿园", "小学", "初中", "中学", "念书", "读书", "划片"),
    "medical": ("医保", "看病", "医疗", "参保", "大病", "住院"),
    "monitoring": ("监测", "返贫", "13810"),
    "migration": ("老家", "迁出", "权益", "代办", "专柜"),
}
SECTIONS = ("subsidies", "schools", "medical", "monitoring", "migration")


def topics_of(question: str) -> List[str]:
    found = [topic for topic in SECTIONS if any(word in question for word in TOPIC_WORDS[topic])]
    return found or list(SECTIONS)


def household_question(tracker: Tracker) -> str:
    """The text of the latest household question in this conversation (the form has been asking since)."""
    for event in reversed(tracker.events):
        if (
            event.get("event") == "user"
            and (event.get("parse_data") or {}).get("intent", {}).get("name") == "ask_household"
        ):
            return event.get("text") or ""
    return ""


STATUS_MARK = {
    rules.ELIGIBLE: "可申请",
    rules.RECEIVED: "已领取",
    rules.PENDING: "暂不能领",
    rules.NOT_ELIGIBLE: "不享受",
    rules.UNKNOWN: "需核实",
}
SECTION_TITLES = {"subsidies": "【补贴】", "schools": "【上学】", "medical": "【医保】"}


def _member_line(section: str, member: rules.MemberFacts, decided, contacts) -> str:
    """One member's line in a section, from the declared rules that apply to them."""
    label = member.name + (f"（{member.school_stage}）" if section == "schools" else "")
    if len(decided) == 1:
        rule, decision = decided[0]
        ask = f"，请问{contacts[rule.contact]}" if decision.status == rules.UNKNOWN and rule.contact else ""
        return f"· {label}：{decision.reason}{ask}。"
    return f"· {label}：" + "；".join(f"{r.benefit}{STATUS_MARK[d.status]}——{d.reason}" for r, d in decided) + "。"


def _section(section: str, facts: rules.HouseholdFacts, policy: rules.PolicyFacts, s) -> List[str]:
    contacts = s.contact_placeholders()
    lines = [SECTION_TITLES[section]]
    for member in facts.members:
        decided = list(rules.member_decisions(member, facts, policy, section).values())
        if not decided:
            continue
        if section == "subsidies" and not member.is_labour:
            lines.append(f"· {member.name}：不是劳动力，不享受" + "和".join(r.benefit for r, _ in decided) + "。")
            continue
        lines.append(_member_line(section, member, decided, contacts))
    if section == "subsidies":
        lines.append(f"申请材料请问{s.employment_contact}。")
    elif section == "schools" and len(lines) == 1:
        lines.append("· 家里没有登记在读的孩子。")
    elif section == "medical":
        lines.append(
            "看病有三重保障：" + "、".join(policy.medical_tiers) + f"。资助和报销标准请问{s.medical_contact}。"
        )
    return lines


def render(household: Any, facts: rules.HouseholdFacts, policy: rules.PolicyFacts, topics: List[str], s) -> str:
    """The reply for a verified household: one part per asked topic, each member's lines from the declared rules.
    IDs and phones appear only masked."""
    lines = [
        f"{household.head_name}家（户编号{household.id}，户主身份证{mask_id(household.head_id_number)}"
        + (f"，电话{mask_phone(household.phone)}" if household.phone else "")
        + f"），{household.settlement}，共{len(facts.members)}人。"
    ]
    for section in ("subsidies", "schools", "medical"):
        if section in topics:
            lines += _section(section, facts, policy, s)
    if "monitoring" in topics:
        status = facts.monitoring_status
        explain = {
            "未纳入": "没有纳入“13810”监测帮扶。家里如果遇到困难，请及时告诉网格员或社区。",
            "监测中": "已纳入“13810”监测帮扶，正在跟踪帮扶。有新的困难请随时告诉网格员。",
            "已消除风险": "曾纳入“13810”监测帮扶，现在已消除风险。",
        }.get(status, f"监测状态：{status}。")
        lines.append("【监测帮扶】")
        lines.append(f"· {explain}联系：{s.contact_placeholders()['contact']}。")
    if "migration" in topics:
        lines.append("【老家权益】")
        village = facts.origin_village or "老家"
        lines.append(
            f"· 迁出村：{village}。老家的权益（迁出地8项）可到{s.migration_contact}办理，不方便回去的可以申请代理代办。"
        )
    lines.append("查别的户或不查了，请说“退出”。")
    return "\n".join(lines)


class ActionHouseholdAnswer(Action):
    def name(self) -> Text:
        return "action_household_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        s = settings_module.load()
        household_id = tracker.get_slot("verified_household")
        if not household_id:
            dispatcher.utter_message(text=lock_message(s.verify_lock_minutes))
            return [SlotSet("verification_locked", None), SlotSet("head_name", None), SlotSet("id_suffix", None)]
        topics = topics_of(household_question(tracker))
        policy = rules.PolicyFacts.from_knowledge(knowledge.load().entries)
        text = await asyncio.to_thread(
            _answer, household_id, topics, policy, tracker.get_latest_input_channel() or "", tracker.sender_id, s
        )
        if text is None:
            dispatcher.utter_message(text=f"没有找到您家的记录，可能台账已更新。请到{s.service_desk}核实。")
            return [SlotSet("verified_household", None)]
        dispatcher.utter_message(text=text, buttons=[{"title": "退出", "payload": "/forget_verification"}])
        return []


def _answer(
    household_id: str, topics: List[str], policy: rules.PolicyFacts, channel: str, conversation_id: str, s
) -> str | None:
    with db.session_scope() as session:
        household = repository.household_with_members(session, household_id)
        if household is None:
            return None
        repository.audit(session, channel, conversation_id, household_id, topics)
        return render(household, repository.facts_of(household), policy, topics, s)


class ActionForgetVerification(Action):
    def name(self) -> Text:
        return "action_forget_verification"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        was_verified = bool(tracker.get_slot("verified_household"))
        dispatcher.utter_message(
            text="已退出，刚才的核对信息已清除。" if was_verified else "好的，已取消，没有保留任何核对信息。"
        )
        events: List[Dict[Text, Any]] = [
            SlotSet(name, None) for name in ("verified_household", "head_name", "id_suffix", "verification_locked")
        ]
        if tracker.active_loop.get("name"):
            events = [ActiveLoop(None), SlotSet("requested_slot", None)] + events
        return events
