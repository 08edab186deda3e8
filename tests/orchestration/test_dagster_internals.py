"""Each function of `dagster_internals.py` against a real instance: when a Dagster upgrade moves an internal this
project relies on, the failure is here, under the function's name, not somewhere in a sensor at 3 a.m."""

# No `from __future__ import annotations`: Dagster reads the assets' context annotations as types.
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from zipfit_pipeline.orchestration.dagster_internals import (
    AssetGraphView,
    fail_run,
    pool_slots,
    run_worker_pids,
    runs_holding_slots,
    set_pool_slots,
)
from zipfit_pipeline.orchestration.instance import INSTANCE_SETTINGS, project_instance

LETTERS = dg.StaticPartitionsDefinition(["a", "b"])
POOL = "internals_test_pool"


def _defs(upstream_version: str, seen_slots: list[set[str]] | None = None) -> dg.Definitions:
    @dg.asset(partitions_def=LETTERS, code_version=upstream_version)
    def upstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion(context.partition_key))

    @dg.asset(partitions_def=LETTERS, code_version="1", deps=[upstream], pool=POOL)
    def downstream(context: dg.AssetExecutionContext) -> None:
        if seen_slots is not None:
            seen_slots.append(runs_holding_slots(context.instance) | {f"this run: {context.run.run_id}"})

    return dg.Definitions(assets=[upstream, downstream])


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """An instance as the CLI opens it: a fresh DAGSTER_HOME given the project's dagster.yaml."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with project_instance(tmp_path / "zipfit.yaml") as opened:
        yield opened


def test_a_fresh_dagster_home_gets_the_projects_instance_settings(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    assert (tmp_path / "home" / "dagster.yaml").read_text() == INSTANCE_SETTINGS.read_text()
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    assert not instance.telemetry_enabled
    assert instance.event_log_storage.supports_global_concurrency_limits  # pools are enforced, not ignored


def test_a_users_own_dagster_yaml_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with project_instance(tmp_path / "zipfit.yaml") as opened:
        assert opened.root_directory == str(home)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_without_dagster_home_the_instance_lives_beside_the_project_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with project_instance(tmp_path / "zipfit.yaml") as opened:
        assert opened.root_directory == str(tmp_path / ".dagster_home")
        assert os.environ["DAGSTER_HOME"] == str(tmp_path / ".dagster_home")


def test_the_graph_view_reads_partitions_parents_and_stale_status(instance: dg.DagsterInstance) -> None:
    defs = _defs("1")
    assert dg.materialize(defs.assets, partition_key="a", instance=instance).success
    graph = AssetGraphView(defs, instance)
    assert graph.assets() == ["upstream", "downstream"]
    assert graph.partitions("downstream") == ["a", "b"]
    assert graph.parents("downstream", "b") == [("upstream", "b")]
    assert [graph.status("upstream", p) for p in ("a", "b")] == ["FRESH", "MISSING"]

    changed = AssetGraphView(_defs("2"), instance)  # new code for the upstream asset
    assert changed.status("upstream", "a") == "STALE"
    assert changed.status("downstream", "a") == "FRESH"  # Dagster does not carry it down: lineage.py does


def test_a_run_holds_its_pool_slot_while_its_step_runs_and_its_pids_are_recorded(instance: dg.DagsterInstance) -> None:
    set_pool_slots(instance, POOL, 3)
    assert pool_slots(instance, POOL) == 3
    seen: list[set[str]] = []
    result = dg.materialize(_defs("1", seen).assets, partition_key="a", instance=instance)
    assert seen == [{result.run_id, f"this run: {result.run_id}"}]
    assert runs_holding_slots(instance) == set()  # the step gave its slot back when it ended
    assert run_worker_pids(instance, result.run_id) == {os.getpid()}  # in-process: this process wrote the events


def test_failing_a_dead_run_frees_the_slot_it_held(instance: dg.DagsterInstance) -> None:
    """What `zipfit recover` does for a run whose worker was killed mid-step: failed, and its slot given back."""
    job = dg.define_asset_job("both", selection="*").resolve(asset_graph=_defs("1").resolve_asset_graph())
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    set_pool_slots(instance, POOL, 1)
    instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "downstream")  # as its step would
    assert runs_holding_slots(instance) == {run.run_id}

    fail_run(instance, run, "killed")
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert runs_holding_slots(instance) == set()
