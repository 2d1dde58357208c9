"""Text as people send it, made safe to store and to write into any file format.

One cleaner on the way in (every door that stores user text calls ``clean_text``) and one
guard on the way out for spreadsheets (``safe_cell``), so a control character pasted from a
chat window or a formula typed into a description can never break or arm an export.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

# C0 and C1 control characters except tab, newline and carriage return; also the
# non-characters and lone surrogates that XML 1.0 and openpyxl refuse.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Zero-width and direction marks that make two equal names compare different.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# A spreadsheet reads a cell starting with one of these as a formula (or DDE payload).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def clean_text(value: object, *, max_len: int | None = None, multiline: bool = True) -> str:
    """Return ``value`` as text without control or invisible characters, trimmed.

    Parameters
    ----------
    value
        Anything; ``None`` gives "".
    max_len
        Cut to this many characters after cleaning.
    multiline
        Keep newlines (descriptions, notes); otherwise fold all whitespace to one space.
    """
    if value is None:
        return ""
    text = str(value)
    text = _CONTROL.sub("", text)
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n") if multiline else " ".join(text.split())
    text = text.strip()
    if max_len is not None:
        text = text[:max_len]
    return text


def starts_formula(text: str) -> bool:
    """Whether a spreadsheet would read this text as a formula."""
    return text.startswith(_FORMULA_START)


def safe_cell(value: object) -> object:
    """Return a value for a CSV cell that a spreadsheet shows as written, never a formula.

    Numbers, dates and ``None`` pass through; text is cleaned and, when it would start a
    formula, prefixed with an apostrophe (OWASP's advice for CSV). Excel writers keep the
    text as it is and mark the cell as a string instead (see the Excel writer).
    """
    if value is None or isinstance(value, bool | int | float | dt.date | dt.time):
        return value
    text = clean_text(value)
    if starts_formula(text):
        return "'" + text
    return text
