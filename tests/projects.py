"""Every test project is built here, one way: `write_project` writes a project file over the demo corpora, a
HumanEval slice and a tiny GPT-2, and a test overrides the entries it is about.

Three shapes are built from it: the default small project (`project_file` fixture), the two-source, two-target
project materialized once for the lineage and automation tests (`build_lineage_project`), and the one-source,
one-target project whose input files a reliability test can break (`small_project` fixture, `SmallProject`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.orchestration.asset_keys import SOURCE_DOCUMENTS, TARGET_DOCUMENTS
from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.instance import INSTANCE_SETTINGS
from zipfit_pipeline.orchestration.partitions import register_sources

REPO = Path(__file__).resolve().parents[1]
MODEL = "tiny-gpt2"
TEMPLATE = "Problem description: {prompt} \nCanonical solution: {canonical_solution}"


def humaneval_target(name: str, path: str, alignment: list[int], test: list[int]) -> dict[str, object]:
    """A HumanEval target: `alignment` and `test` are [start, end) row ranges of the file."""
    return {
        "name": name,
        "path": path,
        "template": TEMPLATE,
        "id_field": "task_id",
        "alignment_rows": alignment,
        "test_rows": test,
    }


def write_project(root: Path, demo_files: dict[str, Path], tiny_model: Path, **overrides: object) -> Path:
    """A small project: the demo sources, 10 alignment and 6 test HumanEval problems, a tiny GPT-2.

    `overrides` replace top-level entries of the project file (`sources=[...]`, `selection={...}`).
    """
    config = {
        "store": "data/zipfit.duckdb",
        "artifacts": "data/artifacts",
        "cache": "data/cache",
        "sources": [
            {"name": name, "path": str(demo_files[name]), "id_field": "id"}
            for name in ("python_stdlib", "c_headers", "english_prose")
        ],
        "targets": [humaneval_target("humaneval", str(demo_files["humaneval"]), [0, 10], [82, 88])],
        "models": [{"name": MODEL, "pretrained": str(tiny_model)}],
        "compute": {"workers": 1},
        "scoring": {"compressor": "gzip", "level": 9, "chunk_size": 16},
        "selection": {"methods": ["zipfit", "random"], "budgets": [300, 600]},
        "training": {
            "block_size": 64,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "curve_points": 1,
            "seeds": [0],
            "eval_max_length": 128,
            "eval_batch_size": 4,
        },
        **overrides,
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "zipfit.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def new_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME with the project's instance settings, as `zipfit` commands make one."""
    path.mkdir(parents=True)
    shutil.copy(INSTANCE_SETTINGS, path / "dagster.yaml")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def materialize_command(asset: str, partition: str, *options: str) -> list[str]:
    """`dagster asset materialize` of one partition of an asset, as a user runs it (a process of its own)."""
    dagster = Path(sys.executable).parent / "dagster"
    definitions = "zipfit_pipeline.orchestration.definitions"
    return [
        str(dagster),
        "asset",
        "materialize",
        "-m",
        definitions,
        "--select",
        asset,
        "--partition",
        partition,
        *options,
    ]


def edit_jsonl(path: Path, row: int, field: str, text: str) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row][field] = text
    write_jsonl(path, rows)


# The lineage project -----------------------------------------------------------------------------------------


def build_lineage_project(root: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    """Two sources, two targets, ZIP-FIT at one budget, an incoming folder; inputs copied beside the project file."""
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
        targets=[
            humaneval_target("task_a", "inputs/task_a.jsonl", [0, 8], [82, 86]),
            humaneval_target("task_b", "inputs/task_b.jsonl", [8, 16], [86, 90]),
        ],
        selection={"methods": ["zipfit"], "budgets": [300]},
        incoming={"path": "incoming", "id_field": "id"},
    )
    new_dagster_home(root / "dagster_home")
    return root


