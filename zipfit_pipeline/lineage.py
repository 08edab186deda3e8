"""What is out of date: Dagster's stale status of each partition, carried down the graph.

Dagster marks a partition stale when its own code version changed or an upstream partition it read has a
new data version; it does not mark the partitions below that one. A user asking "what would a refresh
recompute?" wants the whole cone, so a partition here is out of date when it is stale, missing, or reads
an out-of-date partition.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.loader import LoadingContext


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


def partition_status(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, dict[str, StaleStatus]]:
    """Dagster's own status (FRESH, STALE or MISSING) of every partition, by asset name."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, _InstanceLoadingContext(instance))
    with partition_loading_context(dynamic_partitions_store=instance):
        return {
            key.to_user_string(): {p: resolver.get_status(key, p) for p in _partition_keys(graph, key, instance)}
            for key in graph.toposorted_asset_keys
        }


def out_of_date(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Partitions a refresh would recompute, by asset name in dependency order (assets with none omitted)."""
    graph = defs.resolve_asset_graph()
    status = partition_status(defs, instance)
    dirty: set[tuple[dg.AssetKey, str]] = set()
    with partition_loading_context(dynamic_partitions_store=instance):
        for key in graph.toposorted_asset_keys:
            for partition, own in status[key.to_user_string()].items():
                parents = graph.get_parents_partitions(key, partition).parent_partitions
                if own != StaleStatus.FRESH or any((p.asset_key, p.partition_key) in dirty for p in parents):
                    dirty.add((key, partition))
    result: dict[str, list[str]] = {}
    for key in graph.toposorted_asset_keys:
        partitions = [p for p in status[key.to_user_string()] if (key, p) in dirty]
        if partitions:
            result[key.to_user_string()] = partitions
    return result


def _partition_keys(graph: BaseAssetGraph, key: dg.AssetKey, instance: dg.DagsterInstance) -> list[str]:
    partitions_def = graph.get(key).partitions_def
    return list(partitions_def.get_partition_keys(dynamic_partitions_store=instance)) if partitions_def else []
