"""Imports the county ledger (台账) of households and members from CSV (UTF-8, UTF-8 with BOM, GBK/GB18030) or XLSX.

All or nothing: a file with any bad row changes nothing, and every bad row is listed with its line number and reason.
Re-importing updates in place, keyed on 户编号 and 身份证号.

    python -m bot.importer --households 户.csv --members 成员.xlsx      (or: make import HOUSEHOLDS=… MEMBERS=…)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import db, migrate
from bot.identity import InvalidIdNumber, parse_id_number
from bot.models import Household, Member
from bot.text_normalization import clean_input

HOUSEHOLD_HEADERS = (
    "户编号",
    "户主姓名",
    "户主身份证号",
    "安置点",
    "住址",
    "迁出村",
    "搬迁年份",
    "户类型",
    "监测状态",
    "联系电话",
)
MEMBER_HEADERS = (
    "户编号", "姓名", "身份证号", "与户主关系", "是否劳动力", "就业地点", "本年就业月数",
    "已领交通补贴", "已领就业奖补", "医保类别", "是否参保", "在读学段",
)  # fmt: skip
HOUSEHOLD_TYPES = ("脱贫户", "一般搬迁户")
MONITORING = ("未纳入", "监测中", "已消除风险")
WORK_REGIONS = ("未就业", "县内", "县外省内", "省外")
INSURANCE = ("特困人员", "低保对象", "脱贫人口", "监测对象", "普通居民")
SCHOOL_STAGES = ("无", "学前", "小学", "初中", "高中", "中职", "高职", "大学")
YES_NO = {"是": True, "否": False}


class LedgerError(Exception):
    """The ledger cannot be imported; `problems` lists every reason, each with its file and line."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Row:
    line: int
    values: Dict[str, str]


@dataclass
class ImportReport:
    households_added: int = 0
    households_updated: int = 0
    members_added: int = 0
    members_updated: int = 0
    unchanged: int = 0
    problems: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"导入完成：户 新增{self.households_added} 更新{self.households_updated}；"
            f"成员 新增{self.members_added} 更新{self.members_updated}；未变{self.unchanged}"
        )


# ---------------------------------------------------------------- reading