def build_matrix_project(root: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    """The lineage project with one target and every baseline, and its model and embedder copied inside it (so that
    a test can replace their weights in place); no curve points, so that each retrain is one eval."""
    build_lineage_project(root, demo_files, tiny_model)
    for name in ("tiny-gpt2", "embedder"):
        shutil.copytree(tiny_model, root / "project" / "models" / name)
    edit_config(
        root,
        {
            "models": [{"name": MODEL, "pretrained": "models/tiny-gpt2"}],
            "targets": [humaneval_target("task_b", "inputs/task_b.jsonl", [8, 16], [86, 90])],
            "selection": {
                "methods": ["zipfit", "random", "dsir", "bm25", "embedding", "d4", "all"],
                "budgets": [300],
                "all_max_tokens": 300,
                "embedding": {"model": "models/embedder", "max_length": 32},
                "d4": {"clusters": 4},
            },
            "training.curve_points": 0,
        },
    )
    return root


def materialized(root: Path) -> Path:
    """The project under `root`, every partition materialized into its Dagster home."""
    from zipfit_pipeline.orchestration.materialize_all import materialize_all

    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        materialize_all(project_defs(root), instance, log=lambda _: None)
    return root


def copy_workspace(source: Path, destination: Path) -> Path:
    """A private copy of a materialized project and its Dagster home. The store records checkpoints by absolute
    path, and eval loads them only from the project's own folder: the copy's store points at the copy's."""
    shutil.copytree(source, destination, symlinks=True)
    with Store(destination / "project" / "data" / "zipfit.duckdb").transaction() as connection:
        connection.execute(
            "UPDATE training_runs SET checkpoint = replace(checkpoint, ?, ?)", [str(source), str(destination)]
        )
    return destination


def project_defs(root: Path) -> dg.Definitions:
    return build_definitions(str(root / "project" / "zipfit.yaml"))


def edit_config(root: Path, change: dict[str, object]) -> None:
    """Set entries of the project file, each a top-level key or a dotted path (`selection.d4.seed`,
    `sources.0.chunk_chars`; a number indexes a list)."""
    path = root / "project" / "zipfit.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in change.items():
        *parents, last = key.split(".")
        node = config
        for name in parents:
            node = node[int(name)] if name.isdigit() else node.setdefault(name, {})
        node[last] = value
    path.write_text(yaml.safe_dump(config))


def ingest(defs: dg.Definitions, instance: dg.DagsterInstance, asset: str, partition: str) -> None:
    assert dg.materialize(
        list(defs.assets), selection=[asset], partition_key=partition, instance=instance, resources=defs.resources
    ).success


# The small project ------------------------------------------------------------------------------------------


def write_small_project(root: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    """40 demo Python files as the source `src`, 12 HumanEval problems as the target `task` (8 align, 4 test)."""
    (root / "inputs").mkdir(parents=True)
    lines = demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()[:40]
    (root / "inputs" / "src.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(demo_files["humaneval"], root / "inputs" / "task.jsonl")
    return write_project(
        root,
        demo_files,
        tiny_model,
        sources=[{"name": "src", "path": "inputs/src.jsonl", "id_field": "id"}],
        targets=[humaneval_target("task", "inputs/task.jsonl", [0, 8], [8, 12])],
        compute={"workers": 1},
        scoring={"chunk_size": 8},
        selection={"methods": ["zipfit"], "budgets": [200]},
        training={"block_size": 32, "batch_size": 2, "curve_points": 0, "eval_max_length": 64, "seeds": [0]},
    )


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

    @property
    def dagster_home(self) -> Path:
        return self.root.parent / "dagster_home"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.dagster_home), "ZIPFIT_CONFIG": str(self.config_file)}

    def cli(self, asset: str, partition: str, config: dict[str, object] | None = None) -> subprocess.Popen[str]:
        """`dagster asset materialize` in its own process group (so that a test can kill all of it), with the asset's
        run config if given."""
        register_sources(self.instance, load_project(self.config_file))
        options = ["--config-json", json.dumps({"ops": {asset: {"config": config}}})] if config else []
        return subprocess.Popen(
            materialize_command(asset, partition, *options),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def recover(self) -> str:
        """`zipfit recover`, as a user runs it after a kill (the `killed_runs` sensor does the same)."""
        zipfit = Path(sys.executable).parent / "zipfit"
        done = subprocess.run([str(zipfit), "recover"], env=self.env, capture_output=True, text=True, check=True)
        return done.stdout

    def store(self) -> Store:
        config = load_project(self.config_file)
        return Store(config.resolve(config.store))

    def edit_config(self, **change: object) -> None:
        self._edit(lambda config: config.update(change))

    def edit_source(self, **change: object) -> None:
        self._edit(lambda config: config["sources"][0].update(change))

    def _edit(self, apply: Callable[[dict[str, Any]], None]) -> None:
        config = yaml.safe_load(self.config_file.read_text())
        apply(config)
        self.config_file.write_text(yaml.safe_dump(config))

    def materialize(self, asset: str, partition: str) -> dg.ExecuteInProcessResult:
        defs = build_definitions(str(self.config_file))
        register_sources(self.instance, load_project(self.config_file))
        return dg.materialize(
            list(defs.assets),
            selection=[asset],
            partition_key=partition,
            instance=self.instance,
            resources=defs.resources,
            raise_on_error=False,
        )

    def ingest_source(self) -> dg.ExecuteInProcessResult:
        return self.materialize(SOURCE_DOCUMENTS, "src")

    def ingest_target(self) -> dg.ExecuteInProcessResult:
        return self.materialize(TARGET_DOCUMENTS, "task")

    def stored(self, table: str) -> list[dict[str, Any]]:
        """Every row of a store table, in a stable order (the tables are small here); none where the stage that owns
        the table has never written to this store (a stage makes its tables the first time it opens the store)."""
        store = self.store()
        made = store.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [table])
        if not made.column("n")[0].as_py():
            return []
        return sorted(store.query(f"SELECT * FROM {table}").to_pylist(), key=repr)


# What runs left behind ---------------------------------------------------------------------------------------


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


def check_results(instance: dg.DagsterInstance) -> dict[tuple[str, str], set[bool]]:
    """Whether each asset check passed, over every run of the instance: {(asset, check): {passed, ...}}."""
    results: dict[tuple[str, str], set[bool]] = {}
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            results.setdefault((evaluation.asset_key.to_user_string(), evaluation.check_name), set()).add(
                evaluation.passed
            )
    return results
