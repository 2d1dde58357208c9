"""Property-based tests (hypothesis) on the three parsers that take free input from people:
the address parser, coordinate conversion and the spreadsheet importer."""

from __future__ import annotations

import contextlib
import csv
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.models import Issue
from app.services.core.errors import ServiceError
from gis.address import ParsedAddress, normalize_address, parse_address
from gis.crs import (
    bd09_to_wgs84,
    gcj02_to_wgs84,
    parse_coordinate,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from gis.errors import GisError

FIXTURE_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- addresses ---------------------------------------------------------------------------

ADDRESS_PARTS = [
    "文山",
    "州",
    "县城",
    "人民路",
    "建设路",
    "与",
    "交叉口",
    "东北角",
    "西南侧",
    "口",
    "号",
    "附近",
    "农贸市场",
    "内",
    "门口",
    "旁",
    "对面",
    "北门",
    "小区",
    "至",
    "段",
    "巷",
    "街",
    "一",
    "二十三",
    "１２",
    "88",
    "（",
    "）",
    "(",
    ")",
    " ",
    "　",
    "、",
    ",",
    "，",
    "#",
    "-",
    "Ａ",
    "\u200b",
    "\n",
]
address_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(ADDRESS_PARTS), max_size=12).map("".join),
)


@given(address_text)
@settings(max_examples=300, deadline=None)
def test_normalize_address_never_raises_and_is_idempotent(text):
    once = normalize_address(text)
    assert isinstance(once, str)
    assert normalize_address(once) == once


@given(address_text)
@settings(max_examples=300, deadline=None)
def test_parse_address_never_raises_and_agrees_with_normalize(text):
    parsed = parse_address(text)
    assert isinstance(parsed, ParsedAddress)
    assert parsed.kind in {"intersection", "segment", "house_number", "poi", "road", "unknown"}
    assert parsed.raw == text
    assert parsed.normalized == normalize_address(text)
    # parsing the normalised text finds the same thing: normalising loses nothing it uses
    again = parse_address(parsed.normalized)
    assert (again.kind, again.road, again.cross_road, again.number, again.poi) == (
        parsed.kind,
        parsed.road,
        parsed.cross_road,
        parsed.number,
        parsed.poi,
    )
    if parsed.number is not None:
        assert parsed.number >= 0


# ---- coordinates -------------------------------------------------------------------------

# Mainland China, where the GCJ-02 offset applies (outside it the offset is zero).
china_lon = st.floats(min_value=75.0, max_value=134.0, allow_nan=False)
china_lat = st.floats(min_value=18.5, max_value=53.0, allow_nan=False)


@given(china_lon, china_lat)
@settings(max_examples=500, deadline=None)
def test_gcj02_round_trip_within_1e6_degrees(lon, lat):
    glon, glat = wgs84_to_gcj02(lon, lat)
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    assert abs(float(back_lon) - lon) < 1e-6
    assert abs(float(back_lat) - lat) < 1e-6
    # the offset itself is real (hundreds of metres at most, never zero inside China)
    assert 0 < abs(float(glon) - lon) + abs(float(glat) - lat) < 0.02


@given(china_lon, china_lat)
@settings(max_examples=500, deadline=None)
def test_bd09_round_trip_within_1e6_degrees(lon, lat):
    blon, blat = wgs84_to_bd09(lon, lat)
    back_lon, back_lat = bd09_to_wgs84(blon, blat)
    assert abs(float(back_lon) - lon) < 1e-6
    assert abs(float(back_lat) - lat) < 1e-6


@given(
    st.lists(st.tuples(china_lon, china_lat), min_size=1, max_size=20),
    st.sampled_from(["wgs84", "gcj02", "bd09", "GCJ-02", "BD09"]),
)
@settings(max_examples=100, deadline=None)
def test_to_wgs84_vectorised_matches_scalar(points, source):
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    vlon, vlat = to_wgs84(lon, lat, source=source)
    for i, (x, y) in enumerate(points):
        slon, slat = to_wgs84(x, y, source=source)
        assert float(slon) == pytest.approx(vlon[i], abs=1e-12)
        assert float(slat) == pytest.approx(vlat[i], abs=1e-12)


@given(st.one_of(st.text(max_size=20), st.floats(), st.integers(), st.booleans(), st.none()))
@settings(max_examples=300, deadline=None)
def test_parse_coordinate_returns_in_range_or_names_the_field(value):
    try:
        number = parse_coordinate(value, field="经度", low=73.0, high=136.0)
    except GisError as exc:
        assert "经度" in str(exc)
    else:
        assert 73.0 <= number <= 136.0


