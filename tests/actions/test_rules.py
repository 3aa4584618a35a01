"""The eligibility rules, edge case by edge case, with the figures read from the knowledge files."""

import pytest

from bot import rules
from bot.knowledge import Knowledge
from bot.settings import ROOT

POLICY = rules.PolicyFacts.from_knowledge(Knowledge.from_dir(ROOT / "knowledge").entries)


def member(**overrides):
    values = dict(
        name="甲",
        relation="户主",
        is_labour=True,
        work_region="省外",
        months_employed=0,
        got_transport_subsidy=False,
        got_employment_award=False,
        insurance_category="脱贫人口",
        insured=True,
        school_stage="无",
    )
    values.update(overrides)
    return rules.MemberFacts(**values)


def test_figures_come_from_the_knowledge():
    assert POLICY.transport_amounts == {"省外": 800, "县外省内": 300}
    assert (POLICY.award_region, POLICY.award_min_months, POLICY.award_amount) == ("县内", 3, 300)


@pytest.mark.parametrize(
    "facts, status, amount, reason",
    [
        (dict(work_region="省外"), rules.ELIGIBLE, 800, "800元"),
        (dict(work_region="县外省内"), rules.ELIGIBLE, 300, "300元"),
        (dict(work_region="省外", got_transport_subsidy=True), rules.RECEIVED, 800, "已经领过"),
        (dict(work_region="县内", months_employed=12), rules.NOT_ELIGIBLE, None, "不发交通补贴"),
        (dict(work_region="未就业"), rules.NOT_ELIGIBLE, None, "没有就业"),
        (dict(is_labour=False, work_region="省外"), rules.NOT_ELIGIBLE, None, "不是劳动力"),
        (dict(work_region="国外"), rules.UNKNOWN, None, "核实"),
    ],
)
def test_transport_subsidy(facts, status, amount, reason):
    decision = rules.transport_subsidy(member(**facts), POLICY)
    assert (decision.status, decision.amount_yuan) == (status, amount)
    assert reason in decision.reason


@pytest.mark.parametrize(
    "facts, status, reason",
    [
        (dict(work_region="县内", months_employed=3), rules.ELIGIBLE, "满3个月"),
        (dict(work_region="县内", months_employed=12), rules.ELIGIBLE, "可申请300元"),
        (dict(work_region="县内", months_employed=2), rules.PENDING, "还差1个月"),
        (dict(work_region="县内", months_employed=0), rules.PENDING, "还差3个月"),
        (dict(work_region="县内", months_employed=5, got_employment_award=True), rules.RECEIVED, "已经领过"),
        (dict(work_region="县外省内", months_employed=6), rules.NOT_ELIGIBLE, "只给县内"),
        (dict(work_region="省外", months_employed=6), rules.NOT_ELIGIBLE, "只给县内"),
        (dict(work_region="未就业"), rules.NOT_ELIGIBLE, "没有就业"),
        (dict(is_labour=False, work_region="县内", months_employed=6), rules.NOT_ELIGIBLE, "不是劳动力"),
        (dict(work_region="外地"), rules.UNKNOWN, "核实"),
    ],
)
def test_employment_award(facts, status, reason):
    decision = rules.employment_award(member(**facts), POLICY)
    assert decision.status == status
    assert reason in decision.reason


@pytest.mark.parametrize(
    "settlement, stage, status, school",
    [
        ("广惠园社区", "学前", rules.ELIGIBLE, "仰峤幼儿园"),
        ("广惠园社区", "小学", rules.ELIGIBLE, "桃园昇小学"),
        ("广惠园", "小学", rules.ELIGIBLE, "桃园昇小学"),
        ("广惠园社区", "初中", rules.UNKNOWN, None),
        ("宋家沟移民新村", "小学", rules.UNKNOWN, None),
        ("广惠园社区", "无", rules.NOT_ELIGIBLE, None),
    ],
)
def test_zoned_school(settlement, stage, status, school):
    decision = rules.zoned_school(settlement, stage, POLICY)
    assert decision.status == status
    if school:
        assert school in decision.reason


@pytest.mark.parametrize(
    "category, insured, status",
    [
        ("特困人员", True, rules.ELIGIBLE),
        ("低保对象", True, rules.ELIGIBLE),
        ("脱贫人口", True, rules.ELIGIBLE),
        ("监测对象", True, rules.ELIGIBLE),
        ("普通居民", True, rules.NOT_ELIGIBLE),
        ("脱贫人口", False, rules.UNKNOWN),
    ],
)
def test_medical_subsidy(category, insured, status):
    assert rules.medical_subsidy(member(insurance_category=category, insured=insured), POLICY).status == status
