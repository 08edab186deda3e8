"""A one-source, one-target project whose input files a test can break, run through real Dagster runs."""

from __future__ import annotations

import json
import os
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
from zipfit_pipeline.orchestration.partitions import register_sources

REPO = Path(__file__).resolve().parents[2]
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
        dagster = Path(sys.executable).parent / "dagster"
        options = ["--config-json", json.dumps({"ops": {asset: {"config": config}}})] if config else []
        return subprocess.Popen(
            [
                str(dagster),
                "asset",
                "materialize",
                "-m",
                "zipfit_pipeline.definitions",
                "--select",
                asset,
                "--partition",
                partition,
                *options,
            ],
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
