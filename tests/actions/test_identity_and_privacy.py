"""ID numbers are checked like the state checks them, personal numbers are masked wherever text is shown, and what
residents type to prove who they are (the head's name, the last 6 characters of the head's ID number) is read
forgivingly, without taking a question or a phrase for a name."""

import datetime as dt
import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.identity import (
    COMPOUND_SURNAMES,
    SURNAMES,
    IdentityAnswer,
    InvalidIdNumber,
    check_digit,
    is_cancel,
    make_id_number,
    parse_id_number,
    parse_identity_answer,
)
from bot.privacy import MaskingFilter, mask_id, mask_phone, mask_text


def test_known_check_digits():
    # the worked example of GB 11643-1999
    assert check_digit("11010519491231002") == "X"
    assert parse_id_number("11010519491231002x").value == "11010519491231002X"


def test_birth_date_and_sex_come_from_the_number():
    number = make_id_number("140929", dt.date(1958, 3, 7), "041")
    parsed = parse_id_number(number)
    assert parsed.birth_date == dt.date(1958, 3, 7)
    assert parsed.sex == "男"
    assert parse_id_number(make_id_number("140929", dt.date(2016, 9, 1), "022")).sex == "女"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("14092919580307041", "18位"),
        ("1409291958030704XX", "18位"),
        ("14092919580307041A", "18位"),
        ("14092919580230041" + check_digit("14092919580230041"), "出生日期不存在"),  # 30 February
    ],
)
def test_bad_numbers_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidIdNumber, match=reason):
        parse_id_number(raw)


def test_wrong_check_digit():
    good = make_id_number("140929", dt.date(1990, 1, 1), "123")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(InvalidIdNumber, match="校验位"):
        parse_id_number(bad)


def test_masks():
    assert mask_id("14092919580307042X") == "140929************"
    assert mask_phone("13812345678") == "138****5678"
    text = mask_text("户主14092919580307042X，电话13812345678，后六位07042x")
    assert "14092919580307042X" not in text and "13812345678" not in text and "07042x" not in text
    assert "140929************" in text and "138****5678" in text


def test_log_records_are_masked(caplog):
    logger = logging.getLogger("anju.test")
    caplog.handler.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("verifying %s with %s", "14092919580307042X", "07042X")
    assert "14092919580307042X" not in caplog.text and "07042X" not in caplog.text
    assert "140929************" in caplog.text


# --- the answer a resident gives to prove who they are ---


@pytest.mark.parametrize(
    "text, name, code",
    [
        ("125447", None, "125447"),
        ("张三 125447", "张三", "125447"),
        ("户主李四，后六位304224", "李四", "304224"),
        ("04291x", None, "04291X"),
        ("张三04291X", "张三", "04291X"),
        ("125447张三", "张三", "125447"),
        ("后6位是125447，户主王五", "王五", "125447"),
        ("张三，125447。", "张三", "125447"),
    ],
)
def test_code_in_plain_digits(text, name, code):
    assert parse_identity_answer(text) == IdentityAnswer(name, code, full_id_given=False)


@pytest.mark.parametrize(
    "text, name, code",
    [
        ("五六七八九零", None, "567890"),
        ("一二五四四七", None, "125447"),
        ("12五447", None, "125447"),
        ("幺二五四四洞", None, "125440"),
        ("两零四二九一", None, "204291"),
        ("零四二九一叉", None, "04291X"),
        ("零四二九一X", None, "04291X"),
        ("零四二九一x", None, "04291X"),
        ("王三元 125447", "王三元", "125447"),
        ("王三元125447", "王三元", "125447"),
        ("李万年 一二五四四七", "李万年", "125447"),
        ("张一山 125447", "张一山", "125447"),
        ("赵六一二五四四七", "赵六", "125447"),  # the 六 ends the name, the 6 numerals after it are the code
        ("赵六 一二五四四七", "赵六", "125447"),
        ("张三125447", "张三", "125447"),
        ("张三 身份证后六位 三零四二二四", "张三", "304224"),
        ("户主刘一二，后六位幺二五四四七", "刘一二", "125447"),
    ],
)
def test_code_in_chinese_numerals_never_eats_a_name(text, name, code):
    assert parse_identity_answer(text) == IdentityAnswer(name, code, full_id_given=False)