def read_table(path: Path) -> Tuple[List[str], List[Row]]:
    """Headers and rows of a CSV or XLSX file; line numbers are the ones a spreadsheet shows (header = 1). A file that
    cannot be read as either raises LedgerError saying so, never the reader's own exception."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            return _read_xlsx(path)
        except Exception as e:  # openpyxl reports a damaged file with whatever its parsers raise
            problem = f"{path.name}：不是能打开的 XLSX 文件，请用 Excel 另存为 .xlsx 或 CSV（{type(e).__name__}）"
            raise LedgerError([problem]) from e
    return _read_csv(path)


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LedgerError(["文件编码无法识别：请另存为 UTF-8 或 GBK 编码的 CSV，或 XLSX"])


def _read_csv(path: Path) -> Tuple[List[str], List[Row]]:
    reader = csv.reader(io.StringIO(_decode(path.read_bytes()), newline=""))
    try:
        try:
            headers = [clean_input(h).strip() for h in next(reader)]
        except StopIteration:
            return [], []
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            rows.append(Row(reader.line_num, _cells_to_values(headers, cells)))
    except csv.Error as e:  # a NUL byte, a field over the csv module's limit: not a table
        problem = f"{path.name} 第{reader.line_num}行：无法读取（{e}），请确认是表格软件另存的 CSV"
        raise LedgerError([problem]) from e
    return headers, rows


def _read_xlsx(path: Path) -> Tuple[List[str], List[Row]]:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        it = sheet.iter_rows(values_only=True)
        try:
            headers = [_cell_text(h) for h in next(it)]
        except StopIteration:
            return [], []
        rows = []
        for number, cells in enumerate(it, start=2):
            texts = [_cell_text(c) for c in cells]
            if any(texts):
                rows.append(Row(number, _cells_to_values(headers, texts)))
        return headers, rows
    finally:
        workbook.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores 2019 as 2019.0
    return clean_input(str(value)).strip()


def _cells_to_values(headers: Sequence[str], cells: Sequence[str]) -> Dict[str, str]:
    """Each column's text, without control, zero-width and bidi characters: a name pasted as 张三 + U+200B would be
    stored as is and never match what the resident types."""
    return {
        h: (clean_input(cells[i]).strip() if i < len(cells) and cells[i] is not None else "")
        for i, h in enumerate(headers)
    }


_INTEGER = re.compile(r"[0-9]+")


def _integer(text: str) -> int:
    """A whole number written with digits, full-width ones too (２０１９); ValueError for anything else, including what
    int() also takes (1_990, ١٩٩٠, an over-long run of digits)."""
    text = unicodedata.normalize("NFKC", text).strip()
    if not _INTEGER.fullmatch(text) or len(text) > 9:
        raise ValueError(text)
    return int(text)


# ---------------------------------------------------------------- validating


def _check_headers(label: str, headers: Sequence[str], expected: Sequence[str]) -> List[str]:
    missing = [h for h in expected if h not in headers]
    return [f"{label}：缺少列 {'、'.join(missing)}（应为：{','.join(expected)}）"] if missing else []


def _choice(values: Dict[str, str], column: str, allowed: Iterable[str], errors: List[str]) -> str:
    value = values.get(column, "")
    allowed = tuple(allowed)
    if value not in allowed:
        errors.append(f"{column}“{value}”不是可选值（{'|'.join(allowed)}）")
    return value


def _yes_no(values: Dict[str, str], column: str, errors: List[str]) -> bool:
    return YES_NO.get(_choice(values, column, YES_NO, errors), False)


def _required(values: Dict[str, str], column: str, errors: List[str]) -> str:
    value = values.get(column, "")
    if not value:
        errors.append(f"{column}为空")
    return value


def _parse_households(label: str, rows: List[Row], problems: List[str]) -> Dict[str, dict]:
    parsed: Dict[str, dict] = {}
    first_line: Dict[str, int] = {}
    this_year = dt.date.today().year
    for row in rows:
        v, errors = row.values, []
        household_id = _required(v, "户编号", errors)
        head_name = _required(v, "户主姓名", errors)
        try:
            head_id = parse_id_number(v.get("户主身份证号", "")).value
        except InvalidIdNumber as e:
            errors.append(f"户主身份证号：{e}")
            head_id = ""
        settlement = _required(v, "安置点", errors)
        year: int | None = None
        if v.get("搬迁年份"):
            try:
                year = _integer(v["搬迁年份"])
                if not 1980 <= year <= this_year:
                    raise ValueError
            except ValueError:
                errors.append(f"搬迁年份“{v['搬迁年份']}”不是1980到{this_year}之间的年份")
        household_type = _choice(v, "户类型", HOUSEHOLD_TYPES, errors)
        monitoring = _choice(v, "监测状态", MONITORING, errors)
        phone = v.get("联系电话", "")
        if phone and not all(ch.isdigit() or ch in "-+ " for ch in phone):
            errors.append("联系电话只能有数字和“-”")
        if household_id and household_id in first_line:
            errors.append(f"户编号{household_id}重复（第{first_line[household_id]}行已有）")
        if errors:
            problems.append(f"{label} 第{row.line}行：" + "；".join(errors))
            continue
        first_line[household_id] = row.line
        parsed[household_id] = dict(
            id=household_id,
            head_name=head_name,
            head_id_number=head_id,
            settlement=settlement,
            address=v.get("住址", ""),
            origin_village=v.get("迁出村", ""),
            relocation_year=year,
            household_type=household_type,
            monitoring_status=monitoring,
            phone=phone,
        )
    return parsed


def _parse_members(label: str, rows: List[Row], known_households: set, problems: List[str]) -> Dict[str, dict]:
    parsed: Dict[str, dict] = {}
    first_line: Dict[str, int] = {}
    for position, row in enumerate(rows):
        v, errors = row.values, []
        household_id = _required(v, "户编号", errors)
        if household_id and household_id not in known_households:
            errors.append(f"户编号{household_id}在户表和数据库里都没有（未知的户）")
        name = _required(v, "姓名", errors)
        identity = None
        try:
            identity = parse_id_number(v.get("身份证号", ""))
        except InvalidIdNumber as e:
            errors.append(f"身份证号：{e}")
        relation = _required(v, "与户主关系", errors)
        is_labour = _yes_no(v, "是否劳动力", errors)
        region = _choice(v, "就业地点", WORK_REGIONS, errors)
        months = 0
        try:
            months = _integer(v.get("本年就业月数") or "0")
            if not 0 <= months <= 12:
                raise ValueError
        except ValueError:
            errors.append(f"本年就业月数“{v.get('本年就业月数')}”应为0到12的整数")
        got_transport = _yes_no(v, "已领交通补贴", errors)
        got_award = _yes_no(v, "已领就业奖补", errors)
        insurance = _choice(v, "医保类别", INSURANCE, errors)
        insured = _yes_no(v, "是否参保", errors)
        stage = _choice(v, "在读学段", SCHOOL_STAGES, errors)
        if identity and identity.value in first_line:
            errors.append(f"身份证号重复（第{first_line[identity.value]}行已有）")
        if errors:
            problems.append(f"{label} 第{row.line}行：" + "；".join(errors))
            continue
        first_line[identity.value] = row.line
        parsed[identity.value] = dict(
            id_number=identity.value,
            household_id=household_id,
            position=position,
            name=name,
            relation=relation,
            birth_date=identity.birth_date,
            sex=identity.sex,
            is_labour=is_labour,
            work_region=region,
            months_employed=months,
            got_transport_subsidy=got_transport,
            got_employment_award=got_award,
            insurance_category=insurance,
            insured=insured,
            school_stage=stage,
        )
    return parsed


# ---------------------------------------------------------------- writing


def import_ledger(
    session: Session,
    households_path: Path | None = None,
    members_path: Path | None = None,
    progress: bool = False,
) -> ImportReport:
    """Validates both files completely, then writes them in the caller's transaction. Raises LedgerError, writing
    nothing, when anything is wrong."""
    if households_path is None and members_path is None:
        raise LedgerError(["请至少给出户表（HOUSEHOLDS）或成员表（MEMBERS）之一"])
    problems: List[str] = []
    households: Dict[str, dict] = {}
    members: Dict[str, dict] = {}
    if households_path is not None:
        label = Path(households_path).name
        headers, rows = read_table(Path(households_path))
        problems += _check_headers(label, headers, HOUSEHOLD_HEADERS)
        if not problems:
            households = _parse_households(label, rows, problems)
    if members_path is not None:
        label = Path(members_path).name
        headers, rows = read_table(Path(members_path))
        header_problems = _check_headers(label, headers, MEMBER_HEADERS)
        problems += header_problems
        if not header_problems:
            in_file = set(households) | _household_ids_in_file(households_path)
            wanted = {r.values.get("户编号", "") for r in rows} - in_file
            in_db = set(session.scalars(select(Household.id).where(Household.id.in_(wanted)))) if wanted else set()
            members = _parse_members(label, rows, in_file | in_db, problems)
    if problems:
        raise LedgerError(problems)

    report = ImportReport()
    added, updated, report.unchanged = _upsert(session, Household, Household.id, households, progress, "户")
    report.households_added, report.households_updated = added, updated
    added, updated, unchanged = _upsert(session, Member, Member.id_number, members, progress, "成员")
    report.members_added, report.members_updated = added, updated
    report.unchanged += unchanged
    return report


def _upsert(session: Session, model, key_column, rows: dict, progress: bool, unit: str) -> tuple:
    """Adds new rows and updates changed ones in place; (added, updated, unchanged)."""
    added = updated = unchanged = 0
    existing = _existing(session, model, key_column, list(rows))
    for key, values in _progress(rows.items(), progress, unit):
        current = existing.get(key)
        if current is None:
            session.add(model(**values))
            added += 1
        elif _assign(current, values):
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return added, updated, unchanged


def _household_ids_in_file(path: Path | None) -> set:
    """Household ids of a households file, good rows or bad: a bad household row must not also fail its members."""
    if path is None:
        return set()
    _, rows = read_table(Path(path))
    return {r.values.get("户编号", "") for r in rows if r.values.get("户编号")}


def _existing(session: Session, model, key_column, keys: List[str], chunk: int = 500) -> dict:
    found = {}
    for i in range(0, len(keys), chunk):
        for obj in session.scalars(select(model).where(key_column.in_(keys[i : i + chunk]))):
            found[getattr(obj, key_column.key)] = obj
    return found


def _assign(obj, values: dict) -> bool:
    """Sets the values that differ; True when anything changed."""
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def _progress(items, enabled: bool, unit: str) -> Iterator:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(list(items), desc=f"写入{unit}", unit=unit, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="导入安置户台账（户表和成员表，CSV 或 XLSX）")
    parser.add_argument("--households", type=Path, help="户表：" + ",".join(HOUSEHOLD_HEADERS))
    parser.add_argument("--members", type=Path, help="成员表：" + ",".join(MEMBER_HEADERS))
    parser.add_argument("--database-url", help="default: DATABASE_URL or the SQLite file under run/")
    parser.add_argument("--only-if-empty", action="store_true", help="do nothing when the database has households")
    args = parser.parse_args(argv)
    for path in (args.households, args.members):
        if path is not None and not path.is_file():
            print(f"找不到文件：{path}", file=sys.stderr)
            return 2
    migrate.upgrade(args.database_url)  # an older database gets the current schema first
    if args.only_if_empty:
        with db.session_scope(args.database_url) as session:
            if session.scalar(select(func.count()).select_from(Household)):
                print("数据库里已有台账，不导入示例数据。")
                return 0
    try:
        with db.session_scope(args.database_url) as session:
            report = import_ledger(session, args.households, args.members, progress=True)
    except LedgerError as e:
        print(f"导入失败，数据库没有任何改动。共{len(e.problems)}处问题：", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
