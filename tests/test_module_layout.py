"""The package's shape: no import cycles, the engine without Dagster, one package per stage that reaches another
stage only through its public face, SQL only in the stages' repositories, Dagster's internals behind one module,
and small modules and classes.

Imports are read from the source (every `import`, at module level or inside a function), so a lazy import that
closes a cycle counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zipfit_pipeline"
INTERNALS = "zipfit_pipeline.orchestration.dagster_internals"
ENGINE = "zipfit_pipeline.engine"
STAGES = ("ingest", "score", "select", "train", "evaluate", "report")  # the flow: a stage reads only earlier ones


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
    assert len(graph) > 40 and graph["zipfit_pipeline.engine.score.alignment"]  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_lazy_import_cycle() -> None:
    """The check above is worth something only if it sees cycles: compute/Ray, were Ray's module to import back."""
    graph = _package_graph()
    graph["zipfit_pipeline.engine.core.ray_cluster"].add("zipfit_pipeline.engine.core.compute")
    assert ["zipfit_pipeline.engine.core.compute", "zipfit_pipeline.engine.core.ray_cluster"] in _cycles(graph)


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


def _stage(module: str) -> str | None:
    """The stage package a module belongs to (`core` counts as none: every stage may use it)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["zipfit_pipeline", "engine"] and parts[2] in STAGES else None


def _stage_violations(name: str, imported: set[str]) -> list[str]:
    """Another stage's module (not its package), or a later stage (the flow runs one way)."""
    own = _stage(name)
    found = []
    for module in sorted(imported):
        other = _stage(module)
        if other is None or other == own:
            continue
        if module != f"{ENGINE}.{other}":
            found.append(f"{module} (another stage's internals: import from {ENGINE}.{other})")
        if own is not None and STAGES.index(other) > STAGES.index(own):
            found.append(f"{module} (a later stage than {own})")
    return found


def test_a_stage_reaches_another_only_through_its_package_and_only_upstream() -> None:
    """Where a stage needs another's output it goes through that stage's public face (its package's exports: its
    repository's read functions, its settings); the flow runs ingest -> score -> select -> train -> evaluate ->
    report, never back. The Dagster side and the CLI reach stages through their packages too."""
    assert {_stage(m) for m in MODULES} >= set(STAGES)
    # The CLI's file commands call the algorithms themselves (`zipfit score --method bm25` on two files).
    checked = [name for name in MODULES if not name.startswith(("zipfit_pipeline.cli.", f"{ENGINE}.core"))]
    found = {name: v for name in checked if (v := _stage_violations(name, _imports(name)))}
    assert found == {}


def test_the_stage_rule_sees_a_reach_into_another_stage_and_a_step_back() -> None:
    assert _stage_violations(f"{ENGINE}.select.stage", {f"{ENGINE}.ingest.tables"})
    assert _stage_violations(f"{ENGINE}.score.stage", {f"{ENGINE}.select"})
    assert not _stage_violations(f"{ENGINE}.select.stage", {f"{ENGINE}.ingest", f"{ENGINE}.select.tables"})


SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE|CREATE TABLE|ALTER TABLE)\b")


def _has_sql(path: Path) -> bool:
    strings = [n.value for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Constant)]
    return any(isinstance(s, str) and SQL.search(s) for s in strings)


def test_sql_lives_only_in_the_stages_repositories_and_the_core_store() -> None:
    """Each stage's tables and queries are in its `tables.py`; the core store holds the connection and its own
    identity tables. No SQL in report rendering, the CLI or the Dagster side."""
    allowed = {f"{ENGINE}.core.store", *(f"{ENGINE}.{stage}.tables" for stage in STAGES)}
    allowed.add(f"{ENGINE}.ingest.readers")  # a DuckDB input's user query runs there: it reads a user's file
    assert {name for name, path in MODULES.items() if _has_sql(path)} - allowed == set()
    assert _has_sql(MODULES[f"{ENGINE}.select.tables"])  # the check sees SQL where there is some


def test_no_module_is_over_400_lines_and_no_class_over_20_methods() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}
    big = {
        f"{name}.{node.name}": n
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and (n := sum(isinstance(f, ast.FunctionDef) for f in node.body)) > 20
    }
    assert big == {}
