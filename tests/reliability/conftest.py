"""A one-source, one-target project whose input files a test can break, ingested through real Dagster runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from zipfit_pipeline.config import load_project
from zipfit_pipeline.definitions import build_definitions
from zipfit_pipeline.engine.store import Store
from zipfit_pipeline.partitions import register_sources

TEMPLATE = "Problem description: {prompt} \nCanonical solution: {canonical_solution}"


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@dataclass
class SmallProject:
    root: Path
    instance: dg.DagsterInstance

    @property
    def config_file(self) -> Path:
        return self.root / "zipfit.yaml"

    @property
    def source_file(self) -> Path:
        return self.root / "inputs" / "src.jsonl"

    @property
    def target_file(self) -> Path:
        return self.root / "inputs" / "task.jsonl"

    def store(self) -> Store:
        config = load_project(self.config_file)
        return Store(config.resolve(config.store))

    def edit_source(self, **change: object) -> None:
        config = yaml.safe_load(self.config_file.read_text())
        config["sources"][0].update(change)
        self.config_file.write_text(yaml.safe_dump(config))

    def materialize(self, asset: str, partition: str) -> dg.ExecuteInProcessResult:
        defs = build_definitions(str(self.config_file))
        register_sources(self.instance, load_project(self.config_file))
        return dg.materialize(list(defs.assets), selection=[asset], partition_key=partition, instance=self.instance,
                              resources=defs.resources, raise_on_error=False)

    def ingest_source(self) -> dg.ExecuteInProcessResult:
        return self.materialize("source_documents", "src")

    def ingest_target(self) -> dg.ExecuteInProcessResult:
        return self.materialize("target_documents", "task")

    def stored(self, table: str) -> list[dict[str, Any]]:
        """Every row of a store table, in a stable order (the tables are small here)."""
        return sorted(self.store().query(f"SELECT * FROM {table}").to_pylist(), key=repr)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The error text of a failed run's step, as the Dagster UI shows it."""
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failures[0].step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


@pytest.fixture
def small_project(tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path) -> Iterator[SmallProject]:
    """40 demo Python files as the source `src`, 12 HumanEval problems as the target `task` (8 align, 4 test)."""
    root = tmp_path / "project"
    (root / "inputs").mkdir(parents=True)
    lines = demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()[:40]
    (root / "inputs" / "src.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(demo_files["humaneval"], root / "inputs" / "task.jsonl")
    config = {
        "sources": [{"name": "src", "path": "inputs/src.jsonl", "id_field": "id"}],
        "targets": [{"name": "task", "path": "inputs/task.jsonl", "template": TEMPLATE, "id_field": "task_id",
                     "alignment_rows": [0, 8], "test_rows": [8, 12]}],
        "models": [{"name": "tiny-gpt2", "pretrained": str(tiny_model)}],
        "scoring": {"chunk_size": 8, "workers": 1},
        "selection": {"methods": ["zipfit"], "budgets": [200]},
        "training": {"block_size": 32, "batch_size": 2, "curve_points": 0, "eval_max_length": 64},
    }
    (root / "zipfit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with dg.DagsterInstance.ephemeral() as instance:
        yield SmallProject(root, instance)
