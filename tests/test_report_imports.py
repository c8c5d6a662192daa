"""Reports depend on results and group tables, never the other way round (imports at any depth)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[1] / "brainalign" / "pipeline"
MODULES = ("outputs", "group", "report", "result", "summaries")


def _imports(name: str) -> set[str]:
    """Sibling pipeline modules imported anywhere in ``name`` (module level or inside functions)."""
    tree = ast.parse((PIPELINE / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and mod:
                found.add(mod.split(".")[0])
            elif node.level == 1:
                found.update(a.name for a in node.names)
            elif mod.startswith("brainalign.pipeline."):
                found.add(mod.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("brainalign.pipeline."))
    return found & set(MODULES)


@pytest.mark.parametrize("lower, upper", [("group", "report"), ("result", "group"), ("report", "result"),
                                          ("outputs", "report"), ("outputs", "group"), ("summaries", "report")])
def test_no_import_against_the_flow(lower, upper):
    assert upper not in _imports(lower), f"{lower}.py imports {upper}.py"


def test_no_cycle_among_outputs_group_report_result():
    graph = {m: _imports(m) for m in MODULES}
    seen, stack = set(), []

    def visit(m):
        assert m not in stack, f"import cycle: {' -> '.join(stack + [m])}"
        if m in seen:
            return
        stack.append(m)
        for n in graph[m]:
            visit(n)
        stack.pop()
        seen.add(m)

    for m in MODULES:
        visit(m)
