"""The `small_project` fixture: a fresh copy of a small project and its own Dagster home for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from small_project import TEMPLATE, SmallProject

from zipfit_pipeline.orchestration.instance import INSTANCE_SETTINGS


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
        "targets": [
            {
                "name": "task",
                "path": "inputs/task.jsonl",
                "template": TEMPLATE,
                "id_field": "task_id",
                "alignment_rows": [0, 8],
                "test_rows": [8, 12],
            }
        ],
        "models": [{"name": "tiny-gpt2", "pretrained": str(tiny_model)}],
        "scoring": {"chunk_size": 8, "workers": 1},
        "selection": {"methods": ["zipfit"], "budgets": [200]},
        "training": {"block_size": 32, "batch_size": 2, "curve_points": 0, "eval_max_length": 64, "seeds": [0]},
    }
    (root / "zipfit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_SETTINGS, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield SmallProject(root, instance)
