"""The import graph of app/services: layers run one way, nothing circles, no Flask below views.

DESIGN's order is core ← tables ← grids ← issues ← imports, batches, patrols, assessment ←
protocols, ops ← views, commands. These tests read every module's source (module- and
function-level imports alike, as ``tests/gis/test_purity.py`` does for gis/) so an import
placed inside a function cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
SERVICES = APP / "services"

# Lower number = lower layer. A package may import its own modules and any package on a
# lower layer, and a sibling on its own layer as long as no cycle forms.
LAYERS = {
    "core": 0,
    "tables": 1,
    "grids": 2,
    "issues": 3,
    "imports": 4,
    "batches": 4,
    "patrols": 4,
    "assessment": 4,
    "places": 4,
    "notify": 4,
    "standing": 4,
    "protocols": 5,
    "ops": 5,
}
# Outside app/services, a service may import only the models (and gis/, the geometry core).
ALLOWED_APP = {"app.models"}
FLASK_ROOTS = {"flask", "flask_login", "flask_wtf", "flask_limiter", "flask_sqlalchemy",  # werkzeug.security (hashing) is allowed
               "flask_migrate", "werkzeug"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(APP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _service_files() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


MODULES = {_module_name(p): p for p in _service_files()}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module this file imports, as (line, dotted name), submodules resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if candidate in MODULES else base))
    return found


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["app", "services"]:
        return parts[2]
    return None


def test_every_service_module_sits_in_a_known_package():
    stray = [name for name in MODULES
             if name != "app.services" and _package_of(name) not in LAYERS]
    assert not stray, f"service modules outside a layer package: {stray}"


def test_services_import_no_flask_and_nothing_above_them():
    bad = []
    for path in MODULES.values():
        for line, target in _imports(path):
            root = target.split(".")[0]
            if root in FLASK_ROOTS and target != "werkzeug.security" or root == "app" and not target.startswith("app.services") and not any(
                    target == ok or target.startswith(ok + ".") for ok in ALLOWED_APP):
                bad.append(f"{path.relative_to(APP.parent)}:{line} imports {target}")
    assert not bad, "services must take plain arguments, not Flask or app glue:\n" + "\n".join(bad)


def test_services_read_no_flask_globals_or_environment():
    bad = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "current_app":
                bad.append(f"{path.relative_to(APP.parent)}:{node.lineno} {node.id}")
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "os" and node.attr in {"environ", "getenv"}):
                bad.append(f"{path.relative_to(APP.parent)}:{node.lineno} os.{node.attr}")
    assert not bad, "only views and commands (through app/config.py) read these:\n" + "\n".join(bad)


def test_no_service_imports_upward():
    bad = []
    for name, path in MODULES.items():
        here = _package_of(name)
        if here is None:
            continue
        for line, target in _imports(path):
            there = _package_of(target)
            if there is None or there == here:
                continue
            if LAYERS.get(there, 99) > LAYERS[here]:
                bad.append(f"{path.relative_to(APP.parent)}:{line} ({here}) imports {target} ({there})")
    assert not bad, "imports must run down the layers:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycles(level):
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        src = name if level == "module" else _package_of(name)
        if src is None:
            continue
        for _, target in _imports(path):
            if target not in MODULES and not target.startswith("app.services."):
                continue
            dst = target if level == "module" else _package_of(target)
            if dst is None or dst == src:
                continue
            graph.setdefault(src, set()).add(dst)
    assert not _cycles(graph), f"{level} import cycles: {_cycles(graph)}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_private_names_imported_across_modules():
    bad = []
    for path in [*MODULES.values(), *(APP / "views").glob("*.py"), *(APP / "commands").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app"):
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name != "__future__":
                        bad.append(f"{path.relative_to(APP.parent)}:{node.lineno} {alias.name}")
    assert not bad, "a public function for what a sibling needs:\n" + "\n".join(bad)


def test_modules_stay_readable():
    """No module over about 600 lines unless its docstring says it is one idea read whole."""
    big = []
    for path in sorted(APP.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > 650:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "one idea" not in doc:
                big.append(f"{path.relative_to(APP.parent)}: {lines} lines")
    assert not big, "split these along their sections:\n" + "\n".join(big)