# ---- spreadsheet importer ----------------------------------------------------------------

HEADERS = [
    "序号",
    "问题描述",
    "问题地点",
    "问题类别",
    "责任单位",
    "发现时间",
    "整改时限",
    "经度",
    "纬度",
    "来源",
    "备注",
    "坐标系",
    "存在问题",
    "位置",
    "lon",
    "lat",
    "",
    "检查组",
    "联系人",
]
cell_value = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "0302",
            "03",
            "9999",
            "人民路与建设路交叉口",
            "103.5015",
            "22.7995",
            "2024-05-06",
            "2024年5月6日",
            "45417",
            "7个工作日",
            "立行立改",
            "gcj02",
            "州级交叉检查",
            "12345",
            "西区单位",
            "abc",
            "１２３",
            "-1",
            "1e400",
            "=1+1",
        ]
    ),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def tables(draw):
    width = draw(st.integers(min_value=1, max_value=7))
    headers = draw(
        st.lists(
            st.one_of(st.sampled_from(HEADERS), st.text(max_size=6)), min_size=width, max_size=width
        )
    )
    rows = draw(st.lists(st.lists(cell_value, min_size=width, max_size=width), max_size=6))
    title = draw(st.booleans())
    return ([["州级交叉检查反馈问题清单"]] if title else []) + [headers] + rows


def _csv_bytes(rows, encoding: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue().encode(encoding, errors="replace")


def _xlsx_bytes(rows) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in rows:
        clean = []
        for v in row:
            if isinstance(v, float) and not np.isfinite(v):
                v = str(v)
            if isinstance(v, str):
                # openpyxl refuses control characters a real workbook cannot hold
                v = "".join(ch for ch in v if ch >= " " or ch in "\t\n\r")
            clean.append(v)
        ws.append(clean)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _table_file(rows, kind: str) -> tuple[bytes, str]:
    if kind == "xlsx":
        return _xlsx_bytes(rows), "清单.xlsx"
    return _csv_bytes(rows, "gbk" if kind == "csv-gbk" else "utf-8"), "清单.csv"


FILE_KINDS = st.sampled_from(["csv", "csv-gbk", "xlsx"])


@given(tables(), FILE_KINDS)
@settings(max_examples=150, deadline=None)
def test_read_table_raises_only_service_errors(rows, kind):
    from app.services.core.tabular import read_table

    data, name = _table_file(rows, kind)
    try:
        records = read_table(data, name)
    except ServiceError as exc:
        assert str(exc)  # a message for the user, never an empty one
        return
    assert isinstance(records, list)
    for record in records:
        assert isinstance(record["_row"], int) and record["_row"] >= 1


@given(st.binary(max_size=300), st.sampled_from(["x.csv", "x.xlsx", "x.xls", "x.txt"]))
@settings(max_examples=100, deadline=None)
def test_read_table_on_garbage_bytes_raises_only_service_errors(data, name):
    from app.services.core.tabular import read_table

    try:
        read_table(data, name)
    except ServiceError as exc:
        assert str(exc)


@pytest.fixture()
def town(factory):
    return factory.town()


def _issues(session) -> int:
    return session.execute(select(func.count()).select_from(Issue)).scalar_one()


@given(tables(), FILE_KINDS)
@FIXTURE_SETTINGS
def test_import_is_all_or_nothing(app, session, town, rows, kind):
    from app.services.imports.sheet import import_file

    admin = town["users"]["admin"]
    data, name = _table_file(rows, kind)
    assume(_issues(session) == 0)
    try:
        _sheet, result = import_file(session, admin, data, name)
    except ServiceError:
        session.rollback()
        assert _issues(session) == 0
        return
    try:
        written = _issues(session)
        if result.aborted:
            assert written == 0 and result.rejected
        else:
            assert written == result.imported == len(result.issue_ids)
            assert result.imported == result.placed + result.queued
            assert not result.rejected
    finally:
        session.rollback()
    assert _issues(session) == 0


@pytest.mark.parametrize("data", [b"\r", b"a\rb\n", b'"x\ry"\r\nz', b"\x00\r\n\r"])
def test_stray_carriage_returns_in_a_csv_are_not_a_crash(data):
    from app.services.core.errors import ServiceError
    from app.services.core.tabular import read_table

    # A clear refusal is fine; a csv.Error escaping is not.
    with contextlib.suppress(ServiceError):
        read_table(data, "x.csv")
