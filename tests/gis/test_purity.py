"""gis/ is the pure geometry core: it must never import the web app or the database."""

import ast
import sys
from pathlib import Path

GIS = Path(__file__).resolve().parents[2] / "gis"
ALLOWED_THIRD_PARTY = {
    "numpy", "pandas", "shapely", "geopandas", "pyproj", "pyogrio", "h3", "osmium",
    "networkx", "rapidfuzz", "cn2an", "PIL", "ortools",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_gis_imports_only_stdlib_and_geo_stack():
    offenders = {}
    for path in sorted(GIS.rglob("*.py")):
        bad = {
            name for name in _imports(path)
            if name not in sys.stdlib_module_names and name not in ALLOWED_THIRD_PARTY
            and name != "gis"
        }
        if bad:
            offenders[str(path.relative_to(GIS))] = sorted(bad)
    assert offenders == {}


def test_purity_check_would_catch_a_flask_import(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("from flask import current_app\nimport sqlalchemy\n", encoding="utf-8")
    assert {"flask", "sqlalchemy"} <= _imports(sample)
