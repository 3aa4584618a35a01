"""What a verified resident is told about their own household: one part per topic asked, each member's lines from the
declared eligibility rules (bot.rules.RULES). IDs and phones appear only masked. No I/O, no framework imports.

The words keep to what the source and the ledger say: what the ledger records ("台账登记…"), that claiming needs
符合条件 and who decides, that amounts are the standards the source reported in 2022, and who to ask for the rest;
the parts that state policy end with the source line, as the policy answers do."""

from __future__ import annotations

import re
from typing import Any, List, Sequence

from bot import rules
from bot.privacy import mask_id, mask_phone

# words in the question that narrow the answer to one part; no such word: the whole summary
TOPIC_WORDS = {
    "subsidies": ("补贴", "补助", "奖补", "路费", "交通", "钱", "领"),
    "schools": ("学校", "上学", "幼儿园", "小学", "初中", "中学", "高中", "念书", "读书", "划片"),
    "medical": ("医保", "看病", "医疗", "参保", "大病", "住院"),
    "monitoring": ("监测", "返贫", "13810"),
    "migration": ("老家", "迁出", "权益", "代办", "专柜"),
}
SECTIONS = ("subsidies", "schools", "medical", "monitoring", "migration")
SECTION_TITLES = {"subsidies": "【补贴】", "schools": "【上学】", "medical": "【医保】"}
# who to ask about a member's decision when its rule names no contact of its own
SECTION_CONTACT = {"subsidies": "employment_contact", "schools": "education_contact", "medical": "medical_contact"}

# how residents name a member, and the ledger's 与户主关系 values it means
RELATION_WORDS = (
    (r"(?:娃|孩子?|娃娃)他(?:妈|爸|娘|爹)", ("配偶",)),
    (r"爱人|老伴|媳妇|老婆|婆姨|丈夫|老公|男人|老汉|对象|配偶", ("配偶",)),
    (r"孙子|孙女|孙儿|外孙", ("孙子", "孙女", "外孙", "外孙女")),
    (r"儿子|小子|后生", ("子",)),
    (r"闺女|女儿|姑娘|丫头", ("女",)),
    (r"孩子|娃|小孩|娃娃|娃儿|孩儿", ("子", "女", "孙子", "孙女")),
    (r"老人|我妈|我爸|俺妈|俺爸|母亲|父亲|老母亲|老父亲|爹|娘", ("父亲", "母亲", "父", "母")),
    (r"户主|我自己|我本人|俺自己", ("户主",)),
)


def topics_of(question: str) -> List[str]:
    found = [topic for topic in SECTIONS if any(word in question for word in TOPIC_WORDS[topic])]
    return found or list(SECTIONS)


def members_named(text: str, facts: rules.HouseholdFacts) -> List[str]:
    """The names of the members the text talks about: by name, or by a relation word ("我爱人", "孩子")."""
    named = [m.name for m in facts.members if m.name and m.name in text]
    if named:
        return named
    for pattern, relations in RELATION_WORDS:
        if re.search(pattern, text):
            found = [m.name for m in facts.members if m.relation in relations]
            if not found and relations == ("子", "女", "孙子", "孙女"):
                found = [m.name for m in facts.members if rules.is_pupil(m)]
            if found:
                return found
    return []


def _ask(section: str, rule: rules.Rule, decision: rules.Decision, contacts) -> str:
    """Who to ask, after a decision the ledger alone cannot settle: one to check, or one recorded as claimed (the
    source does not say whether a one-off benefit can be claimed again)."""
    contact = contacts[rule.contact or SECTION_CONTACT[section]]
    if decision.status == rules.UNKNOWN:
        return f"，请问{contact}"
    if decision.status == rules.RECEIVED:
        return f"，以后还能不能再领，请问{contact}"
    return ""


