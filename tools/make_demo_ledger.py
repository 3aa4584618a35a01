"""Writes a synthetic ledger (台账) of clearly fictitious people with valid-format ID numbers.

    python tools/make_demo_ledger.py demo/                 the small demo ledger that ships in the repo
    python tools/make_demo_ledger.py /tmp/big --size 1773  a ledger the size of 广惠园, for the import benchmark

The first households are hand-picked so that every household question has an example (see demo/README.md); the rest
are random from a fixed seed, so the same command always writes the same files.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.identity import make_id_number  # noqa: E402
from bot.importer import HOUSEHOLD_HEADERS, MEMBER_HEADERS  # noqa: E402

REGION = "140929"  # the administrative code of 岢岚县
PLACEHOLDER_NAMES = ["张三", "李四", "王五", "赵六", "孙七", "周八", "吴九", "郑十"]
SURNAMES = "张王李赵刘陈杨黄周吴郑孙马朱胡郭何高林罗"
GIVEN = ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"]
VILLAGES = ["赵家洼村", "宋家沟村", "王家岔村", "阳坪村", "大涧村", "温泉村", "高家会村", "西豹峪村"]

# (户主, 安置点, 户类型, 监测状态, members: (name, relation, birth, labour, region, months, got_t, got_a, 医保, 学段))
HAND_PICKED = [
    (
        "张三",
        "广惠园社区",
        "脱贫户",
        "未纳入",
        [
            ("张三", "户主", dt.date(1978, 5, 12), "是", "省外", 10, "否", "否", "脱贫人口", "无"),
            ("李秀英", "配偶", dt.date(1980, 2, 3), "是", "县内", 3, "否", "否", "脱贫人口", "无"),
            ("张小明", "子", dt.date(2015, 9, 1), "否", "未就业", 0, "否", "否", "脱贫人口", "小学"),
            ("张小红", "女", dt.date(2019, 6, 18), "否", "未就业", 0, "否", "否", "脱贫人口", "学前"),
        ],
    ),
    (
        "李四",
        "广惠园社区",
        "一般搬迁户",
        "监测中",
        [
            ("李四", "户主", dt.date(1970, 11, 30), "是", "县外省内", 8, "是", "否", "监测对象", "无"),
            ("王桂兰", "配偶", dt.date(1972, 1, 9), "是", "县内", 2, "否", "否", "监测对象", "无"),
            ("李强", "子", dt.date(2001, 4, 22), "是", "省外", 12, "是", "否", "普通居民", "无"),
        ],
    ),
    (
        "王五",
        "宋家沟移民新村",
        "脱贫户",
        "已消除风险",
        [
            ("王五", "户主", dt.date(1948, 8, 8), "否", "未就业", 0, "否", "否", "特困人员", "无"),
            ("王小五", "孙子", dt.date(2014, 3, 15), "否", "未就业", 0, "否", "否", "低保对象", "小学"),
        ],
    ),
    (
        "赵六",
        "广惠园社区",
        "脱贫户",
        "未纳入",
        [
            ("赵六", "户主", dt.date(1985, 7, 1), "是", "县内", 6, "否", "是", "脱贫人口", "无"),
            ("赵思思", "女", dt.date(2006, 10, 10), "否", "未就业", 0, "否", "否", "脱贫人口", "高中"),
        ],
    ),
]


def household_rows(size: int, seed: int = 2022):
    rng = random.Random(seed)
    used = set()

    def id_number(birth: dt.date) -> str:
        while True:
            number = make_id_number(REGION, birth, f"{rng.randrange(1000):03d}")
            if number not in used:
                used.add(number)
                return number

    def phone() -> str:
        return f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"

    households, members = [], []
    for i in range(size):
        hid = f"GHY{i + 1:05d}"
        if i < len(HAND_PICKED):
            head, settlement, htype, status, people = HAND_PICKED[i]
        else:
            head = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            settlement = "广惠园社区" if rng.random() < 0.85 else "宋家沟移民新村"
            htype = "脱贫户" if rng.random() < 0.83 else "一般搬迁户"
            status = rng.choices(["未纳入", "监测中", "已消除风险"], [0.97, 0.01, 0.02])[0]
            people = _random_people(rng, head, htype)
        head_birth = people[0][2]
        head_id = id_number(head_birth)
        households.append({
            "户编号": hid, "户主姓名": head, "户主身份证号": head_id, "安置点": settlement,
            "住址": f"{settlement}{rng.randrange(1, 30)}号楼{rng.randrange(1, 6)}单元{rng.randrange(101, 1802)}",
            "迁出村": rng.choice(VILLAGES), "搬迁年份": str(rng.choice([2017, 2018, 2019])), "户类型": htype,
            "监测状态": status, "联系电话": phone(),
        })  # fmt: skip
        for j, (name, relation, birth, labour, region, months, got_t, got_a, insurance, stage) in enumerate(people):
            members.append({
                "户编号": hid, "姓名": name, "身份证号": head_id if j == 0 else id_number(birth),
                "与户主关系": relation, "是否劳动力": labour, "就业地点": region, "本年就业月数": str(months),
                "已领交通补贴": got_t, "已领就业奖补": got_a, "医保类别": insurance, "是否参保": "是",
                "在读学段": stage,
            })  # fmt: skip
    return households, members


def _random_people(rng: random.Random, head: str, htype: str):
    insurance = "脱贫人口" if htype == "脱贫户" else "普通居民"
    surname = head[0]
    head_birth = dt.date(rng.randrange(1950, 1995), rng.randrange(1, 13), rng.randrange(1, 29))
    people = [_adult(rng, head, "户主", head_birth, insurance)]
    if rng.random() < 0.8:
        people.append(_adult(rng, rng.choice(SURNAMES) + rng.choice(GIVEN), "配偶", head_birth, insurance))
    for _ in range(rng.choice([0, 1, 1, 2])):
        birth = dt.date(rng.randrange(2005, 2021), rng.randrange(1, 13), rng.randrange(1, 29))
        age = 2022 - birth.year
        stage = "学前" if age < 6 else "小学" if age < 12 else "初中" if age < 15 else "高中"
        people.append((surname + rng.choice(GIVEN), "子", birth, "否", "未就业", 0, "否", "否", insurance, stage))
    return people


def _adult(rng, name, relation, near: dt.date, insurance):
    birth = dt.date(min(2000, max(1940, near.year + rng.randrange(-3, 4))), near.month, near.day)
    region = rng.choices(["未就业", "县内", "县外省内", "省外"], [0.25, 0.4, 0.2, 0.15])[0]
    months = 0 if region == "未就业" else rng.randrange(1, 13)
    got_t = "是" if region in ("县外省内", "省外") and rng.random() < 0.5 else "否"
    got_a = "是" if region == "县内" and months >= 3 and rng.random() < 0.5 else "否"
    return (name, relation, birth, "是", region, months, got_t, got_a, insurance, "无")


def write_csv(path: Path, headers, rows) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=headers)
        writer.writeheader()
        writer.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=12, help="number of households")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    households, members = household_rows(args.size)
    write_csv(args.out / "households.csv", HOUSEHOLD_HEADERS, households)
    write_csv(args.out / "members.csv", MEMBER_HEADERS, members)
    print(f"{len(households)} households, {len(members)} members → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
