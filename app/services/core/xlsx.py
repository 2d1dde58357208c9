"""The one way to put a value into an openpyxl cell: text stays text, never a formula.

openpyxl turns any string starting with ``=`` into a live formula and refuses control
characters with ``IllegalCharacterError`` (a 500 for the whole export). Every Excel writer
goes through ``text_cell`` / ``write_row``: strings are cleaned with
``app.services.core.text.clean_text`` and the cell is marked as a string (``data_type = "s"``),
so the saved sheet holds the text exactly as typed (``=HYPERLINK(...)`` shows as written)
and no ``<f>`` element is ever emitted for user text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from app.services.core.text import clean_text

__all__ = ["text_cell", "write_row", "cell_value"]


def cell_value(value: object) -> object:
    """Return ``value`` as openpyxl may store it: numbers and dates as is, the rest clean text.

    Parameters
    ----------
    value
        Anything; ``None`` stays empty, ``bool``/``int``/``float``/dates pass through and
        every other value becomes cleaned text.
    """
    if value is None or isinstance(value, bool | int | float | dt.date | dt.time | dt.timedelta):
        return value
    return clean_text(value)


def text_cell(ws: Any, row: int, column: int, value: object) -> Any:
    """Write one value into ``ws`` at (row, column) as plain data and return the cell.

    Parameters
    ----------
    ws
        An openpyxl worksheet.
    row, column
        1-based position.
    value
        The value; strings are cleaned and stored as strings, never as formulas.
    """
    cell = ws.cell(row=row, column=column)
    value = cell_value(value)
    cell.value = value
    if isinstance(value, str):
        # Assigning a string starting with "=" made it a formula; mark it text again.
        cell.data_type = "s"
    return cell


def write_row(ws: Any, values: Iterable[object], *, row: int | None = None) -> int:
    """Write ``values`` as one row (after the last one unless ``row`` is given).

    Parameters
    ----------
    ws
        An openpyxl worksheet.
    values
        The row's values, left to right from column A.
    row
        1-based row to write; by default the row ``ws.append`` would use (row 1 on a new sheet).

    Returns
    -------
    int
        The row number written.
    """
    if row is None:
        # The same row ``ws.append`` would use (0 on a fresh sheet, so row 1).
        row = getattr(ws, "_current_row", ws.max_row) + 1
    for column, value in enumerate(values, start=1):
        text_cell(ws, row, column, value)
    return row
