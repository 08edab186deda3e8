"""Automation: the automation sensor's conditions, the incoming-folder sensor and the nightly re-ingest."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from projects import MODEL, TEMPLATE, edit_config, edit_jsonl, ingest, project_defs

from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    PASS_AT_K,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    STAGES,
    TARGET_DOCUMENTS,
)

pytestmark = pytest.mark.slow


ASSETS = [stage for stage in STAGES if stage != PASS_AT_K]  # off in this project


def _requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, list[str]]:
    requested = {name: sorted(str(p) for p in result.get_requested_partitions(dg.AssetKey(name))) for name in ASSETS}
    return {name: keys for name, keys in requested.items() if keys}


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, requested: dict[str, list[str]]) -> None:
    for name, partitions in requested.items():
        for partition in partitions:
            ingest(defs, instance, name, partition)


def _target_text(root: Path, row: int) -> str:
    problem = json.loads((root / "project" / "inputs" / "task_a.jsonl").read_text().splitlines()[row])
    return TEMPLATE.format(**problem)


def _ticks_after_edit(root: Path, instance: dg.DagsterInstance, new_text: str) -> list[dict[str, list[str]]]:
    """Edit a source row, re-ingest it, then tick and materialize what is requested until nothing is."""
    defs = project_defs(root)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert _requested(tick) == {}  # everything is materialized and nothing changed
    edit_jsonl(root / "project" / "inputs" / "python_stdlib.jsonl", 3, "text", new_text)
    ingest(defs, instance, SOURCE_DOCUMENTS, "python_stdlib")
    ticks = []
    while not ticks or ticks[-1]:
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        ticks.append(_requested(tick))
        _materialize(defs, instance, ticks[-1])
    return ticks


def test_new_data_flows_down_one_stage_per_tick(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    # A source text made of two target problems ranks first for both targets, so both selections change.
    ticks = _ticks_after_edit(root, instance, _target_text(root, 0) + "\n" + _target_text(root, 8))
    assert ticks == [
        {ALIGNMENT_SCORES: ["python_stdlib|task_a", "python_stdlib|task_b"]},
        {SELECTIONS: [f"{MODEL}|task_a", f"{MODEL}|task_b"]},
        # A fine-tune asked again may reuse its run (same texts, same settings): its eval waits for the new data
        # version, in the next tick, so an unchanged checkpoint is never measured twice. The report reads only
        # evals, so it waits for them instead of pairing new selections with old losses.
        {FINETUNED_MODEL: [f"{MODEL}.zipfit.300.s0|task_a", f"{MODEL}.zipfit.300.s0|task_b"]},
        {EVAL_LOSS: [f"{MODEL}.zipfit.300.s0|task_a", f"{MODEL}.zipfit.300.s0|task_b"]},
        {COMPARISON_REPORT: [f"{MODEL}|task_a", f"{MODEL}|task_b"]},
        {},
    ]


def test_new_data_that_leaves_the_selection_unchanged_trains_nothing(
    workspace: tuple[Path, dg.DagsterInstance],
) -> None:
    root, instance = workspace
    ticks = _ticks_after_edit(root, instance, "a short line of prose that no budget picks")
    assert ticks == [
        {ALIGNMENT_SCORES: ["python_stdlib|task_a", "python_stdlib|task_b"]},
        {SELECTIONS: [f"{MODEL}|task_a", f"{MODEL}|task_b"]},
        {},  # same selected texts, same data version: no fine-tune reruns, and no new report
    ]


def test_identical_reingest_requests_nothing(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    defs = project_defs(root)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    ingest(defs, instance, SOURCE_DOCUMENTS, "c_headers")
    ingest(defs, instance, TARGET_DOCUMENTS, "task_a")
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert _requested(tick) == {}


def test_a_new_code_version_requests_the_changed_assets(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    tick = dg.evaluate_automation_conditions(defs=project_defs(root), instance=instance)
    edit_config(root, {"scoring": {"compressor": "gzip", "level": 6, "chunk_size": 16}})
    tick = dg.evaluate_automation_conditions(defs=project_defs(root), instance=instance, cursor=tick.cursor)
    # Scores read the compressor; selections record it, so both have a new code version. Training waits for
    # new selections (a later tick), the report for new evals.
    assert _requested(tick) == {
        ALIGNMENT_SCORES: ["c_headers|task_a", "c_headers|task_b", "python_stdlib|task_a", "python_stdlib|task_b"],
        SELECTIONS: [f"{MODEL}|task_a", f"{MODEL}|task_b"],
    }


def test_automation_sensor_runs_by_default_and_schedules_wait_to_be_turned_on(
    workspace: tuple[Path, dg.DagsterInstance],
) -> None:
    defs = project_defs(workspace[0])
    assert defs.resolve_sensor_def("zipfit_automation").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("incoming_sources").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("killed_runs").default_status == dg.DefaultSensorStatus.RUNNING
    for name in ("nightly_reingest_sources", "nightly_reingest_targets"):
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_file_dropped_into_the_incoming_folder_becomes_a_source(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    defs = project_defs(root)
    sensor = defs.resolve_sensor_def("incoming_sources")
    incoming = root / "project" / "incoming"
    incoming.mkdir()
    shutil.copy(root / "project" / "inputs" / "english_prose.jsonl", incoming / "More Prose.jsonl")
    (incoming / "notes.txt").write_text("not a dataset")
    still = time.time() - 60  # older than `stable_seconds`: the copy is complete
    os.utime(incoming / "More Prose.jsonl", (still, still))

    result = sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in result.run_requests] == ["more_prose"]
    assert instance.get_dynamic_partitions("sources") == ["python_stdlib", "c_headers", "more_prose"]
    again = sensor(dg.build_sensor_context(instance=instance))  # before the ingest ran: the same request, which the
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]  # daemon launches once

    # The new partition ingests from the dropped file, and automation then scores it for every target.
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    ingest(defs, instance, SOURCE_DOCUMENTS, "more_prose")
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert _requested(tick) == {ALIGNMENT_SCORES: ["more_prose|task_a", "more_prose|task_b"]}

    moved = incoming / "More Prose.jsonl"
    moved.rename(root / "more_prose.jsonl")
    sensor(dg.build_sensor_context(instance=instance))
    assert instance.get_dynamic_partitions("sources") == ["python_stdlib", "c_headers"]
    (root / "more_prose.jsonl").rename(moved)  # dropped again as it was: registered, and its documents are stored
    assert sensor(dg.build_sensor_context(instance=instance)).run_requests == []
    assert instance.get_dynamic_partitions("sources") == ["python_stdlib", "c_headers", "more_prose"]


def test_nightly_schedule_reingests_every_source(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    schedule = project_defs(root).resolve_schedule_def("nightly_reingest_sources")
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.datetime(2026, 11, 24, 3))
    requests = schedule(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("python_stdlib", "2026-11-24-python_stdlib"),
        ("c_headers", "2026-11-24-c_headers"),
    ]
