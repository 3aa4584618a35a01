"""ID numbers are checked like the state checks them, and personal numbers are masked wherever text is shown."""

import datetime as dt
import logging

import pytest

from bot.identity import InvalidIdNumber, check_digit, make_id_number, parse_id_number
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
    assert mask_id("14092919580307042X") == "1409**********042X"
    assert mask_phone("13812345678") == "138****5678"
    text = mask_text("户主14092919580307042X，电话13812345678，后六位07042x")
    assert "14092919580307042X" not in text and "13812345678" not in text and "07042x" not in text
    assert "1409**********042X" in text and "138****5678" in text


def test_log_records_are_masked(caplog):
    logger = logging.getLogger("anju.test")
    caplog.handler.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("verifying %s with %s", "14092919580307042X", "07042X")
    assert "14092919580307042X" not in caplog.text and "07042X" not in caplog.text
    assert "1409**********042X" in caplog.text
