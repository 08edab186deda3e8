"""Whether the store holds what the Dagster instance's history says it does.

Dagster remembers materializations; the results live in the DuckDB file. When the file is deleted, replaced by
another project's or restored from an older copy, the history still says "materialized, up to date", and no
data version changes, so neither `--stale` nor automation would ever recompute. Every asset therefore records,
in the store, the run that wrote each of its partitions (and, in the materialization's metadata, the store's
id); a partition whose latest materializing run is not the one the store holds has lost its results here. A
fine-tune whose checkpoint folder is gone (the artifacts deleted or moved) has lost its results too.

What Dagster cannot see either: the inputs a partition reads from outside the graph (a source's file and entry,
model weights, a test split; `assets/versions.py`). Each materialization records them; a partition whose inputs
differ now is out of date as well (`changed_inputs`), and both kinds are recomputed the same way (`to_recompute`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.core.hashing import digest
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.train import TrainTables
from zipfit_pipeline.orchestration.asset_keys import FINETUNED_MODEL
from zipfit_pipeline.orchestration.assets.versions import code_version, declared_inputs
from zipfit_pipeline.orchestration.partitions import finetune_target_key, partition_dimensions

STORE_ID = "store_id"  # metadata key of every materialization: the store it wrote to
DECLARED_INPUTS = "declared_inputs"  # and the inputs it read, by content
PROVENANCE = "provenance"  # the digest of those and of its code version, also stored with the partition's run
Materialized = tuple[str, str, dg.EventLogRecord]  # (asset, partition, its latest materialization record)


@dataclass(frozen=True)
class LostPartition:
    asset: str
    partition: str
    reason: str
    last_run_id: str  # the run whose results are gone


def record_partition_run(
    context: dg.AssetExecutionContext, store: Store, config: ProjectConfig
) -> dict[str, str | dg.MetadataValue]:
    """Record in the store that this run wrote this asset partition; returns the metadata naming the store and the
    inputs the partition declares it read (`versions.INPUTS`), by content."""
    asset = context.asset_key.to_user_string()
    inputs = declared_inputs(asset, config, partition_dimensions(context.partition_key), store)
    provenance = digest(code_version(asset, config), inputs)
    store.record_partition_run(asset, str(context.partition_key), context.run.run_id, provenance)
    return {STORE_ID: store.store_id(), DECLARED_INPUTS: dg.MetadataValue.json(inputs), PROVENANCE: provenance}


def to_recompute(
    config: ProjectConfig,
    assets: Iterable[dg.AssetsDefinition],
    instance: dg.DagsterInstance,
    lock_wait: float | None = None,
) -> list[LostPartition]:
    """What Dagster's own staleness cannot see: partitions whose results the store lost, then those whose declared
    inputs changed (each partition once, the first reason)."""
    path = config.resolve(config.store)
    store = Store(path) if lock_wait is None else Store(path, lock_wait=lock_wait)
    latest = list(_latest_materializations(assets, instance))  # read once: both checks walk the same history
    lost = _lost(store, latest)
    seen = {(p.asset, p.partition) for p in lost}
    return lost + [p for p in changed_inputs(config, store, latest) if (p.asset, p.partition) not in seen]


def changed_inputs(config: ProjectConfig, store: Store, latest: Iterable[Materialized]) -> list[LostPartition]:
    """Materialized partitions whose declared inputs (a source's settings or file, model weights, the test split,
    the embedder, the compressor build) differ now from what their latest materialization recorded. A partition
    materialized before inputs were recorded is recomputed once."""
    if not store.path.exists():
        return []  # everything is lost anyway (`lost_partitions`)
    changed = []
    for asset, partition, record in latest:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        recorded = metadata[DECLARED_INPUTS].value if DECLARED_INPUTS in metadata else None
        try:
            now = declared_inputs(asset, config, partition_dimensions(partition), store)
        except (FileNotFoundError, KeyError) as error:  # an input that is gone fails the run that needs it
            now = {"unreadable": str(error)}
        if recorded == now:
            continue
        if not isinstance(recorded, dict):
            reason = "its materialization recorded no declared inputs (an earlier zipfit-pipeline): recomputed once"
        else:
            names = sorted(n for n in {*recorded, *now} if recorded.get(n) != now.get(n))
            reason = f"its declared inputs changed: {', '.join(names)}"
        changed.append(LostPartition(asset, partition, reason, record.run_id))
    return changed


def lost_partitions(
    store_path: str | Path,
    assets: Iterable[dg.AssetsDefinition],
    instance: dg.DagsterInstance,
    lock_wait: float | None = None,
) -> list[LostPartition]:
    """Materialized partitions (per the instance) whose results the store does not hold.

    `lock_wait` bounds the wait for another process's write lock (a sensor must not block); `StoreLocked` then."""
    store = Store(store_path) if lock_wait is None else Store(store_path, lock_wait=lock_wait)
    return _lost(store, _latest_materializations(assets, instance))


