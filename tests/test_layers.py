"""The package's import graph: no cycles, and any module can be imported first."""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest


def _import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=a, imported=b)
    assert _import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_modelaudit_has_no_import_cycles() -> None:
    graph = grimp.build_graph("modelaudit", exclude_type_checking_imports=True)
    assert _import_cycles(graph) == []


@pytest.mark.parametrize(
    "module", ["modelaudit.baseline", "modelaudit.report", "modelaudit.checks"]
)
def test_a_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    # `from modelaudit.baseline import Baseline` as the first import used to be circular.
    code = f"import {module}; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


MAX_FUNCTION_LINES = 80  # docstring included: one job per function, readable in one screen


def _long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    import ast

    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_the_length_rule_counts_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(4))
    assert _long_functions(f"def f():\n{body}\n", limit=4) == [("f", 5)]
    assert _long_functions(f"def f():\n{body}\n", limit=5) == []


def test_no_function_in_the_package_is_longer_than_80_lines() -> None:
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "modelaudit"
    found = {
        f"{path.relative_to(package)}::{name}": length
        for path in sorted(package.rglob("*.py"))
        for name, length in _long_functions(path.read_text(), MAX_FUNCTION_LINES)
    }
    assert found == {}, f"split these into helpers: {found}"