def _member_line(section: str, member: rules.MemberFacts, decided, contacts) -> str:
    """One member's line in a section, from the declared rules that apply to them."""
    label = member.name + (f"（{member.school_stage}）" if section == "schools" else "")
    if len(decided) == 1:
        rule, decision = decided[0]
        return f"· {label}：{decision.reason}{_ask(section, rule, decision, contacts)}。"
    parts = (f"{r.benefit}——{d.reason}{_ask(section, r, d, contacts)}" for r, d in decided)
    return f"· {label}：" + "；".join(parts) + "。"


def _section(
    section: str, facts: rules.HouseholdFacts, policy: rules.PolicyFacts, s, only: Sequence[str], source_line: str = ""
) -> List[str]:
    contacts = s.contact_placeholders()
    lines = [SECTION_TITLES[section]]
    stated = False  # whether any line says what the source says (a rule's decision), so the source line belongs
    for member in facts.members:
        if only and member.name not in only:
            continue
        decided = list(rules.member_decisions(member, facts, policy, section).values())
        if not decided:
            if only and section == "schools":
                lines.append(f"· {member.name}：没有登记在读。")
            continue
        stated = True
        if section == "subsidies" and not member.is_labour:
            lines.append(
                f"· {member.name}：台账登记不是劳动力，不享受" + "和".join(r.benefit for r, _ in decided) + "。"
            )
            continue
        lines.append(_member_line(section, member, decided, contacts))
    if section == "subsidies":
        lines.append(f"是否符合条件（包括就业月数怎么算）、要带什么材料，以{s.employment_contact}的审核和答复为准。")
    elif section == "schools" and len(lines) == 1:
        lines.append("· 家里没有登记在读的孩子。")
    elif section == "medical":
        lines.append("看病有三重制度保障：" + "、".join(policy.medical_tiers) + "。报销比例和资助标准报道里没有写。")
    if source_line and (stated or section != "schools"):
        lines.append(source_line)
    return lines


def render(
    household: Any,
    facts: rules.HouseholdFacts,
    policy: rules.PolicyFacts,
    topics: Sequence[str],
    s,
    only: Sequence[str] = (),
    source_line: str = "",
) -> str:
    """The reply for a verified household, for the asked topics and (when `only` names some) those members only.
    `source_line` ("（依据：…）", the line the policy answers end with) ends every part that states policy."""
    lines = [
        f"{household.head_name}家（户编号{household.id}，户主身份证{mask_id(household.head_id_number)}"
        + (f"，电话{mask_phone(household.phone)}" if household.phone else "")
        + f"），{household.settlement}，共{len(facts.members)}人（据县里的台账）。"
        + (f"下面是{'、'.join(only)}的情况：" if only else "")
    ]
    for section in ("subsidies", "schools", "medical"):
        if section in topics:
            lines += _section(section, facts, policy, s, only, source_line)
    if "monitoring" in topics:
        status = facts.monitoring_status
        explain = {
            "未纳入": "台账登记没有纳入“13810”监测帮扶。家里如果遇到困难，请及时告诉网格员或社区。",
            "监测中": "台账登记已纳入“13810”监测帮扶，在监测中。有新的困难请随时告诉网格员。",
            "已消除风险": "台账登记曾纳入“13810”监测帮扶，现在已消除风险。",
        }.get(status, f"台账登记的监测状态：{status}。")
        lines.append("【监测帮扶】")
        lines.append(f"· {explain}联系：{s.contact_placeholders()['contact']}。")
    if "migration" in topics:
        lines.append("【老家权益】")
        village = facts.origin_village or "老家"
        lines.append(
            f"· 迁出村：{village}。县里厘清了迁出地8项、迁入地15项权益，设了迁出地跟进服务专柜，推行代理代办服务；"
            f"您家老家的权益和要办的事，请到{s.migration_contact}问。"
        )
        if source_line:
            lines.append(source_line)
    lines.append("问家里其他人，可以直接说“那我爱人呢”“孩子上学呢”；查别的户或不查了，请说“退出”。")
    return "\n".join(lines)