@pytest.mark.parametrize(
    "text",
    [
        "１２５４４７",
        "12 54 47",
        "125-447",
        "1 2 5 4 4 7",
        "12.54.47",
        "125 447",
        "12－54－47",
        "后6位：125447",
        "尾号125447",
        "后六 一二五四四七",
    ],
)
def test_code_with_full_width_digits_and_separators(text):
    assert parse_identity_answer(text).code == "125447"


ID = "14092919580307042X"


@pytest.mark.parametrize(
    "text, name",
    [
        (ID, None),
        (ID.lower(), None),
        ("140929 19580307 042X", None),
        ("1409 2919 5803 0704 2x", None),
        ("我的身份证号是14092919580307042X", None),
        ("户主张三，身份证号14092919580307042X", "张三"),
        ("张三14092919580307042X", "张三"),
        ("140929195803070421", None),  # the check digit is not checked here: the ledger decides
    ],
)
def test_a_whole_id_number_gives_only_its_last_six(text, name):
    answer = parse_identity_answer(text)
    assert answer.name == name
    assert answer.full_id_given
    assert answer.code == re.sub(r"\s", "", text)[-6:].upper()
    assert "1409291958030704" not in repr(answer)


@pytest.mark.parametrize(
    "text",
    [
        "13812345678",
        "138 1234 5678",
        "张三 13812345678",
        "13810",
        "13810政策怎么申请",
        "1125447",
        "12544789",
        "1409291958030704",  # 16 digits
        "140929195803070421X",  # 19 characters
        "12544",
        "张三 12544",
        "12X447",
        "一二五四四七八",
        "1 2 5 4 4 7 8",
    ],
)
def test_no_code_in_phone_numbers_policy_names_or_longer_runs(text):
    answer = parse_identity_answer(text)
    assert answer.code is None and not answer.full_id_given


def test_a_code_beside_other_numbers_is_still_found():
    assert parse_identity_answer("张三 125447 13812345678") == IdentityAnswer("张三", "125447", False)
    assert parse_identity_answer("12 54 47 13812345678").code == "125447"
    assert parse_identity_answer("13810 125447").code == "125447"
    assert parse_identity_answer("125447 304224").code == "304224"  # the last one is the correction


@pytest.mark.parametrize(
    "text, name",
    [
        ("张三", "张三"),
        ("王三元", "王三元"),
        ("李万年", "李万年"),
        ("张一山", "张一山"),
        ("张三丰", "张三丰"),
        ("高中华", "高中华"),
        ("张恩来", "张恩来"),
        ("叶问", "叶问"),
        ("毛不易", "毛不易"),
        ("欧阳娜娜", "欧阳娜娜"),
        ("欧阳振华明", "欧阳振华明"),  # compound surnames allow 5 characters
        ("司马相如 125447", "司马相如"),
        ("诸葛亮 04291x", "诸葛亮"),
        ("上官婉儿", "上官婉儿"),
        ("阿依·买买提", "阿依·买买提"),
        ("阿依.买买提 125447", "阿依·买买提"),
        ("买买提・吐尔逊", "买买提·吐尔逊"),  # a name with a middle dot need not start with a 百家姓 surname
        ("户主叫张三", "张三"),
        ("我是户主张三", "张三"),
        ("名字是张三", "张三"),
        ("俺家户主是王三元", "王三元"),
        ("户主：李万年", "李万年"),
        ("户主姓名：张三 证件号后六位：04291X", "张三"),
        ("张三，身份证后六位125447", "张三"),
        ("户主是张三后6位是125447", "张三"),
        ("我叫张三啊", "张三"),
        ("嗯 张三", "张三"),
        ("户主是我爸张三", "张三"),
        ("我是李四，户主是张三", "张三"),  # two names: the one said to be the head's
        ("我是户主 叫赵癸丙", "赵癸丙"),
        ("098733陈戊庚", "陈戊庚"),
        ("户主是吴丁甲身份证后六位是零一九六二四", "吴丁甲"),
        ("说错了 户主写的是李四", "李四"),
        ("不对不对 户主是王丁壬 后六位143255", "王丁壬"),
    ],
)
def test_names(text, name):
    assert parse_identity_answer(text).name == name


