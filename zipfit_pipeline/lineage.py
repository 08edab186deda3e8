"""What is out of date: Dagster's stale status of each partition, carried down the graph.

Dagster marks a partition stale when its own code version changed or an upstream partition it read has a
new data version; it does not mark the partitions below that one. A user asking "what would a refresh
recompute?" wants the whole cone, so a partition here is out of date when it is stale, missing, lost from
the store (see `store_state.py`), or reads an out-of-date partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.loader import LoadingContext

from zipfit_pipeline.store_state import LostPartition


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


# What these functions read the asset graph from: the Definitions (CLI, tests) or a sensor's repository.
Defs = dg.Definitions | dg.RepositoryDefinition


def asset_graph(defs: Defs) -> BaseAssetGraph:
    return defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs.asset_graph


def partition_status(defs: Defs, instance: dg.DagsterInstance) -> dict[str, dict[str, StaleStatus]]:
    """Dagster's own status (FRESH, STALE or MISSING) of every partition, by asset name."""
    graph = asset_graph(defs)
    resolver = CachingStaleStatusResolver(instance, graph, _InstanceLoadingContext(instance))
    with partition_loading_context(dynamic_partitions_store=instance):
        return {
            key.to_user_string(): {p: resolver.get_status(key, p) for p in _partition_keys(graph, key, instance)}
            for key in graph.toposorted_asset_keys
        }


def out_of_date(defs: Defs, instance: dg.DagsterInstance, lost: Sequence[LostPartition] = ()) -> dict[str, list[str]]:
    """Partitions a refresh would recompute, by asset name in dependency order (assets with none omitted)."""
    graph = asset_graph(defs)
    status = partition_status(defs, instance)
    gone = {(dg.AssetKey.from_user_string(p.asset), p.partition) for p in lost}
    dirty: set[tuple[dg.AssetKey, str]] = set()
    with partition_loading_context(dynamic_partitions_store=instance):
        for key in graph.toposorted_asset_keys:
            for partition, own in status[key.to_user_string()].items():
                parents = graph.get_parents_partitions(key, partition).parent_partitions
                if own != StaleStatus.FRESH or (key, partition) in gone or any(
                        (p.asset_key, p.partition_key) in dirty for p in parents):
                    dirty.add((key, partition))
    result: dict[str, list[str]] = {}
    for key in graph.toposorted_asset_keys:
        partitions = [p for p in status[key.to_user_string()] if (key, p) in dirty]
        if partitions:
            result[key.to_user_string()] = partitions
    return result


def restorable(defs: Defs, instance: dg.DagsterInstance, lost: Sequence[LostPartition]) -> list[LostPartition]:
    """The lost partitions to recompute now: those Dagster itself thinks fresh (so automation will not) and whose
    upstream partitions are all fresh and held by the store. The rest follow once these have run."""
    if not lost:
        return []
    graph = asset_graph(defs)
    status = partition_status(defs, instance)
    gone = {(p.asset, p.partition) for p in lost}
    ready = []
    with partition_loading_context(dynamic_partitions_store=instance):
        for item in lost:
            key = dg.AssetKey.from_user_string(item.asset)
            parents = graph.get_parents_partitions(key, item.partition).parent_partitions
            if status[item.asset].get(item.partition) == StaleStatus.FRESH and all(
                    (p.asset_key.to_user_string(), p.partition_key) not in gone
                    and status[p.asset_key.to_user_string()].get(p.partition_key) == StaleStatus.FRESH for p in parents):
                ready.append(item)
    return ready


def _partition_keys(graph: BaseAssetGraph, key: dg.AssetKey, instance: dg.DagsterInstance) -> list[str]:
    partitions_def = graph.get(key).partitions_def
    return list(partitions_def.get_partition_keys(dynamic_partitions_store=instance)) if partitions_def else []
