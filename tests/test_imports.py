"""The import graph of brainalign: no cycle, no import against the flow of data.

Every module under brainalign/ is parsed with ``ast``; module-level and
function-level imports both count (an import moved into a function to dodge a
cycle is still a cycle), and so do ``importlib.import_module("brainalign...")``
calls with a literal name. The implicit import of a parent package's
``__init__`` is not an edge. The root package is a node like any other: it is a
lazy facade over the pipeline (a face, like the CLI), so nothing below may import it;
the version lives in ``brainalign._version``, importable from everywhere.

Layers, in the direction data flows (a module may import its own layer or lower)::

    io -> encoders -> align -> {encoding, rsa, geometry} -> pipeline -> {service, cli, client, validation}

``errors`` and ``data`` are importable from everywhere (and import no layer);
``encoding``, ``rsa`` and ``geometry`` import neither ``io`` nor each other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

PKG = Path(__file__).resolve().parents[1] / "brainalign"
ROOT = "brainalign"
BASE = {"errors", "data", "_version"}
LAYERS = {"io": 0, "encoders": 1, "align": 2, "encoding": 3, "rsa": 3, "geometry": 3, "pipeline": 4,
          "service": 5, "cli": 5, "client": 5, "validation": 5, "__main__": 5, "__root__": 5}
SCORING = {"encoding", "rsa", "geometry"}

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """brainalign modules imported anywhere in ``path`` (module and function level)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_pkg, node.level, node.module)
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.add(sub if sub in known else target)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.add(node.args[0].value)
    return {m for m in out if m.split(".")[0] == ROOT and m != module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: {t for t in _imports(m, p, known) if t in known} for m, p in mods.items()}


def _area(module: str) -> str:
    return module.split(".")[1] if "." in module else "__root__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    names = sorted(graph)
    index = {m: i for i, m in enumerate(names)}
    rows, cols = [], []
    for m, targets in graph.items():
        for t in targets:
            rows.append(index[m])
            cols.append(index[t])
    adj = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(adj, directed=True, connection="strong")
    groups = [[names[i] for i in np.flatnonzero(labels == k)] for k in np.unique(labels)]
    return [g for g in groups if len(g) > 1]


def test_the_graph_sees_function_level_imports(graph):
    # pipeline/plan.py imports the scorers at module level; cli.py imports the pipeline inside functions
    assert "brainalign.pipeline.scoring" in graph["brainalign.pipeline.plan"]
    assert any(t.startswith("brainalign.pipeline") for t in graph["brainalign.cli"])


def test_no_import_cycle(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles (counting imports inside functions): " + "; ".join(" <-> ".join(c) for c in cycles)


def _against_the_flow(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, targets in graph.items():
        src = _area(m)
        for t in targets:
            dst = _area(t)
            if dst in BASE or dst == src:
                continue
            if src in BASE:
                bad.append(f"{m} -> {t} (errors/data import no layer)")
            elif LAYERS[dst] > LAYERS[src]:
                bad.append(f"{m} -> {t} (against the flow)")
            elif src in SCORING and (dst in SCORING or dst == "io"):
                bad.append(f"{m} -> {t} (encoding, rsa and geometry import neither io nor each other)")
    return sorted(bad)


def test_imports_follow_the_flow(graph):
    bad = _against_the_flow(graph)
    assert not bad, "; ".join(bad)


def test_the_checks_can_fail():
    toy = {"brainalign.encoding.ridge": {"brainalign.rsa.rdm", "brainalign.errors"},
           "brainalign.rsa.rdm": {"brainalign.io.bids"}, "brainalign.io.bids": {"brainalign.pipeline.api"},
           "brainalign.pipeline.api": {"brainalign.align.design"}, "brainalign.align.design": {"brainalign.pipeline.api"},
           "brainalign.errors": {"brainalign.io.bids"}}
    assert len(_against_the_flow(toy)) == 5
    assert _cycles(toy) == [["brainalign.align.design", "brainalign.pipeline.api"]]


def test_every_area_has_a_layer():
    areas = {_area(m) for m in _modules() if m != ROOT}
    assert areas <= set(LAYERS) | BASE, f"areas with no place in the flow: {sorted(areas - set(LAYERS) - BASE)}"
