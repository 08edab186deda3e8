"""Everything this project takes from Dagster beyond its public API, in one place.

Dagster 1.13 has no public call for three things the project needs: an asset partition's stale status and its
upstream partitions outside the webserver (`lineage.py`), the process ids and failure of a run whose worker was
killed (`recovery.py`), and setting a concurrency pool's size from code (`accelerators.py`, what
`dagster instance concurrency set` does). These internals can move in any release; `tests/test_dagster_internals.py`
exercises each function here against a real instance, so an upgrade that breaks one fails there, by name, and
another test checks that no other module imports `dagster._…`.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.loader import LoadingContext

Status = Literal["FRESH", "STALE", "MISSING"]
AssetPartition = tuple[str, str]  # (asset key as a user string, partition key)


class _InstanceLoadingContext(LoadingContext):
    """The minimal loading context Dagster's stale-status resolver needs outside a webserver request."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._loaders: dict = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict:
        return self._loaders


class AssetGraphView:
    """The asset graph of a code location, read with an instance: partitions, their stale status and parents."""

    def __init__(self, defs: dg.Definitions | dg.RepositoryDefinition, instance: dg.DagsterInstance) -> None:
        self._graph = defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs.asset_graph
        self._instance = instance
        self._resolver = CachingStaleStatusResolver(instance, self._graph, _InstanceLoadingContext(instance))
        self._partitions: dict[str, list[str]] = {}

    def assets(self) -> list[str]:
        """Every asset, in dependency order."""
        return [key.to_user_string() for key in self._graph.toposorted_asset_keys]

    def partitions(self, asset: str) -> list[str]:
        """The asset's partition keys, read once per view (dynamic ones come from the instance)."""
        if asset not in self._partitions:
            partitions_def = self._graph.get(dg.AssetKey.from_user_string(asset)).partitions_def
            keys = partitions_def.get_partition_keys(dynamic_partitions_store=self._instance) if partitions_def else []
            self._partitions[asset] = list(keys)
        return self._partitions[asset]

    def status(self, asset: str, partition: str) -> Status:
        """Dagster's own status: STALE when its code version or an input's data version changed since it ran."""
        with dg.partition_loading_context(dynamic_partitions_store=self._instance):
            return self._resolver.get_status(dg.AssetKey.from_user_string(asset), partition).value

    def parents(self, asset: str, partition: str) -> list[AssetPartition]:
        """The upstream partitions this one reads, through the assets' partition mappings."""
        with dg.partition_loading_context(dynamic_partitions_store=self._instance):
            found = self._graph.get_parents_partitions(dg.AssetKey.from_user_string(asset), partition)
        return [(p.asset_key.to_user_string(), p.partition_key or "") for p in found.parent_partitions]


def run_worker_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    """The ids of the processes that wrote the run's events (its run worker, its step processes)."""
    return {e.dagster_event.pid for e in instance.all_logs(run_id) if e.dagster_event and e.dagster_event.pid}


def fail_run(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> None:
    """Mark a run whose worker is gone failed, and free the pool slots it held: without a daemon nothing else will
    (with one, `run_monitoring.free_slots_after_run_end_seconds` in dagster.yaml frees them too)."""
    instance.report_run_failed(run, message)
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def set_pool_slots(instance: dg.DagsterInstance, pool: str, slots: int) -> None:
    """What `dagster instance concurrency set POOL SLOTS` does."""
    instance.event_log_storage.set_concurrency_slots(pool, slots)


def pool_slots(instance: dg.DagsterInstance, pool: str) -> int:
    return instance.event_log_storage.get_concurrency_info(pool).slot_count


def runs_holding_slots(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.event_log_storage.get_concurrency_run_ids())
