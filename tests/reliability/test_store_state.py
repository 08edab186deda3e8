"""The store the instance's history describes, or not: a deleted, replaced or restored store is noticed, every
partition whose results are gone is out of date with the reason, and `--stale` and the sensor rebuild it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
from projects import SmallProject

from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.orchestration.asset_keys import (
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.lineage import out_of_date
from zipfit_pipeline.orchestration.materialize_all import materialize_all
from zipfit_pipeline.orchestration.store_state import lost_partitions

TABLES = ("documents", "targets", "scores", "selections", "training_runs", "eval_losses", "partition_runs")


def _built(project: SmallProject) -> dg.Definitions:
    defs = build_definitions(str(project.config_file))
    materialize_all(defs, project.instance, log=lambda _: None)
    assert out_of_date(defs, project.instance, _lost(project, defs)) == {}
    return defs


def _lost(project: SmallProject, defs: dg.Definitions) -> dict[tuple[str, str], str]:
    lost = lost_partitions(defs.resources["store"].path, defs.assets, project.instance)
    return {(item.asset, item.partition): item.reason for item in lost}


def _every_partition(project: SmallProject, defs: dg.Definitions) -> set[tuple[str, str]]:
    return {
        (a.key.to_user_string(), p)
        for a in defs.assets
        for p in a.partitions_def.get_partition_keys(dynamic_partitions_store=project.instance)
    }


def _counts(store: Store) -> dict[str, int]:
    return {table: store.query(f"SELECT count(*) AS n FROM {table}").to_pylist()[0]["n"] for table in TABLES}


def test_a_deleted_or_replaced_store_makes_everything_out_of_date_and_stale_rebuilds_it(
    small_project: SmallProject,
) -> None:
    defs = _built(small_project)
    store = small_project.store()
    full = _counts(store)
    assert all(full.values()), full
    everything = _every_partition(small_project, defs)

    store.path.unlink()
    Store(store.path).store_id()  # another (empty) store in its place
    lost = _lost(small_project, defs)
    assert set(lost) == everything
    assert all("is another store" in reason for reason in lost.values())

    store.path.unlink()
    lost = _lost(small_project, defs)
    assert set(lost) == everything and all("does not exist" in reason for reason in lost.values())
    assert set(
        out_of_date(
            defs, small_project.instance, list(lost_partitions(store.path, defs.assets, small_project.instance))
        )
    ) == {asset for asset, _ in everything}

    zipfit = Path(sys.executable).parent / "zipfit"
    done = subprocess.run(
        [str(zipfit), "materialize", "--stale", "--config", str(small_project.config_file)],
        env=small_project.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"source_documents [src] is out of date: the store {store.path} does not exist" in done.stdout
    assert "everything is up to date" not in done.stdout
    assert _counts(store) == full
    assert _lost(small_project, defs) == {}
    again = materialize_all(defs, small_project.instance, log=lambda _: None, only_out_of_date=True)
    assert again == {}


def test_an_older_copy_of_the_store_makes_exactly_what_changed_since_out_of_date(small_project: SmallProject) -> None:
    defs = _built(small_project)
    store = small_project.store()
    backup = store.path.with_name("backup.duckdb")
    shutil.copy(store.path, backup)

    rows = [json.loads(line) for line in small_project.source_file.read_text().splitlines()]
    rows[0]["text"] = "def changed():\n    return 'a new version of the first document'\n"
    small_project.source_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert small_project.ingest_source().success  # the nightly re-ingest
    changed = materialize_all(defs, small_project.instance, log=lambda _: None, only_out_of_date=True)
    assert SELECTIONS in changed and TARGET_DOCUMENTS not in changed
    newer = {(SOURCE_DOCUMENTS, "src")} | {(asset, p) for asset, partitions in changed.items() for p in partitions}

    shutil.copy(backup, store.path)  # "restored from last night's backup"
    lost = _lost(small_project, defs)
    assert set(lost) == newer
    assert all("holds the results of run" in reason and "older copy" in reason for reason in lost.values())
    assert store.query("SELECT count(*) AS n FROM documents WHERE text LIKE '%a new version%'").to_pylist() == [
        {"n": 0}
    ]

    redone = materialize_all(defs, small_project.instance, log=lambda _: None, only_out_of_date=True)
    assert {(asset, p) for asset, partitions in redone.items() for p in partitions} == newer
    assert _lost(small_project, defs) == {}
    assert store.query("SELECT count(*) AS n FROM documents WHERE text LIKE '%a new version%'").to_pylist() == [
        {"n": 1}
    ]


def test_the_sensors_rebuild_a_deleted_store_upstream_first_once_per_partition(small_project: SmallProject) -> None:
    """`lost_store_state` recomputes what Dagster thinks fresh; what a recomputed partition makes stale, automation
    takes from there: together, as the daemon runs them, every partition is rebuilt; the sensor asks for each once."""
    defs = _built(small_project)
    everything = _every_partition(small_project, defs)
    store = small_project.store()
    store.path.unlink()
    sensor = defs.resolve_sensor_def("lost_store_state")
    requested: list[tuple[str, str]] = []
    restored: list[tuple[str, str]] = []
    ticks: list[list[tuple[str, str]]] = []
    cursor = None
    while True:
        result = sensor(dg.build_sensor_context(instance=small_project.instance, definitions=defs))
        restores = result.run_requests if isinstance(result, dg.SensorResult) else []
        # Then the first ingest makes a new store: the rest were written to another one.
        why = "does not exist" if not ticks else "is another store"
        assert all(why in r.tags["zipfit/why"] for r in restores)
        tick = [(r.asset_selection[0].to_user_string(), r.partition_key) for r in restores]
        restored += tick
        automation = dg.evaluate_automation_conditions(defs=defs, instance=small_project.instance, cursor=cursor)
        cursor = automation.cursor
        tick += [
            (key.to_user_string(), str(p))
            for key in (a.key for a in defs.assets)
            for p in automation.get_requested_partitions(key)
        ]
        if not tick:
            break
        ticks.append(tick)
        requested += tick
        for asset, partition in tick:
            assert small_project.materialize(asset, partition).success
    # First what reads nothing upstream: the inputs, and the base model's record (it reads no selection).
    assert sorted(ticks[0]) == [
        (FINETUNED_MODEL, "tiny-gpt2.base|task"),
        (SOURCE_DOCUMENTS, "src"),
        (TARGET_DOCUMENTS, "task"),
    ]
    assert set(requested) == everything and len(restored) == len(set(restored))
    assert _lost(small_project, defs) == {}
    assert all(_counts(store).values())


def test_a_deleted_checkpoint_makes_its_fine_tune_out_of_date_and_stale_retrains_it(
    small_project: SmallProject,
) -> None:
    defs = _built(small_project)
    shutil.rmtree(small_project.root / "data" / "artifacts" / "models")
    partition = "tiny-gpt2.zipfit.200.s0|task"
    lost = _lost(small_project, defs)
    assert list(lost) == [(FINETUNED_MODEL, partition)]  # `base` is the pretrained model: nothing of it was deleted
    assert "its checkpoint" in lost[(FINETUNED_MODEL, partition)] and "is gone" in lost[(FINETUNED_MODEL, partition)]
    redone = materialize_all(defs, small_project.instance, log=lambda _: None, only_out_of_date=True)
    assert redone == {FINETUNED_MODEL: [partition], EVAL_LOSS: [partition], COMPARISON_REPORT: ["tiny-gpt2|task"]}
    assert _lost(small_project, defs) == {}
