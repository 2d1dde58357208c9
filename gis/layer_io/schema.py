"""What a layer is made of: its kinds, their geometry types, its name and code columns.

Also the one cleaning of property text on the way in (``clean_prop_text``,
``clean_text``) and the plain value a writer stores for a list or dict (``plain_value``).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

KINDS = (
    "boundary",
    "roads",
    "pois",
    "buildings",
    "communities",
    "subdistricts",
    "grid",
    "water",
    "addresses",
)

_POLYGONAL = ("Polygon", "MultiPolygon")
_LINEAR = ("LineString", "MultiLineString")
_PUNCTUAL = ("Point", "MultiPoint")
# Geometry types each kind accepts.
KIND_TYPES: dict[str, tuple[str, ...]] = {
    "boundary": _POLYGONAL,
    "communities": _POLYGONAL,
    "subdistricts": _POLYGONAL,
    "grid": _POLYGONAL,
    "buildings": _POLYGONAL,
    "roads": _LINEAR,
    "pois": _PUNCTUAL + _POLYGONAL,  # areas (markets, schools) become a point with their outline
    "addresses": _PUNCTUAL,
    "water": _POLYGONAL + _LINEAR,
}
KIND_LABEL = {
    "boundary": "边界",
    "communities": "社区",
    "subdistricts": "街道/乡镇",
    "grid": "网格",
    "buildings": "建筑",
    "roads": "道路",
    "pois": "兴趣点",
    "addresses": "地址点",
    "water": "水系",
}
TYPE_LABEL = {"面": _POLYGONAL, "线": _LINEAR, "点": _PUNCTUAL}

NAME_COLUMNS = ("name", "NAME", "Name", "名称", "mc", "MC", "路名", "网格名称", "地名", "名字")
CODE_COLUMNS = ("code", "CODE", "Code", "网格编码", "编码", "代码", "wgbm", "WGBM", "bm", "BM")


def find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """Return the first of ``candidates`` among ``columns`` (exact, else ignoring case).

    Parameters
    ----------
    columns : list of str
        The layer's columns.
    candidates : tuple of str
        Names in order of preference (``NAME_COLUMNS``, ``CODE_COLUMNS``).

    Returns
    -------
    str or None
        The column as the layer spells it; None when there is none.
    """
    for cand in candidates:
        if cand in columns:
            return cand
    lowered = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lowered:
            return lowered[cand.lower()]
    return None


# C0/C1 controls (tab and newline kept), lone surrogates, non-characters, and the
# zero-width/direction marks that make two equal names differ: the same set
# app.services.core.text.clean_text strips (gis/ cannot import app).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def clean_prop_text(value: str) -> str:
    """Return a feature's text without control or invisible characters, trimmed.

    Parameters
    ----------
    value : str
        A name or property value as the file carries it.

    Returns
    -------
    str
        The text with carriage returns folded into newlines and the characters above
        removed (a ``\\x07`` pasted into a name never reaches the database or an export).
    """
    text = _INVISIBLE.sub("", _CONTROL.sub("", value))
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def clean_text(value: object) -> str | None:
    """Return a property value as clean text, or None when it is missing or blank.

    Parameters
    ----------
    value : object
        A cell of the layer: text, a number (a float code loses its ``.0``), NaN or NA.

    Returns
    -------
    str or None
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        # A numeric code column: 3.60681001001001e14 must become "360681001001001".
        if value.is_integer():
            return str(int(value))
    if isinstance(value, np.floating):
        return clean_text(float(value))
    if value is pd.NA or value is pd.NaT:
        return None
    text = clean_prop_text(str(value))
    return text or None


def plain_value(value: object) -> object:
    """Return a value a GDAL driver can store: lists, tuples, dicts and sets as text."""
    if isinstance(value, list | tuple | dict | set):
        return str(value)
    return value
