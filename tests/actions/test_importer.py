"""Importing the ledger: encodings, XLSX, every kind of bad row, all-or-nothing, idempotent re-import."""

import csv
import datetime as dt

import pytest
from sqlalchemy import func, select

from bot import db
from bot.identity import make_id_number
from bot.importer import HOUSEHOLD_HEADERS, MEMBER_HEADERS, LedgerError, import_ledger, main
from bot.models import Household, Member

from ..conftest import DEMO


def read_rows(path):
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path, headers, rows, encoding="utf-8"):
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=headers)
        writer.writeheader()
        writer.writerows(rows)
    return path


def counts():
    with db.session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(Household)),
            s.scalar(select(func.count()).select_from(Member)),
        )


def run_import(households=None, members=None):
    with db.session_scope() as s:
        return import_ledger(s, households, members)


def test_good_file(database_url):
    report = run_import(DEMO / "households.csv", DEMO / "members.csv")
    assert (report.households_added, report.members_added) == (12, 31)
    with db.session_scope() as s:
        zhang = s.get(Household, "GHY00001")
        assert zhang.head_name == "张三" and zhang.settlement == "广惠园社区" and zhang.relocation_year == 2019
        assert [m.name for m in zhang.members] == ["张三", "李秀英", "张小明", "张小红"]
        head = zhang.members[0]
        assert head.birth_date == dt.date(1978, 5, 12)
        assert zhang.members[2].school_stage == "小学" and zhang.members[1].months_employed == 3


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_excel_encodings(database_url, tmp_path, encoding):
    households = write_csv(tmp_path / "h.csv", HOUSEHOLD_HEADERS, read_rows(DEMO / "households.csv"), encoding)
    members = write_csv(tmp_path / "m.csv", MEMBER_HEADERS, read_rows(DEMO / "members.csv"), encoding)
    run_import(households, members)
    assert counts() == (12, 31)
    with db.session_scope() as s:
        assert s.get(Household, "GHY00002").head_name == "李四"


def test_xlsx(database_url, tmp_path):
    import openpyxl

    for name, headers in (("households", HOUSEHOLD_HEADERS), ("members", MEMBER_HEADERS)):
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(list(headers))
        for row in read_rows(DEMO / f"{name}.csv"):
            # Excel keeps numbers as numbers: 搬迁年份 and 本年就业月数 arrive as floats
            sheet.append([float(row[h]) if h in ("搬迁年份", "本年就业月数") else row[h] for h in headers])
        book.save(tmp_path / f"{name}.xlsx")
    run_import(tmp_path / "households.xlsx", tmp_path / "members.xlsx")
    assert counts() == (12, 31)


def _bad_member_rows():
    rows = read_rows(DEMO / "members.csv")
    bad_check = dict(rows[0], 身份证号=rows[0]["身份证号"][:17] + ("1" if rows[0]["身份证号"][17] != "1" else "2"))
    unknown_value = dict(rows[1], 就业地点="国外")
    unknown_household = dict(rows[2], 户编号="NOPE001")
    duplicate = dict(rows[3], 身份证号=rows[4]["身份证号"])
    months = dict(rows[5], 本年就业月数="13")
    yes_no = dict(rows[6], 是否参保="Y")
    return [bad_check, unknown_value, unknown_household, duplicate, rows[4], months, yes_no] + rows[7:]


def test_every_bad_row_is_listed_and_nothing_changes(database_url, tmp_path):
    run_import(DEMO / "households.csv", DEMO / "members.csv")
    before = counts()
    members = write_csv(tmp_path / "m.csv", MEMBER_HEADERS, _bad_member_rows())
    households = read_rows(DEMO / "households.csv")
    households.append(dict(households[0], 户编号="NEW0001"))  # a good new row: must not be written either
    households.append(dict(households[1], 户类型="贫困户"))  # duplicate 户编号 and an unknown value
    households = write_csv(tmp_path / "h.csv", HOUSEHOLD_HEADERS, households)
    with pytest.raises(LedgerError) as error:
        run_import(households, members)
    problems = "\n".join(error.value.problems)
    assert "h.csv 第15行" in problems and "户编号GHY00002重复（第3行已有）" in problems and "户类型“贫困户”" in problems
    assert "m.csv 第2行：身份证号：身份证号校验位不对" in problems
    assert "m.csv 第3行：就业地点“国外”不是可选值" in problems
    assert "m.csv 第4行：户编号NOPE001在户表和数据库里都没有" in problems
    assert "m.csv 第6行：身份证号重复（第5行已有）" in problems
    assert "m.csv 第7行：本年就业月数“13”" in problems
    assert "m.csv 第8行：是否参保“Y”" in problems
    assert len(error.value.problems) == 7
    assert counts() == before
    with db.session_scope() as s:
        assert s.get(Household, "NEW0001") is None


def test_missing_columns(database_url, tmp_path):
    path = write_csv(tmp_path / "h.csv", HOUSEHOLD_HEADERS[:3], [])
    with pytest.raises(LedgerError, match="缺少列 安置点"):
        run_import(path)


def test_reimport_updates_in_place(database_url, tmp_path):
    run_import(DEMO / "households.csv", DEMO / "members.csv")
    again = run_import(DEMO / "households.csv", DEMO / "members.csv")
    assert (again.households_added, again.members_added, again.households_updated, again.members_updated) == (0,) * 4
    assert again.unchanged == 12 + 31
    rows = read_rows(DEMO / "members.csv")
    rows[1]["本年就业月数"] = "4"
    report = run_import(members=write_csv(tmp_path / "m.csv", MEMBER_HEADERS, rows))
    assert (report.members_added, report.members_updated) == (0, 1)
    assert counts() == (12, 31)
    with db.session_scope() as s:
        assert s.get(Member, rows[1]["身份证号"]).months_employed == 4


def test_members_may_join_households_already_in_the_database(database_url, tmp_path):
    run_import(DEMO / "households.csv", DEMO / "members.csv")
    newborn = dict(read_rows(DEMO / "members.csv")[0])
    newborn.update(姓名="张小宝", 身份证号=make_id_number("140929", dt.date(2021, 1, 2), "013"), 与户主关系="子")
    newborn.update(是否劳动力="否", 就业地点="未就业", 本年就业月数="0", 在读学段="无")
    run_import(members=write_csv(tmp_path / "m.csv", MEMBER_HEADERS, [newborn]))
    assert counts() == (12, 32)


def test_command_line(database_url, tmp_path, capsys):
    assert main(["--households", str(DEMO / "households.csv"), "--members", str(DEMO / "members.csv")]) == 0
    assert "户 新增12" in capsys.readouterr().out
    bad = write_csv(tmp_path / "m.csv", MEMBER_HEADERS, _bad_member_rows())
    assert main(["--members", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "导入失败，数据库没有任何改动" in err and "m.csv 第2行" in err
    assert main(["--members", str(tmp_path / "missing.csv")]) == 2