@pytest.mark.parametrize(
    "text",
    [
        "不查了",
        "算了",
        "不用了",
        "你好",
        "谢谢",
        "什么",
        "怎么办",
        "不知道",
        "没有",
        "好的",
        "是的",
        "不对",
        "我不记得了",
        "记不清了",
        "在省外干活有路费补贴吗",
        "敬老院怎么申请",
        "我家能领什么",
        "张三吗",
        "户主是谁",
        "低保多少钱",
        "哪里办",
        "申请低保",
        "危房改造",
        "查低保",
        "敬老院",
        "安置房",
        "高龄补贴",
        "钱到了",
        "马上",
        "路费",
        "宋家沟",
        "文明户",
        "房子漏水",
        "谢谢解答",
        "高中",
        "权益保障",
        "易地搬迁",
        "张三丰李四光",  # longer than a name
        "张三 李四",  # two names, neither said to be the head's
        "王",
        "zhangsan",
        "",
    ],
)
def test_never_names(text):
    assert parse_identity_answer(text).name is None


@pytest.mark.parametrize(
    "text",
    [
        "不查了",
        "算了",
        "算了吧",
        "不用了",
        "不用了，谢谢",
        "取消",
        "取消！",
        " 退 出 ",
        "不弄了",
        "先不查",
        "先不查了",
        "以后再说",
        "以后再说吧",
        "换个人查",
        "那就算了吧",
        "不想查了",
        "不查了啊",
        "算了呀。",
        "哎呀 那算了吧 不查了",
        "身份证不在手边 不用了",
        "记不清身份证号了 算了吧",
    ],
)
def test_cancel(text):
    assert is_cancel(text)
    assert parse_identity_answer(text).name is None


@pytest.mark.parametrize("text", ["张三", "125447", "张三 125447", "好的", "户主是张三", "我要查低保", "", "   "])
def test_not_cancel(text):
    assert not is_cancel(text)


# --- properties ---

_CODE = re.compile(r"^\d{5}[\dX]$", re.ASCII)
_NOISY = st.text(
    alphabet=st.sampled_from(
        list("0123456789０１２３Xx叉零一二两三四五六七八九幺洞 -.·，,：:")
        + list("户主叫是我张王李欧阳三元万年后六位身份证号码吗什么算了")
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), _NOISY))
def test_any_text_gives_a_well_formed_answer(text):
    answer = parse_identity_answer(text)
    assert answer.code is None or _CODE.match(answer.code)
    assert answer.name is None or (2 <= len(answer.name) <= 8 and not any(ch.isdigit() for ch in answer.name))
    assert not answer.full_id_given or answer.code is not None


# common characters of given names, a few of them numerals (张三, 王三元)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华霞平刚桂兰玉萍红建国"
    "文辉志春梅林荣海鹏飞云莲福贵宝生发才德财金银山三元万年一"
)
_NAMES = st.builds(
    lambda surname, given: surname + given,
    st.one_of(st.sampled_from(sorted(SURNAMES)), st.sampled_from(sorted(COMPOUND_SURNAMES))),
    st.text(alphabet=st.sampled_from(_GIVEN), min_size=1, max_size=3),
).filter(lambda name: len(name) <= 4 or name[:2] in COMPOUND_SURNAMES)
_CHINESE = dict(zip("0123456789X", "零一二三四五六七八九叉", strict=True))
_TEMPLATES = [
    "{name} {code}",
    "{name}{code}",
    "{code} {name}",
    "{code}{name}",
    "户主叫{name}，身份证后六位{code}",
    "我是户主{name}，后6位是{code}",
    "户主是{name}后6位是{code}",
    "名字是{name}，号码{code}",
    "俺家户主是{name} {code}",
    "户主：{name} 后六位：{code}",
    "{code}，户主{name}",
    "身份证后六位{code}，户主姓名{name}",
    "后6位{code} 我叫{name}啊",
]


