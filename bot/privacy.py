"""Masking of ID and phone numbers wherever a person or a log can see them. Pure functions plus a logging filter."""

from __future__ import annotations

import logging
import re

# an 18-character ID number anywhere in free text (not inside a longer run of digits)
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
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


def mask_text(text: str) -> str:
    """Masks every ID number, mobile number and 6-character verification code in free text."""
    if not text:
        return text
    text = _ID_IN_TEXT.sub(lambda m: mask_id(m.group(0)), text)
    text = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
    return _CODE_NOT_MASKED_ID.sub("******", text)


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
