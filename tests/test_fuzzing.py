"""Property-based fuzzing (hypothesis) of the code that reads what people type: the input cleaner and the normalizer,
the place resolver, the identity parser and masking, and the ledger importer's readers. Any text, any bytes: no
exception escapes but the module's own, and what comes out keeps the module's promises. Each bug these found has its
example pinned below the property that found it."""

import datetime as dt
import io
import unicodedata
import uuid
import zipfile

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import importer
from bot.identity import IdentityAnswer, InvalidIdNumber, make_id_number, parse_id_number, parse_identity_answer
from bot.importer import HOUSEHOLD_HEADERS, MEMBER_HEADERS, LedgerError, Row
from bot.privacy import mask_text
from bot.text_normalization import TextNormalizer, clean_input

BOUNDED = settings(max_examples=200, deadline=None)
# every code point, lone surrogates and control characters included (st.text() leaves surrogates out by default)
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=60)
# what residents send, with the invisible and the awkward mixed in
RESIDENT_PIECES = st.sampled_from(
    list("我家张三王三元后六位身份证号码一二两三十百千万个月年元块岁人户次性在去太原县城省外打工補貼們學")
    + ["\u200b", "\u200d", "\u202e", "\u2066", "\u2069", "\ufeff", "\x00", "\x07", "\x1b", "\x85", "\x9b", "\ud800"]
    + ["\n", "\t", "\r\n", " ", "\u3000", "，", "。", "?", "？", "😀", "👍🏻", "ＡＢＣ", "１２３", "㈠", "⑴", "ﬁ"]
)
RESIDENT_TEXT = st.lists(RESIDENT_PIECES, max_size=20).map("".join)
TEXTS = st.one_of(ANY_TEXT, RESIDENT_TEXT)


def visible(ch):
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")


# ---------------------------------------------------------------- the input cleaner


@pytest.mark.parametrize(
    "typed, clean",
    [
        ("医保\x00在哪交", "医保在哪交"),  # NUL
        ("我家\u202e交通补贴", "我家交通补贴"),  # right-to-left override
        ("\u2066张三\u2069 125447", "张三 125447"),  # isolates
        ("张\u200b三", "张三"),  # zero-width space inside a name
        ("\ufeff你好", "你好"),  # a BOM pasted in front
        ("补贴\ud800", "补贴"),  # a lone surrogate (JSON lets "\ud800" through)
        ("第一行\n第二行\t第三\r\n行", "第一行 第二行 第三  行"),  # line breaks and tabs become spaces
        ("\x1b[31m红色\x1b[0m", "[31m红色[0m"),  # a terminal escape loses its ESC
        ("\x85\x9b", " "),  # C1: NEL is a line break, CSI is nothing
        ("　全角空格　", "　全角空格　"),  # ideographic spaces are text: the normalizer folds them
        ("👨\u200d👩\u200d👧", "👨👩👧"),
    ],
)
def test_clean_input_removes_what_nobody_means_to_type(typed, clean):
    assert clean_input(typed) == clean


@BOUNDED
@given(TEXTS)
def test_clean_input_leaves_only_visible_text_and_is_idempotent(text):
    cleaned = clean_input(text)
    assert all(visible(ch) for ch in cleaned)
    assert clean_input(cleaned) == cleaned
    assert len(cleaned) <= len(text)
    cleaned.encode("utf-8")  # storable: no lone surrogate left
    # every visible character survives, in order; the only thing added is a space for a line break or a tab
    assert [ch for ch in cleaned if ch != " "] == [ch for ch in text if visible(ch) and ch != " "]


@BOUNDED
@given(st.text(st.characters(whitelist_categories=("L", "M", "N", "P", "S", "Zs")), max_size=60))
def test_clean_input_keeps_visible_text_exactly(text):
    assert clean_input(text) == text


# ---------------------------------------------------------------- the normalizer

NORMALIZE = TextNormalizer()


@BOUNDED
@given(TEXTS)
@example("三\u200b个月")  # the zero-width space used to keep 三 from being read as a count
def test_normalizer_never_fails_and_keeps_its_offsets(text):
    norm = NORMALIZE.normalize(text)
    assert len(norm.origin) == len(norm.text)
    assert norm.origin == sorted(norm.origin)  # characters stay in order
    assert all(0 <= o < len(text) for o in norm.origin)
    assert clean_input(norm.text) == norm.text  # nothing invisible reaches the NLU
    assert norm.text == norm.text.strip()
    for start in range(0, len(text) + 1, 7):
        new_start, new_end = norm.span(start, min(len(text), start + 3))
        assert 0 <= new_start <= new_end <= len(norm.text)


@BOUNDED
@given(TEXTS)
def test_normalizing_twice_changes_nothing(text):
    once = NORMALIZE(text)
    assert NORMALIZE(once) == once


