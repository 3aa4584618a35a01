"""Masking of ID and phone numbers wherever a person or a log can see them. Pure functions plus a logging filter."""

from __future__ import annotations

import logging
import re

# an 18-character ID number anywhere in free text (not inside a longer run of digits; letters glued to it do not
# make it anything else: "ID110101199003077578", "110101199003077578号码abc")
_ID_IN_TEXT = re.compile(r"(?<![0-9])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9])")
# a mainland mobile number
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
# what a resident types to verify: the last 6 characters of an ID number, alone or among other words
VERIFICATION_CODE = re.compile(r"(?<![0-9A-Za-z])\d{5}[\dXx](?![0-9A-Za-z])")
# the same, but not the region part of an ID number that is already masked (140929************)
_CODE_NOT_MASKED_ID = re.compile(r"(?<![0-9A-Za-z])\d{5}[\dXx](?![0-9A-Za-z*])")


def mask_id(value: str) -> str:
    """140929xxxxxxxxxxxx → 140929************: only the region part (the first 6) stays. Nothing of the birth date,
    and none of the last 6 characters residents verify with, is ever shown."""
    value = (value or "").strip()
    if len(value) <= 12:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 6)


def mask_phone(value: str) -> str:
    """13812345678 → 138****5678; landlines keep their first 3 and last 4 digits the same way."""
    value = (value or "").strip()
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


# digits as people type them: with spaces, dashes or dots between, full-width, a +86 in front of a phone number
_SPACED_RUN = re.compile(r"(?:\+?86[\s\-.]{0,3})?[0-9０-９](?:[\s\-.·]{0,3}[0-9０-９XxＸｘ])+")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# JSON logs write 证 as \u8bc1: its hex digits must not glue onto the number that follows
_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")


_ASCII_WORD = frozenset("0123456789abcdefghijklmnopqrstvwxyzABCDEFGHIJKLMNOPQRSTVWXYZ")  # u/U: escapes, see above


def _digits(run: str) -> str:
    out = []
    for ch in run:
        if ch in "XxＸｘ":
            out.append("X")
        elif ch.isdigit():
            out.append(str(int(ch)))
    return "".join(out)


def _mask_run(run: str) -> str | None:
    """The masked form of a run of digits typed with separators, if it is an ID, a phone or a code; else None."""
    digits = _digits(run)
    if run.lstrip().startswith(("+86", "86")) and len(digits) == 13 and digits[2] == "1":
        return "+86 " + mask_phone(digits[2:])
    if len(digits) == 18 and digits[:17].isdigit():
        return mask_id(digits)
    if len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789" and digits.isdigit():
        return mask_phone(digits)
    if len(digits) == 6 and digits[:5].isdigit():
        return "******"
    return None


def _shade(text: str) -> str:
    """The text with each JSON escape (\\u8bc1) turned into as many letters, so its hex digits glue onto nothing."""
    return _ESCAPE.sub(lambda m: "u" * len(m.group(0)), text) if "\\u" in text else text


def mask_text(text: str) -> str:
    """Masks every ID number, mobile number and 6-character verification code in free text, however it is typed:
    the numbers are found on a shadow of the text where escapes like \\u8bc1 count as letters, and digits typed
    with spaces, dashes or dots between them count as one number. Runs on every log record: one shadow per text."""
    if not text:
        return text
    shadow = _shade(text)
    out, pos = [], 0
    for m in _SPACED_RUN.finditer(shadow):
        start, end = m.span()
        before, after = shadow[start - 1] if start else "", shadow[end] if end < len(shadow) else ""
        if before.isdigit() or after.isdigit() or after == "*":
            continue  # inside a longer number, or the region part of an ID number already masked
        if _IPV4.fullmatch(text[start:end]):
            continue  # 127.0.0.1 in a log line is an address, not a code typed with dots
        masked = _mask_run(text[start:end])
        if masked is None:
            continue
        if (before in _ASCII_WORD or after in _ASCII_WORD) and "*" * 12 not in masked:
            continue  # a short number inside a word (a code, a phone) is left to the plain patterns below; an ID never
        out.append(text[pos:start] + masked)
        pos = end
    if out:
        text = "".join(out) + text[pos:]
        shadow = _shade(text)
    # the masks below keep the length, so one shadow serves all three (masked digits stay digits or stars in it)
    for pattern, replace in ((_ID_IN_TEXT, mask_id), (_PHONE_IN_TEXT, mask_phone), (_CODE_NOT_MASKED_ID, _code_mask)):
        spans = [m.span() for m in pattern.finditer(shadow)]
        for start, end in spans:
            masked = replace(text[start:end])
            text = text[:start] + masked + text[end:]
            shadow = shadow[:start] + masked + shadow[end:]
    return text


def _code_mask(code: str) -> str:
    return "*" * len(code)


class MaskingFilter(logging.Filter):
    """Masks personal numbers in every record that passes through a handler (messages and their arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    """Adds MaskingFilter to every handler of the root logger (and to the root logger's future records)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
    if not any(isinstance(f, MaskingFilter) for f in root.filters):
        root.addFilter(MaskingFilter())


# the action sends this as a custom message after a turn that showed household data; the web doors strip it, flag
# that turn's replies "private", and the pages keep such turns out of browser storage
PRIVATE_REPLY_MARK = {"anju": "private"}
# ... and this after a turn that ended a verified check (退出): the pages then clear what they showed
FORGOTTEN_REPLY_MARK = {"anju": "forget"}
