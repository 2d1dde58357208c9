"""Column parsers for the bulk import: each distinct value read once, numbers as arrays.

``imports.bulk`` reads a 100,000-row list column by column: ``factorize`` codes a column's
distinct values, ``coordinate_column`` reads degrees the way ``gis.crs.parse_coordinate``
reads one value (and words its errors for the odd ones), and ``Cached`` memoises a look-up
over a column's distinct values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gis.crs import parse_coordinate
from gis.errors import GisError

_SIMPLE_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"


def factorize(values: list) -> tuple[np.ndarray, list]:
    """Codes and distinct values of a column (None/NaN coded -1), hashing each once."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes, list(uniques)


def coordinate_column(
    values: list, *, label: str, low: float, high: float, rows: list[int], errors: dict[int, str]
) -> np.ndarray:
    """Degrees per row (NaN where empty or wrong), as ``parse_coordinate`` would read them."""
    out = np.full(len(values), np.nan)
    simple_idx, simple_text, other_idx = [], [], []
    for i, value in enumerate(values):
        if value is None or value == "":
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[i] = float(value)
        elif isinstance(value, str):
            simple_idx.append(i)
            simple_text.append(value)
        else:
            other_idx.append(i)
    if simple_idx:
        text = (
            pd.Series(simple_text, dtype=object)
            .str.strip()
            .str.replace("°", "", regex=False)
            .str.replace("，", ".", regex=False)
            .str.replace("。", ".", regex=False)
        )
        simple = text.str.fullmatch(_SIMPLE_NUMBER).to_numpy(dtype=bool)
        idx = np.asarray(simple_idx)
        out[idx[simple]] = pd.to_numeric(text[simple]).to_numpy(dtype=float)
        other_idx.extend(idx[~simple].tolist())
    bad = set(other_idx)
    with np.errstate(invalid="ignore"):
        wrong = ~np.isfinite(out) | (out < low) | (out > high)
    present = np.array([not (v is None or v == "") for v in values], dtype=bool)
    bad.update(np.flatnonzero(wrong & present).tolist())
    for i in sorted(bad):
        # The scalar parser reads the odd forms ("1e2", " 103.5° ") and words the errors.
        try:
            out[i] = parse_coordinate(
                values[i], field=f"第{rows[i]}行: {label}", low=low, high=high
            )
        except GisError as exc:
            out[i] = np.nan
            errors.setdefault(i, str(exc))
    return out


class Cached:
    """Memoise a one-argument look-up over a column's distinct values."""

    def __init__(self, fn):
        self.fn = fn
        self.seen: dict = {}

    def __call__(self, key):
        if key not in self.seen:
            self.seen[key] = self.fn(key)
        return self.seen[key]