def _lost(store: Store, latest: Iterable[Materialized]) -> list[LostPartition]:
    """Of the latest materializations, those whose results the store does not hold (see `lost_partitions`)."""
    exists = store.path.exists()
    held = store.partition_runs() if exists else {}
    store_id = store.store_id() if exists else None
    gone_checkpoints = _gone_checkpoints(store) if exists else {}
    lost = []
    for asset, partition, record in latest:
        run_id = record.run_id
        if held.get((asset, partition)) == run_id:
            if (asset, partition) in gone_checkpoints:
                lost.append(LostPartition(asset, partition, gone_checkpoints[(asset, partition)], run_id))
            continue
        written_to = record.asset_materialization.metadata.get(STORE_ID) if record.asset_materialization else None
        lost.append(
            LostPartition(
                asset,
                partition,
                _reason(store, exists, store_id, written_to, held.get((asset, partition)), run_id),
                run_id,
            )
        )
    return lost


def _gone_checkpoints(store: Store) -> dict[tuple[str, str], str]:
    """Fine-tunes whose recorded checkpoint folder no longer exists, other than on purpose (`keep_checkpoints: false`
    deletes it once measured, and keeps its figures)."""
    return {
        (FINETUNED_MODEL, str(finetune_target_key(key))): (
            f"its checkpoint {checkpoint} is gone (the artifacts folder deleted or moved?)"
        )
        for key, checkpoint in TrainTables(store).gone_checkpoints().items()
    }


def _reason(
    store: Store, exists: bool, store_id: str | None, written_to: dg.MetadataValue | None, held: str | None, run_id: str
) -> str:
    if not exists:
        return f"the store {store.path} does not exist (deleted or moved?)"
    if written_to is None:
        return (
            f"run {run_id} wrote to the store before stores recorded the runs that wrote them (an earlier "
            "zipfit-pipeline): recomputed once to be sure"
        )
    if written_to is not None and written_to.value != store_id:
        return (
            f"the store {store.path} is another store (id {store_id}) than the one run {run_id} wrote to "
            f"({written_to.value}): replaced or swapped?"
        )
    if held is None:
        return (
            f"the store {store.path} holds no results of this partition (restored from a copy older than run {run_id}?)"
        )
    return (
        f"the store {store.path} holds the results of run {held}, not of the latest run {run_id} "
        "(restored from an older copy?)"
    )


def _latest_materializations(
    assets: Iterable[dg.AssetsDefinition],
    instance: dg.DagsterInstance,
) -> Iterator[Materialized]:
    """(asset, partition, latest materialization record) of every current partition materialized so far."""
    for assets_def in assets:
        if not isinstance(assets_def, dg.AssetsDefinition) or assets_def.partitions_def is None:
            continue
        key = assets_def.key
        for partition in assets_def.partitions_def.get_partition_keys(dynamic_partitions_store=instance):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
            ).records
            if records:
                yield key.to_user_string(), partition, records[0]