@settings(max_examples=200, deadline=None)
@given(
    _NAMES,
    st.from_regex(r"[0-9]{5}[0-9X]", fullmatch=True),
    st.sampled_from(_TEMPLATES),
    st.sampled_from(["plain", "lower", "chinese", "spaced"]),
)
def test_a_name_and_a_code_in_any_order_come_back_exactly(name, code, template, style):
    written = {
        "plain": code,
        "lower": code.lower(),
        "chinese": "".join(_CHINESE[ch] for ch in code),
        "spaced": f"{code[:2]} {code[2:4]} {code[4:]}",
    }[style]
    text = template.format(name=name, code=written)
    assert parse_identity_answer(text) == IdentityAnswer(name, code, full_id_given=False), text


@pytest.mark.parametrize("number", ["14092919580307042X", "140929197805125447", "110101199003077578"])
def test_a_masked_id_shows_none_of_the_characters_residents_verify_with(number):
    masked = mask_id(number)
    assert masked[-6:] == "******" and masked[6:14] == "********"  # no birth date, no verification code
    assert masked[:6] == number[:6] and len(masked) == 18
    assert number[-6:] not in mask_text(f"身份证{number}")


@pytest.mark.parametrize(
    "typed, secret",
    [
        ("1409 2919 5803 0704 2X", "0704"),  # an ID number read out in groups
        ("身份证 140929-19580307-042X", "19580307"),
        ("电话139-1234-5678", "1234"),
        ("+86 139 1234 5678", "1234"),
        ("139.1234.5678", "1234"),
        ("后六位08 56 27", "08 56 27"),
        ("后六位 0 8 5 6 2 7", "0 8 5 6 2 7"),
        ('{"text": "\\u8bc1110101199003077578"}', "199003077578"),  # Rasa's JSON log escapes 证 as \u8bc1
        ('{"text": "\\u53f7125447"}', "125447"),
        ("身份证１４０９２９１９５８０３０７０４２Ｘ", "１９５８０３０７"),  # full-width, as phones type them
    ],
)
def test_numbers_typed_with_separators_escapes_or_full_width_are_masked(typed, secret):
    masked = mask_text(typed)
    assert secret not in masked, masked
    assert mask_text(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize(
    "kept", ["2022年800元/人", "13810监测帮扶", "1603名搬迁劳动力", "67.19万元", "5口人 3个月", "12345"]
)
def test_ordinary_numbers_are_left_alone(kept):
    assert mask_text(kept) == kept


@given(
    code=st.from_regex(r"\A[0-9]{5}[0-9X]\Z"),
    separator=st.sampled_from(["", " ", "-", ".", "  "]),
    before=st.sampled_from(["", "后六位", "张三 ", "户主李四，", '{"text": "\\u53f7']),
)
def test_a_code_is_masked_however_it_is_spaced(code, separator, before):
    typed = before + separator.join([code[:2], code[2:4], code[4:]])
    assert code not in mask_text(typed).replace(separator, "") if separator else code not in mask_text(typed)


def test_an_address_in_a_log_line_is_not_a_code():
    from bot.privacy import mask_text

    assert (
        mask_text("POST http://127.0.0.1:5055/webhook from 10.0.0.12")
        == "POST http://127.0.0.1:5055/webhook from 10.0.0.12"
    )
    assert "125447" not in mask_text("验证码 12.54.47") and "125447" not in mask_text("12 54 47")
