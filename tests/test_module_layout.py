"""The package's shape: no import cycles, the engine without Dagster, Dagster's internals behind one module.

Imports are read from the source (every `import`, at module level or inside a function), so a lazy import that
closes a cycle counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zipfit_pipeline"
INTERNALS = "zipfit_pipeline.dagster_internals"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """Every module this one imports (for `from a import b`, `a.b` when that is a module, else `a`)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            }
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_graph() -> dict[str, set[str]]:
    return {name: {m for m in _imports(name) if m in MODULES and m != "zipfit_pipeline"} for name in MODULES}


def test_no_import_cycle_between_the_packages_modules() -> None:
    graph = _package_graph()
    assert len(graph) > 40 and graph["zipfit_pipeline.engine.alignment"]  # the walk found the package and its imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_lazy_import_cycle() -> None:
    """The check above is worth something only if it sees cycles: the alignment/Ray pair as it was before."""
    graph = _package_graph()
    graph["zipfit_pipeline.engine.ray_backend"].add("zipfit_pipeline.engine.alignment")
    assert ["zipfit_pipeline.engine.alignment", "zipfit_pipeline.engine.ray_backend"] in _cycles(graph)


def test_the_engine_runs_without_dagster_and_without_the_adapters() -> None:
    """`engine/` is the Python API and the CLI's: it imports neither Dagster nor the modules that adapt it to
    Dagster."""
    for name in (n for n in MODULES if n.startswith("zipfit_pipeline.engine")):
        outside = {
            m
            for m in _imports(name)
            if m.split(".")[0] == "dagster"
            or (m.startswith("zipfit_pipeline.") and not m.startswith("zipfit_pipeline.engine"))
        }
        assert not outside, f"{name} imports {sorted(outside)}"


def test_only_dagster_internals_reaches_into_dagsters_private_modules() -> None:
    private = {
        name: sorted(m for m in _imports(name) if m.startswith("dagster._")) for name in MODULES if name != INTERNALS
    }
    assert {name: found for name, found in private.items() if found} == {}
    assert any(m.startswith("dagster._") for m in _imports(INTERNALS))