def test_the_normalizer_drops_control_and_bidi_characters():
    assert NORMALIZE("医保\x00在\u202e哪交") == "医保在哪交"
    assert NORMALIZE("干了三\u200b个月") == "干了3个月"


# ---------------------------------------------------------------- the place resolver


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from policies.place_resolver import PlaceResolver

    storage = LocalModelStorage.create(tmp_path_factory.mktemp("model"))
    context = ExecutionContext(GraphSchema({}), uuid.uuid4().hex)
    component = PlaceResolver.create(PlaceResolver.get_default_config(), storage, Resource("places"), context)
    component.train(TrainingData())
    return component


PLACE_PIECES = st.sampled_from(
    [
        "太原",
        "内蒙古",
        "县城",
        "岢岚",
        "宋家沟",
        "鄂尔多斯",
        "北京",
        "省外",
        "外省",
        "在",
        "去",
        "打工",
        "上班",
        "老家",
        "的",
    ]
    + ["，", " ", "\n", "\u200b", "\u202e", "\x00", "😀", "\ud800", "呢", "我儿子"]
)


def test_a_lone_surrogate_does_not_break_the_place_resolver(resolver):
    """spaCy raised UnicodeEncodeError on "\\ud800", failing the whole NLU pipeline."""
    assert resolver.resolve("\ud800在太原打工")[2] == "县外省内"


@settings(max_examples=200, deadline=None)
@given(st.one_of(ANY_TEXT, st.lists(PLACE_PIECES, max_size=10).map("".join)))
def test_the_place_resolver_takes_any_text(resolver, text):
    from policies.place_resolver import REGIONS

    matches, work, region = resolver.resolve(text)
    for m in matches:
        assert text[m.start : m.end] == m.text  # offsets point into the text as given
    assert work is None or work in matches
    assert (work is None) == (region is None) and (region is None or region in REGIONS)


# ---------------------------------------------------------------- identity: ID numbers and what residents type

IDS = st.builds(
    make_id_number,
    st.from_regex(r"\A[1-6][0-9]{5}\Z"),
    st.dates(dt.date(1920, 1, 1), dt.date(2020, 12, 31)),
    st.from_regex(r"\A[0-9]{3}\Z"),
)
FULL_WIDTH = dict(zip("0123456789X", "０１２３４５６７８９Ｘ", strict=True))


@BOUNDED
@given(IDS, st.booleans())
def test_an_id_number_parses_to_ascii_however_typed(number, full_width):
    typed = "".join(FULL_WIDTH[ch] for ch in number) if full_width else number.lower()
    assert parse_id_number(typed).value == number


def test_an_id_number_in_full_width_digits_is_stored_in_ascii():
    """Full-width digits passed the shape check (\\d is any digit) and were stored as typed, so the verification code
    residents type in ASCII never matched; with a correct check digit other than X they got "校验位不对"."""
    number = "14092919580307005X"
    assert parse_id_number("１４０９２９１９５８０３０７００５X").value == number
    assert parse_id_number("１４０９２９１９５８０３０７０４２０").value == "140929195803070420"
    with pytest.raises(InvalidIdNumber, match="18位"):
        parse_id_number("١٤٠٩٢٩١٩٥٨٠٣٠٧٠٠٥X")  # Arabic-Indic digits, which int() reads too


@BOUNDED
@given(TEXTS)
def test_parse_id_number_raises_only_its_own_error(text):
    try:
        value = parse_id_number(text).value
    except InvalidIdNumber as e:
        assert str(e)  # a reason in Chinese
    else:
        assert value.isascii() and len(value) == 18


@BOUNDED
@given(TEXTS)
def test_any_text_gives_a_well_formed_identity_answer(text):
    answer = parse_identity_answer(text)
    assert isinstance(answer, IdentityAnswer)
    assert answer.code is None or (answer.code.isascii() and len(answer.code) == 6)
    assert answer.name is None or all(visible(ch) for ch in answer.name)


# ---------------------------------------------------------------- masking

# the separators masking promises to see through (spaces, dashes, dots; up to three in a row), and full-width digits
SEPARATORS = st.sampled_from(["", "", "", " ", "-", ".", "·", "  ", " - ", "\u3000"])
# words around a number: no digits (they would be left as they are), letters glued to it included
WORDS_AROUND = list("身份证号码是我家户主张三，。:：；!? （）【】\"'“”\n😀后六位IDabcYZ") + ["\\u8bc1"]
AROUND = st.lists(st.sampled_from(WORDS_AROUND), max_size=8).map("".join)


@st.composite
def typed_ids(draw):
    number = draw(IDS)
    chars = []
    for ch in number:
        if chars:
            chars.append(draw(SEPARATORS))
        chars.append(FULL_WIDTH[ch] if draw(st.integers(0, 3)) == 0 else ch)
    return number, "".join(chars)


def digits_in(text):
    return "".join(ch for ch in (unicodedata.normalize("NFKC", c) for c in text) if ch in "0123456789")


