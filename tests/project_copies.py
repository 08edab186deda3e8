"""A small materialized project for lineage and automation tests: two sources, two targets, a tiny GPT-2.

It is materialized once per session into a DAGSTER_HOME configured by the project's own dagster.yaml
(see the `materialized_project` and `workspace` fixtures); tests change a copy and read what is stale.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import yaml
from project_files import write_project

from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.instance import INSTANCE_SETTINGS

MODEL = "tiny-gpt2"
TEMPLATE = "Problem description: {prompt} \nCanonical solution: {canonical_solution}"


def _target(name: str, alignment: list[int], test: list[int]) -> dict[str, object]:
    return {
        "name": name,
        "path": f"inputs/{name}.jsonl",
        "template": TEMPLATE,
        "id_field": "task_id",
        "alignment_rows": alignment,
        "test_rows": test,
    }


def build_project(root: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    inputs = root / "project" / "inputs"
    inputs.mkdir(parents=True)
    for name in ("python_stdlib", "english_prose"):
        shutil.copy(demo_files[name], inputs / f"{name}.jsonl")
    shutil.copy(demo_files["c_headers"], inputs / "c_headers.parquet")
    for target in ("task_a", "task_b"):
        shutil.copy(demo_files["humaneval"], inputs / f"{target}.jsonl")
    write_project(
        root / "project",
        demo_files,
        tiny_model,
        sources=[
            {"name": "python_stdlib", "path": "inputs/python_stdlib.jsonl", "id_field": "id"},
            {"name": "c_headers", "path": "inputs/c_headers.parquet", "id_field": "id"},
        ],
        targets=[_target("task_a", [0, 8], [82, 86]), _target("task_b", [8, 16], [86, 90])],
        selection={"methods": ["zipfit"], "budgets": [300]},
        incoming={"path": "incoming", "id_field": "id"},
    )
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_SETTINGS, home / "dagster.yaml")
    return root


def project_defs(root: Path) -> dg.Definitions:
    return build_definitions(str(root / "project" / "zipfit.yaml"))


def edit_config(root: Path, change: dict[str, object]) -> None:
    path = root / "project" / "zipfit.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(change)
    path.write_text(yaml.safe_dump(config))


def edit_jsonl(path: Path, row: int, field: str, text: str) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row][field] = text
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ingest(defs: dg.Definitions, instance: dg.DagsterInstance, asset: str, partition: str) -> None:
    assert dg.materialize(
        list(defs.assets), selection=[asset], partition_key=partition, instance=instance, resources=defs.resources
    ).success
