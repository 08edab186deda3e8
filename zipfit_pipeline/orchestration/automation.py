"""How new data and code flow through the graph without anyone clicking Materialize.

- `incoming_sources` (sensor, on by default): keeps the `sources` partitions equal to the project's sources,
  so a file dropped into the incoming folder becomes a source dataset, and ingests each dropped file whose
  size or modification time differs from what was last ingested (a new file, or one replaced later), once
  it has been still for `incoming.stable_seconds`.
- `zipfit_automation` (automation sensor, on by default): every asset downstream of ingestion carries
  `ON_NEW_DATA_OR_CODE` (eager, on new data versions, or a new code version of its own), so it is
  requested when an upstream partition gets a new data version or its own code version changes, and
  never while a blocking check of what it reads has failed (a contaminated selection trains nothing).
- `lost_store_state` (sensor, on by default): every minute, finds partitions whose results the store no longer
  holds (a deleted, replaced or restored store; see `store_state.py`) or whose declared inputs changed (a source's
  entry or file, model weights, a test split, the embedder: `assets/versions.py`), and recomputes them, a stage
  per tick, with the reason as the run's `zipfit/why` tag.
- `killed_runs` (sensor, on by default): every minute, fails the runs whose processes were killed and frees
  the pool slots they held, so that their partitions can run again (see `recovery.py`).
- `nightly_reingest_sources` / `nightly_reingest_targets` (schedules, off until turned on): re-read every
  input at 03:00; unchanged inputs keep their data version, so nothing downstream recomputes.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.core.store import StoreLocked
from zipfit_pipeline.engine.ingest import stat_signature
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.lineage import restorable
from zipfit_pipeline.orchestration.partitions import SOURCES, ProjectPartitions, register_sources
from zipfit_pipeline.orchestration.recovery import recover_killed_runs
from zipfit_pipeline.orchestration.store_state import LostPartition, to_recompute

# Dagster's `eager()` reacts to any new upstream materialization; ours only to a new upstream data version,
# so that a nightly re-ingest of unchanged files (same content hashes, same data version) recomputes nothing. Not to
# an upstream partition that will be requested in the same tick either: its new data version is not known yet (a
# fine-tune asked again may reuse its run), so each stage waits for the one above it to have run.
ANY_DEP_HAS_NEW_DATA = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.data_version_changed() & ~dg.AutomationCondition.executed_with_root_target()
).with_label("any_deps_have_new_data")
# Dagster's `all_deps_blocking_checks_passed()` is false where a dependency maps to no partition at all (the base
# model's fine-tune reads no selection), which would keep those partitions from ever being requested again: ours is
# "no partition read has a blocking check that has not passed" (or will not be requested in this tick).
NO_DEP_BLOCKING_CHECK_FAILED = ~dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(
        ~dg.AutomationCondition.check_passed() & ~dg.AutomationCondition.will_be_requested(), blocking_only=True
    ).with_label("a_blocking_check_not_passed")
).with_label("no_dep_blocking_check_failed")
ON_NEW_DATA_OR_CODE = (
    dg.AutomationCondition.eager().replace("any_deps_updated", ANY_DEP_HAS_NEW_DATA)
    | dg.AutomationCondition.code_version_changed()
) & NO_DEP_BLOCKING_CHECK_FAILED
NIGHTLY = "0 3 * * *"
INCOMING_POLL_SECONDS = 30
RECOVERY_POLL_SECONDS = 60
STORE_STATE_POLL_SECONDS = 60
STORE_LOCK_WAIT_SECONDS = 5.0  # a sensor tick must not wait for a long write; it looks again next tick
JOB_ASSETS = {
    "ingest_sources": (SOURCE_DOCUMENTS,),
    "ingest_targets": (TARGET_DOCUMENTS,),
    "score": (ALIGNMENT_SCORES,),
    "select_and_report": (SELECTIONS, COMPARISON_REPORT),
    "train_and_eval": (FINETUNED_MODEL, EVAL_LOSS),
}
JOB_OF_ASSET = {asset: job for job, assets in JOB_ASSETS.items() for asset in assets}


def build_automation(
    config: ProjectConfig,
    partitions: ProjectPartitions,
) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition], list[dg.JobDefinition]]:
    jobs = stage_jobs()
    ingest_sources, ingest_targets = jobs["ingest_sources"], jobs["ingest_targets"]

    @dg.sensor(
        job=ingest_sources,
        minimum_interval_seconds=INCOMING_POLL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def incoming_sources(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Register a partition for each source in the project file or the incoming folder; ingest each dropped file
        that is still and differs from what was last ingested from it."""
        added, removed = register_sources(context.instance, config)
        if added or removed:
            context.log.info(f"sources added: {added or 'none'}; removed: {removed or 'none'}")
        requests = []
        registered = set(context.instance.get_dynamic_partitions(SOURCES))
        for spec in config.incoming_sources():
            if spec.name not in registered or not config.is_still(spec):
                continue
            now, stored = stat_signature(Path(spec.path)), ingested_signature(context.instance, spec.name)
            if now != stored:
                # The key holds what is stored too: a file changed back to an earlier version is ingested again,
                # while a request already made (queued, running or failed) for this change is not repeated.
                requests.append(
                    dg.RunRequest(
                        partition_key=spec.name,
                        run_key=f"{spec.name}|{now}|{stored}",
                        tags={"zipfit/input_signature": now},
                    )
                )
        return dg.SensorResult(run_requests=requests)

    @dg.sensor(minimum_interval_seconds=RECOVERY_POLL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
    def killed_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        """Fail runs whose processes were killed and free their pool slots, so that later runs do not wait forever."""
        messages = recover_killed_runs(context.instance)
        for message in messages:
            context.log.warning(message)
        return dg.SkipReason("; ".join(messages) or "no killed runs")

    @dg.sensor(
        jobs=list(jobs.values()),
        minimum_interval_seconds=STORE_STATE_POLL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def lost_store_state(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Recompute what the store lost (deleted, replaced, restored from an older copy) and what reads a changed
        declared input (a source's settings or file, model weights, a test split, the embedder), upstream first."""
        defs = context.repository_def
        assert defs is not None, "a sensor is evaluated within its code location"
        try:
            lost = to_recompute(
                config, defs.assets_defs_by_key.values(), context.instance, lock_wait=STORE_LOCK_WAIT_SECONDS
            )
        except StoreLocked:
            return dg.SkipReason("the store is busy with a long write; looking again next tick")
        if not lost:
            return dg.SkipReason("the store holds every materialized partition, and no declared input changed")
        ready = restorable(defs, context.instance, lost)
        for item in ready:
            context.log.warning(f"{item.asset} [{item.partition}]: {item.reason}; recomputing it")
        return dg.SensorResult(run_requests=[restore_request(item) for item in ready])

    automation = dg.AutomationConditionSensorDefinition(
        "zipfit_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Materializes what is downstream of new data or changed code (see ON_NEW_DATA_OR_CODE).",
    )

    def nightly(job: dg.JobDefinition, dynamic: bool) -> dg.ScheduleDefinition:
        @dg.schedule(
            name=f"nightly_re{job.name}",
            job=job,
            cron_schedule=NIGHTLY,
            default_status=dg.DefaultScheduleStatus.STOPPED,
        )
        def reingest(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
            keys = (
                context.instance.get_dynamic_partitions(SOURCES) if dynamic else partitions.target.get_partition_keys()
            )
            return [
                dg.RunRequest(partition_key=key, run_key=f"{context.scheduled_execution_time:%Y-%m-%d}-{key}")
                for key in keys
            ]

        return reingest

    schedules = [nightly(ingest_sources, dynamic=True), nightly(ingest_targets, dynamic=False)]
    return [incoming_sources, lost_store_state, killed_runs, automation], schedules, list(jobs.values())


def stage_jobs() -> dict[str, dg.UnresolvedAssetJobDefinition]:
    """One job per partitions definition (a job's assets must share one; Dagster infers it from them), by name:
    through them a sensor can run any asset partition, and a user can launch a stage's partitions from the UI."""
    return {name: dg.define_asset_job(name, selection=list(assets)) for name, assets in JOB_ASSETS.items()}


def restore_request(item: LostPartition) -> dg.RunRequest:
    """One lost partition recomputed. The key holds the run whose results are gone: a request is made once (a failed
    one is not retried in a loop), and made again if the store loses the partition's next results too."""
    return dg.RunRequest(
        job_name=JOB_OF_ASSET[item.asset],
        asset_selection=[dg.AssetKey.from_user_string(item.asset)],
        partition_key=item.partition,
        run_key=f"{item.asset}|{item.partition}|{item.last_run_id}",
        tags={"zipfit/why": item.reason},
    )


def ingested_signature(instance: dg.DagsterInstance, source: str) -> str:
    """The `size:mtime_ns` of the file as the latest ingestion of `source` read it, or `none`."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(SOURCE_DOCUMENTS), asset_partitions=[source]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata if records and records[0].asset_materialization else {}
    value = metadata.get("input_signature")
    return str(value.value) if value is not None else "none"
