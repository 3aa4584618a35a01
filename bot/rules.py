"""Eligibility rules: plain data in, decisions out. No I/O and no framework imports.

Each rule is declared once in `RULES` (what it reads, how it decides and words the decision, which knowledge entry
gives its figures and source); the resident's household answer, the staff household page and the tests iterate over
`RULES`, so a new rule is one function and one declaration here, plus its table test. The figures come from the same
knowledge entries the general answers use (`PolicyFacts.from_knowledge`), so household and policy answers agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Tuple

REGIONS = ("县内", "县外省内", "省外")
UNEMPLOYED = "未就业"

# decision statuses
ELIGIBLE = "eligible"  # can claim now
RECEIVED = "received"  # the ledger records it as claimed (whether it can be claimed again: the source does not say)
PENDING = "pending"  # not yet: a condition will be met later (e.g. months still missing)
NOT_ELIGIBLE = "not_eligible"
UNKNOWN = "unknown"  # the data does not say; a person has to check


@dataclass(frozen=True)
class MemberFacts:
    name: str
    relation: str
    is_labour: bool
    work_region: str  # 未就业 / 县内 / 县外省内 / 省外
    months_employed: int
    got_transport_subsidy: bool
    got_employment_award: bool
    insurance_category: str  # 特困人员 / 低保对象 / 脱贫人口 / 监测对象 / 普通居民
    insured: bool
    school_stage: str  # 无 / 学前 / 小学 / 初中 / 高中 / 中职 / 高职 / 大学


@dataclass(frozen=True)
class HouseholdFacts:
    settlement: str
    origin_village: str
    household_type: str  # 脱贫户 / 一般搬迁户
    monitoring_status: str  # 未纳入 / 监测中 / 已消除风险
    members: Tuple[MemberFacts, ...] = ()


@dataclass(frozen=True)
class PolicyFacts:
    transport_amounts: Mapping[str, int]
    award_region: str
    award_min_months: int
    award_amount: int
    # 安置点 → 在读学段 → 划片学校
    zoning: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    subsidised_categories: Tuple[str, ...] = ()
    medical_tiers: Tuple[str, ...] = ()

    @classmethod
    def from_knowledge(cls, entries: Mapping[str, object]) -> PolicyFacts:
        """Build from knowledge entries (anything with a `.facts` mapping), keyed by entry id."""
        transport = entries["transport_subsidy"].facts
        award = entries["employment_award"].facts
        school = entries["school"].facts
        medical = entries["medical"].facts
        return cls(
            transport_amounts=dict(transport["amount_yuan"]),
            award_region=award["region"],
            award_min_months=int(award["min_months"]),
            award_amount=int(award["amount_yuan"]),
            zoning={k: dict(v) for k, v in (school.get("zoning") or {}).items()},
            subsidised_categories=tuple(medical.get("subsidised_categories") or ()),
            medical_tiers=tuple(medical.get("tiers") or ()),
        )


@dataclass(frozen=True)
class Decision:
    benefit: str
    status: str
    reason: str
    amount_yuan: int | None = None


def transport_subsidy(member: MemberFacts, policy: PolicyFacts) -> Decision:
    benefit = "务工交通补贴"
    if not member.is_labour:
        return Decision(benefit, NOT_ELIGIBLE, "不是劳动力，不享受务工交通补贴")
    region = member.work_region
    if region == UNEMPLOYED:
        return Decision(benefit, NOT_ELIGIBLE, "台账登记目前没有就业；外出务工后，符合条件的可以申请")
    if region == policy.award_region:
        return Decision(benefit, NOT_ELIGIBLE, "在县内就近就业，报道的交通补贴只有省外、县外省内两档（可看就业奖补）")
    amount = policy.transport_amounts.get(region)
    if amount is None:
        return Decision(benefit, UNKNOWN, "台账登记的就业地点不清楚，需要核实")
    if member.got_transport_subsidy:
        return Decision(
            benefit, RECEIVED, f"台账记录已领过{region}务工的一次性交通补贴{amount}元（2022年报道的标准）", amount
        )
    return Decision(
        benefit,
        ELIGIBLE,
        f"台账登记{region}务工，可申请一次性交通补贴{amount}元（须符合条件，按2022年报道的标准）",
        amount,
    )


def employment_award(member: MemberFacts, policy: PolicyFacts) -> Decision:
    benefit = "就业奖补"
    if not member.is_labour:
        return Decision(benefit, NOT_ELIGIBLE, "不是劳动力，不享受就业奖补")
    region = member.work_region
    if region == UNEMPLOYED:
        return Decision(benefit, NOT_ELIGIBLE, "台账登记目前没有就业")
    if region not in REGIONS:
        return Decision(benefit, UNKNOWN, "台账登记的就业地点不清楚，需要核实")
    if region != policy.award_region:
        return Decision(benefit, NOT_ELIGIBLE, f"就业奖补只给{policy.award_region}就近就业的，{region}务工看交通补贴")
    if member.got_employment_award:
        return Decision(
            benefit, RECEIVED, f"台账记录已领过就业奖补{policy.award_amount}元（2022年报道的标准）", policy.award_amount
        )
    months = max(0, member.months_employed)
    if months >= policy.award_min_months:
        return Decision(
            benefit,
            ELIGIBLE,
            f"台账登记本年在{region}就业{months}个月，满{policy.award_min_months}个月，"
            f"可申请{policy.award_amount}元（须符合条件，按2022年报道的标准）",
            policy.award_amount,
        )
    missing = policy.award_min_months - months
    return Decision(
        benefit,
        PENDING,
        f"台账登记本年在{region}就业{months}个月，离报道的“累计{policy.award_min_months}个月以上”还差{missing}个月；"
        f"满了，符合条件的可申请{policy.award_amount}元（按2022年报道的标准）",
        policy.award_amount,
    )


def zoned_school(settlement: str, stage: str, policy: PolicyFacts) -> Decision:
    benefit = "划片学校"
    if stage in ("", "无"):
        return Decision(benefit, NOT_ELIGIBLE, "没有在读")
    zoning = policy.zoning.get(settlement)
    if zoning is None:
        # the ledger may write 广惠园 for 广惠园社区
        zoning = next((z for name, z in policy.zoning.items() if name in settlement or settlement in name), {})
    school = zoning.get(stage)
    if school:
        return Decision(benefit, ELIGIBLE, f"{stage}的划片学校是{school}")
    return Decision(
        benefit,
        UNKNOWN,
        f"报道只写了{'、'.join(policy.zoning) or '个别安置点'}的划片学校，没有写{settlement}{stage}的划片",
    )


def medical_subsidy(member: MemberFacts, policy: PolicyFacts) -> Decision:
    benefit = "医保参保分类资助"
    # the source names the three layers (参保分类资助、大病保险、医疗救助) but neither the categories they cover nor
    # amounts: the registered category is told, never an eligibility, and the amount is for the medical office
    category = member.insurance_category
    if not member.insured:
        return Decision(benefit, UNKNOWN, "台账登记还没有参加基本医保，参保和资助需要核实")
    return Decision(benefit, UNKNOWN, f"登记的医保类别是{category}；三重保障按类别执行，报道没有写各类别资助多少")


def is_pupil(member: MemberFacts) -> bool:
    return member.school_stage not in ("", "无")


@dataclass(frozen=True)
class Rule:
    id: str
    benefit: str  # how residents and staff see it named
    section: str  # the part of the household answer it belongs to: subsidies / schools / medical
    inputs: Tuple[str, ...]  # the member and household facts it reads
    knowledge_entry: str  # the knowledge entry (answers.yml) its figures and its source come from
    decide: Callable[[MemberFacts, HouseholdFacts, PolicyFacts], Decision]
    applies_to: Callable[[MemberFacts], bool] = lambda member: True  # members it says anything about
    contact: str = ""  # the settings' contact to ask when the decision is UNKNOWN ("" when the reason names one)


RULES: Tuple[Rule, ...] = (
    Rule(
        "transport_subsidy",
        "务工交通补贴",
        "subsidies",
        ("is_labour", "work_region", "got_transport_subsidy"),
        "transport_subsidy",
        lambda m, h, p: transport_subsidy(m, p),
    ),
    Rule(
        "employment_award",
        "就业奖补",
        "subsidies",
        ("is_labour", "work_region", "months_employed", "got_employment_award"),
        "employment_award",
        lambda m, h, p: employment_award(m, p),
    ),
    Rule(
        "zoned_school",
        "划片学校",
        "schools",
        ("school_stage", "settlement"),
        "school",
        lambda m, h, p: zoned_school(h.settlement, m.school_stage, p),
        applies_to=is_pupil,
        contact="education_contact",
    ),
    Rule(
        "medical_subsidy",
        "医保参保分类资助",
        "medical",
        ("insured", "insurance_category"),
        "medical",
        lambda m, h, p: medical_subsidy(m, p),
    ),
)


def member_decisions(
    member: MemberFacts, household: HouseholdFacts, policy: PolicyFacts, section: str | None = None
) -> Dict[str, Tuple[Rule, Decision]]:
    """Every declared rule that applies to the member (in `section`, if given), by rule id, in declaration order."""
    return {
        rule.id: (rule, rule.decide(member, household, policy))
        for rule in RULES
        if (section is None or rule.section == section) and rule.applies_to(member)
    }
