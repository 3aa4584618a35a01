"""Chinese text normalization, independent of Rasa: traditional → simplified (OpenCC), full-width → half-width (NFKC),
Chinese numerals → digits where they count something (三个月 → 3个月), emoji and stray spacing removed. Each output
character remembers which input character it came from, so entity offsets can follow the text.

`clean_input` is the first step of all: what every door applies to a resident's text before anything reads or stores
it (control characters, bidi overrides, zero-width characters and lone surrogates go; line breaks become spaces)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Dict, List, Tuple

from bot.identity import SURNAMES

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL = "零〇一二两三四五六七八九十百千万"
# measure words after which a numeral is a quantity. 次性 (一次性) and 家人 (一家人) are words, not counts.
_MEASURES = r"个月|个|月|年|元|块|岁|人|户|口|天|周|星期|次(?!性)|名|项|座|间|家(?!人)|倍|孩|娃|趟|亩"
_QUANTITY = re.compile(rf"[{_NUMERAL}]+(?=(?:{_MEASURES}))")
# a numeral counts only with a digit or 十 in it: a lone 万 / 千 / 百 is a word ("多少万元", "李万年")
_HAS_DIGIT = re.compile("[零〇一二两三四五六七八九十]")
# an amount said without a measure word: "给三百不", "八百五" (hundreds and thousands only: 十 alone is too common)
_AMOUNT = re.compile(
    "[一二两三四五六七八九][百千](?:[零〇一二两三四五六七八九][十百]?)*(?:[零〇一二两三四五六七八九])?"
)
# a single numeral right after a surname that starts the message or follows 叫/是/户主 is part of a name (王三元)
_NAME_START = re.compile(r"(?:^|[\s，,。:：;；、]|叫|是|户主|名字)$")
# pictographs, dingbats, flags, variation selectors, zero-width joiners and keycaps
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\U00002b00-\U00002bff"
    "\U0000fe00-\U0000fe0f\U0000200d\U000020e3\U0000231a-\U0000231b\U000023e9-\U000023fa]"
)
_CJK = r"\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
# a space with Chinese (or Chinese punctuation) on either side carries no meaning: voice input puts them anywhere
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def _invisible_table() -> Dict[int, str | None]:
    """What clean_input removes or replaces, by code point: control characters (C0, C1; the whitespace ones become a
    space), format characters (Cf: bidi embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069, marks,
    zero-width space and joiners, the BOM, tag characters), lone surrogates, and the line and paragraph separators."""
    table: Dict[int, str | None] = {}
    # all of them lie in planes 0, 1 and 14 (tags); reading the other planes would only slow the import down
    for code in (*range(0x20000), *range(0xE0000, 0xE1000)):
        category = unicodedata.category(chr(code))
        if category == "Cc":
            table[code] = " " if chr(code).isspace() else None
        elif category in ("Cf", "Cs"):
            table[code] = None
        elif category in ("Zl", "Zp"):
            table[code] = " "
    return table


_INVISIBLE = _invisible_table()


def clean_input(text: str) -> str:
    """A resident's text without what nobody means to type and what breaks what comes after (Rasa cannot store a lone
    surrogate; a right-to-left override or a NUL hides or garbles words in the staff console and the logs): control
    characters, bidi and zero-width characters, lone surrogates. Tabs and line breaks become spaces. Idempotent."""
    if text.isascii() and text.isprintable():
        return text
    return text.translate(_INVISIBLE)


def chinese_to_int(numeral: str) -> int | None:
    """三 → 3, 十二 → 12, 二十 → 20, 一百零五 → 105, 三万五千 → 35000.

    None when it is not a single number: 两三 (个月) and 五六 (个人) are ranges and stay as they are."""
    if not numeral or any(ch not in _NUMERAL for ch in numeral):
        return None
    if len(numeral) > 1 and all(ch in _DIGITS for ch in numeral):
        return None
    total, section, digit = 0, 0, None
    for ch in numeral:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            section += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
    return total + section + (digit or 0)


@dataclass
class Normalized:
    """Normalized text and, for each of its characters, the index of the character it came from."""

    text: str
    origin: List[int]

    def span(self, start: int, end: int) -> Tuple[int, int]:
        """Where the original span [start, end) lies in the normalized text."""
        new_start = next((i for i, o in enumerate(self.origin) if o >= start), len(self.text))
        new_end = max((i + 1 for i, o in enumerate(self.origin) if o < end), default=new_start)
        return new_start, max(new_start, new_end)


def _substitute(norm: Normalized, pattern: re.Pattern, replace) -> Normalized:
    """Apply re.sub while carrying each character's origin; a replacement inherits the origin of its match."""
    text, origin, pos = [], [], 0
    for m in pattern.finditer(norm.text):
        text.append(norm.text[pos : m.start()])
        origin.extend(norm.origin[pos : m.start()])
        new = replace(m)
        text.append(new)
        origin.extend([norm.origin[m.start()] if m.start() < len(norm.origin) else len(norm.origin)] * len(new))
        pos = m.end()
    text.append(norm.text[pos:])
    origin.extend(norm.origin[pos:])
    return Normalized("".join(text), origin)


class TextNormalizer:
    """The normalization itself, independent of Rasa so it can be reused and tested on its own."""

    def __init__(self, traditional_to_simplified: bool = True, numerals: bool = True, strip_emoji: bool = True):
        self.traditional_to_simplified = traditional_to_simplified
        self.numerals = numerals
        self.strip_emoji = strip_emoji
        self._opencc = None
        if traditional_to_simplified:
            import opencc

            self._opencc = opencc.OpenCC("t2s")

    def normalize(self, text: str) -> Normalized:
        chars, origin = [], []
        for i, ch in enumerate(text):
            out = unicodedata.normalize("NFKC", ch.translate(_INVISIBLE))
            chars.append(out)
            origin.extend([i] * len(out))
        norm = Normalized("".join(chars), origin)
        if self._opencc is not None:
            converted = self._opencc.convert(norm.text)
            if len(converted) != len(norm.text):
                # a phrase conversion changed the length: convert character by character to keep the offsets
                converted = "".join(self._opencc.convert(ch)[:1] or ch for ch in norm.text)
            norm = Normalized(converted, norm.origin)
        if self.strip_emoji:
            norm = _substitute(norm, _EMOJI, lambda m: "")
        norm = _substitute(norm, _SPACE_NEAR_CJK, lambda m: "")
        norm = _substitute(norm, re.compile(r"\s{2,}"), lambda m: " ")
        norm = _substitute(norm, re.compile(r"^\s+|\s+$"), lambda m: "")
        if self.numerals:
            text = norm.text
            norm = _substitute(norm, _QUANTITY, lambda m: _quantity(text, m))
            norm = _substitute(norm, _AMOUNT, lambda m: _numeral_to_digits(m.group(0)))
        return norm

    def __call__(self, text: str) -> str:
        return self.normalize(text).text


def _quantity(text: str, m: re.Match) -> str:
    numeral = m.group(0)
    if not _HAS_DIGIT.search(numeral):
        return numeral
    start = m.start()
    if len(numeral) == 1 and start >= 1 and text[start - 1] in SURNAMES and _NAME_START.search(text[: start - 1]):
        return numeral
    return _numeral_to_digits(numeral)


def _numeral_to_digits(numeral: str) -> str:
    value = chinese_to_int(numeral)
    return numeral if value is None else str(value)
