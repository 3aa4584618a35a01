"""The eligibility rules, edge case by edge case, with the figures read from the knowledge files. The reasons say what
the ledger records (台账登记…), keep the source's conditions (符合条件) and date their amounts (2022)."""

from types import SimpleNamespace

import pytest

from bot import household_answer, rules
from bot.knowledge import Knowledge
from bot.settings import ROOT, Settings

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
        (dict(work_region="省外"), rules.ELIGIBLE, 800, "省外务工，可申请一次性交通补贴800元（须符合条件"),
        (dict(work_region="县外省内"), rules.ELIGIBLE, 300, "可申请一次性交通补贴300元（须符合条件"),
        # the source says 一次性 and nothing about claiming again: the ledger's record, no "不再重复发放"
        (dict(work_region="省外", got_transport_subsidy=True), rules.RECEIVED, 800, "台账记录已领过省外务工"),
        (dict(work_region="县内", months_employed=12), rules.NOT_ELIGIBLE, None, "只有省外、县外省内两档"),
        (dict(work_region="未就业"), rules.NOT_ELIGIBLE, None, "没有就业"),
        (dict(is_labour=False, work_region="省外"), rules.NOT_ELIGIBLE, None, "不是劳动力"),
        (dict(work_region="国外"), rules.UNKNOWN, None, "核实"),
    ],
)
def test_transport_subsidy(facts, status, amount, reason):
    decision = rules.transport_subsidy(member(**facts), POLICY)
    assert (decision.status, decision.amount_yuan) == (status, amount)
    assert reason in decision.reason
    assert "不再重复" not in decision.reason
    if amount:
        assert "2022年报道的标准" in decision.reason


@pytest.mark.parametrize(
    "facts, status, reason",
    [
        # the ledger's 本年就业月数, said as such, against the source's 累计3个月以上
        (dict(work_region="县内", months_employed=3), rules.ELIGIBLE, "台账登记本年在县内就业3个月，满3个月"),
        (dict(work_region="县内", months_employed=12), rules.ELIGIBLE, "可申请300元（须符合条件"),
        (dict(work_region="县内", months_employed=2), rules.PENDING, "就业2个月，离报道的“累计3个月以上”还差1个月"),
        (dict(work_region="县内", months_employed=0), rules.PENDING, "还差3个月"),
        (dict(work_region="县内", months_employed=5, got_employment_award=True), rules.RECEIVED, "台账记录已领过"),
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


def test_another_settlement_is_told_the_source_names_only_guanghuiyuans_schools():
    decision = rules.zoned_school("宋家沟移民新村", "小学", POLICY)
    assert decision.reason == "报道只写了广惠园社区的划片学校，没有写宋家沟移民新村小学的划片"
    assert "桃园" not in decision.reason and "仰峤" not in decision.reason


@pytest.mark.parametrize("category", ["特困人员", "低保对象", "脱贫人口", "监测对象", "普通居民"])
def test_medical_subsidy_tells_the_category_and_decides_nothing(category):
    """The source names the three layers but not which categories they cover or how much: every insured member is
    told the registered category, and the amount is for the medical office (UNKNOWN, a person has to say)."""
    decision = rules.medical_subsidy(member(insurance_category=category, insured=True), POLICY)
    assert decision.status == rules.UNKNOWN
    assert decision.reason == f"登记的医保类别是{category}；三重保障按类别执行，报道没有写各类别资助多少"
    assert "享受" not in decision.reason


def test_medical_subsidy_of_an_uninsured_member():
    decision = rules.medical_subsidy(member(insured=False), POLICY)
    assert decision.status == rules.UNKNOWN and "还没有参加基本医保" in decision.reason


def test_no_medical_category_is_claimed_from_an_unstored_source():
    assert POLICY.subsidised_categories == ()
    assert POLICY.medical_tiers == ("基本医保参保分类资助", "大病保险", "医疗救助")


# =====================================================================================================================
# The household answer's words (bot.household_answer.render): the rules' reasons, who to ask, and the source line

SOURCE_LINE = "（依据：忻州日报2022年7月13日报道）"


def household_reply(source_line=None, settlement="宋家沟移民新村"):
    household = SimpleNamespace(
        head_name="甲", id="T0001", head_id_number="140929197805125447", phone="", settlement=settlement
    )
    facts = rules.HouseholdFacts(
        settlement=settlement,
        origin_village="大涧村",
        household_type="脱贫户",
        monitoring_status="未纳入",
        members=(
            member(name="甲", work_region="省外", got_transport_subsidy=True, insurance_category="特困人员"),
            member(name="乙", relation="配偶", work_region="县内", months_employed=2),
            member(name="丙", relation="子", is_labour=False, work_region="未就业", school_stage="小学"),
        ),
    )
    kwargs = {} if source_line is None else {"source_line": source_line}
    return household_answer.render(household, facts, POLICY, household_answer.SECTIONS, Settings(), **kwargs)


def test_the_household_answer_asks_who_decides_and_dates_its_amounts():
    text = household_reply(SOURCE_LINE)
    contacts = Settings().contact_placeholders()
    # recorded as claimed: what the ledger says, and whether again is for the employment office to say
    assert (
        "甲：务工交通补贴——台账记录已领过省外务工的一次性交通补贴800元（2022年报道的标准），以后还能不能再领，"
        f"请问{contacts['employment_contact']}"
    ) in text
    assert "台账登记本年在县内就业2个月，离报道的“累计3个月以上”还差1个月" in text
    assert f"以{contacts['employment_contact']}的审核和答复为准" in text
    assert "报道只写了广惠园社区的划片学校，没有写宋家沟移民新村小学的划片" in text
    assert (
        f"甲：登记的医保类别是特困人员；三重保障按类别执行，报道没有写各类别资助多少，请问{contacts['medical_contact']}"
        in text
    )
    assert "迁出地8项、迁入地15项权益" in text and "不会丢" not in text


def test_the_parts_that_state_policy_end_with_the_source_line():
    lines = household_reply(SOURCE_LINE).splitlines()
    for title in ("【补贴】", "【上学】", "【医保】", "【老家权益】"):
        start = lines.index(title)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("【")), len(lines) - 1)
        assert lines[end - 1] == SOURCE_LINE, title
    assert lines[lines.index("【监测帮扶】") + 2].startswith("【")  # the ledger's status alone: no source line


def test_without_a_source_line_the_household_answer_is_as_before():
    assert "依据" not in household_reply()
    assert household_reply("") == household_reply()