@settings(max_examples=300, deadline=None)
@given(typed_ids(), AROUND, AROUND)
@example(("110101199003077578", "110101199003077578"), "ID", "")  # letters glued before it
@example(("110101199003077578", "110101199003077578"), "", "abc")  # ... or after it
@example(("140929195803070420", "1409 - 2919 - 5803 - 0704 - 20"), "", "")  # dashes with spaces around
def test_masking_leaves_no_digit_of_an_id_but_its_region(typed, before, after):
    number, written = typed
    masked = mask_text(before + written + after)
    assert digits_in(masked.replace("\\u8bc1", "")) in ("", number[:6]), masked
    assert mask_text(masked) == masked


# ---------------------------------------------------------------- the ledger importer

CELLS = st.one_of(
    st.text(max_size=20),
    ANY_TEXT,
    st.sampled_from(["2019", "２０１９", "1_990", "١٩٩٠", "²", "9" * 5000, " 3 ", "-0", "+5", "12.0", "是", "否"]),
    st.sampled_from(
        ["省外", "脱贫户", "监测中", "普通居民", "初中", "14092919580307042X", "１４０９２９１９５８０３０７０４２Ｘ"]
    ),
)


@BOUNDED
@given(st.fixed_dictionaries({h: CELLS for h in HOUSEHOLD_HEADERS}))
def test_a_household_row_is_parsed_or_listed_as_a_problem(values):
    problems = []
    parsed = importer._parse_households("户.csv", [Row(2, values)], problems)
    assert bool(parsed) != bool(problems)
    assert all(p.startswith("户.csv 第2行：") for p in problems)
    for row in parsed.values():
        assert row["head_id_number"].isascii()
        assert row["relocation_year"] is None or 1980 <= row["relocation_year"] <= dt.date.today().year


@BOUNDED
@given(st.fixed_dictionaries({h: CELLS for h in MEMBER_HEADERS}))
def test_a_member_row_is_parsed_or_listed_as_a_problem(values):
    problems = []
    parsed = importer._parse_members("成员.csv", [Row(2, values)], {values["户编号"]}, problems)
    assert bool(parsed) != bool(problems)
    for row in parsed.values():
        assert row["id_number"].isascii() and 0 <= row["months_employed"] <= 12


@pytest.mark.parametrize("year", ["1_990", "١٩٩٠", "2,019"])
def test_a_year_is_digits_only(year):
    """int() takes 1_990 and Arabic-Indic digits: the ledger should say what is wrong instead."""
    values = dict.fromkeys(HOUSEHOLD_HEADERS, "")
    values.update({"户编号": "H1", "户主姓名": "张三", "户主身份证号": "14092919580307005X", "安置点": "阳坪"})
    values.update({"户类型": "脱贫户", "监测状态": "未纳入", "搬迁年份": year})
    problems = []
    assert importer._parse_households("户.csv", [Row(2, values)], problems) == {}
    assert "搬迁年份" in problems[0]
    values["搬迁年份"] = "２０１９"  # full-width digits, as an input method types them, are digits
    assert importer._parse_households("户.csv", [Row(2, values)], [])["H1"]["relocation_year"] == 2019


def test_invisible_characters_are_dropped_from_ledger_cells(tmp_path):
    """A name pasted with a zero-width space would be stored as is and never match what the resident types."""
    path = tmp_path / "户.csv"
    path.write_text(
        ",".join(HOUSEHOLD_HEADERS) + "\nH1,张\u200b三\u202e,14092919580307005X\x07,阳坪\n", encoding="utf-8"
    )
    _, [row] = importer.read_table(path)
    assert row.values["户主姓名"] == "张三" and row.values["户主身份证号"] == "14092919580307005X"


@BOUNDED
@given(st.one_of(st.binary(max_size=300), TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(b"\x00")  # the csv module raised _csv.Error: line contains NUL
@example(("户编号," + "问" * 140_000).encode())  # ... and "field larger than field limit"
def test_a_csv_file_is_a_table_or_a_ledger_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("csv") / "户.csv"
    path.write_bytes(raw)
    try:
        headers, rows = importer.read_table(path)
    except LedgerError as e:
        assert e.problems and all("户.csv" in p or "编码" in p for p in e.problems)
    else:
        assert all(clean_input(h) == h for h in headers)


def _zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


XLSX_PARTS = st.sampled_from(["[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "_rels/.rels"])


@BOUNDED
@given(st.one_of(st.binary(max_size=200), st.dictionaries(XLSX_PARTS, st.binary(max_size=80), max_size=4).map(_zipped)))
@example(b"")
@example(_zipped({"[Content_Types].xml": b""}))  # an XML parse error from inside openpyxl
def test_a_damaged_xlsx_file_is_a_ledger_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("xlsx") / "成员.xlsx"
    path.write_bytes(raw)
    with pytest.raises(LedgerError, match="成员.xlsx：不是能打开的 XLSX 文件"):
        importer.read_table(path)
