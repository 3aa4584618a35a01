"""18-digit resident ID numbers (GB 11643-1999): check digit, birth date and sex. Pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


class InvalidIdNumber(ValueError):
    """The reason is in Chinese, ready to show to whoever typed the number."""


@dataclass(frozen=True)
class IdNumber:
    value: str
    birth_date: dt.date
    sex: str  # 男 / 女

    @property
    def suffix6(self) -> str:
        return self.value[-6:]


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse_id_number(raw: str) -> IdNumber:
    value = (raw or "").strip().upper()
    if not _SHAPE.match(value):
        raise InvalidIdNumber("身份证号应为18位，前17位是数字，最后一位是数字或X")
    if check_digit(value[:17]) != value[17]:
        raise InvalidIdNumber("身份证号校验位不对，请核对号码")
    try:
        birth = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as e:
        raise InvalidIdNumber("身份证号里的出生日期不存在") from e
    if not dt.date(1900, 1, 1) <= birth <= dt.date.today():
        raise InvalidIdNumber("身份证号里的出生日期不合理")
    return IdNumber(value, birth, "男" if int(value[16]) % 2 else "女")


def make_id_number(region6: str, birth: dt.date, sequence3: str) -> str:
    """A well-formed ID number for synthetic data and tests (the people are fictitious)."""
    first17 = f"{region6}{birth:%Y%m%d}{sequence3}"
    return first17 + check_digit(first17)
