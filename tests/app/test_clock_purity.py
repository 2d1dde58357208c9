"""Every day boundary is the county's: no server-clock reads anywhere under app/.

``date.today()``, ``datetime.today()``, ``datetime.now()`` without a time zone and
``datetime.utcnow()`` give the server's (or UTC's) date, which between 16:00 and 24:00 UTC
is already yesterday for the county. Use ``app.models.today_local()`` / ``now_local()``.
"""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"


def _is_name(node: ast.AST, *names: str) -> bool:
    """``date`` / ``datetime`` as a bare name or as ``datetime.date`` / ``dt.datetime``."""
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and node.attr in names


def _server_clock_calls(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func, attr = node.func, node.func.attr
        if attr in ("utcnow", "utcfromtimestamp"):
            found.append((node.lineno, f"{attr}()"))
        elif attr == "today" and _is_name(func.value, "date", "datetime"):
            found.append((node.lineno, "today()"))
        elif attr == "now" and _is_name(func.value, "datetime"):
            tz = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg == "tz"), None
            )
            if tz is None or (isinstance(tz, ast.Constant) and tz.value is None):
                found.append((node.lineno, "datetime.now() without tz"))
    return found


def test_app_never_reads_the_server_clock():
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        for line, what in _server_clock_calls(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(APP.parent)}:{line}: {what}")
    assert offenders == [], "use app.models.today_local()/now_local():\n" + "\n".join(offenders)


def test_the_walk_would_catch_every_form():
    sample = "\n".join(
        [
            "import datetime as dt",
            "from datetime import date, datetime",
            "a = date.today()",
            "b = datetime.now()",
            "c = datetime.utcnow()",
            "d = dt.date.today()",
            "e = dt.datetime.now(tz=None)",
            "f = datetime.today()",
            "ok1 = datetime.now(COUNTY_TZ)",
            "ok2 = datetime.now(tz=UTC)",
            "ok3 = today_local()",
        ]
    )
    assert [line for line, _ in _server_clock_calls(sample)] == [3, 4, 5, 6, 7, 8]
