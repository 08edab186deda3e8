"""What is out of date: Dagster's stale status of each partition, carried down the graph.

Dagster marks a partition stale when its own code version changed or an upstream partition it read has a
new data version; it does not mark the partitions below that one. A user asking "what would a refresh
recompute?" wants the whole cone, so a partition here is out of date when it is stale, missing, lost from
the store (see `store_state.py`), or reads an out-of-date partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from zipfit_pipeline.orchestration.dagster_internals import AssetGraphView, Status
from zipfit_pipeline.orchestration.store_state import LostPartition

# What these functions read the asset graph from: the Definitions (CLI, tests) or a sensor's repository.
Defs = dg.Definitions | dg.RepositoryDefinition


def partition_status(defs: Defs, instance: dg.DagsterInstance) -> dict[str, dict[str, Status]]:
    """Dagster's own status (FRESH, STALE or MISSING) of every partition, by asset name."""
    graph = AssetGraphView(defs, instance)
    return {asset: {p: graph.status(asset, p) for p in graph.partitions(asset)} for asset in graph.assets()}


def out_of_date(defs: Defs, instance: dg.DagsterInstance, lost: Sequence[LostPartition] = ()) -> dict[str, list[str]]:
    """Partitions a refresh would recompute, by asset name in dependency order (assets with none omitted)."""
    result: dict[str, list[str]] = {}
    for asset, partition in _dirty(AssetGraphView(defs, instance), lost):
        result.setdefault(asset, []).append(partition)
    return result


def restorable(defs: Defs, instance: dg.DagsterInstance, lost: Sequence[LostPartition]) -> list[LostPartition]:
    """The lost partitions (or those whose declared inputs changed) to recompute now: those Dagster itself thinks
    fresh (so automation will not) and that read no out-of-date partition, directly or further up. The rest follow
    once those have run (most through automation, as their upstream data versions change)."""
    if not lost:
        return []
    graph = AssetGraphView(defs, instance)
    dirty = _dirty(graph, lost)
    return [
        item
        for item in lost
        if item.partition in graph.partitions(item.asset)
        and graph.status(item.asset, item.partition) == "FRESH"
        and not any(parent in dirty for parent in graph.parents(item.asset, item.partition))
    ]


def _dirty(graph: AssetGraphView, lost: Sequence[LostPartition]) -> dict[tuple[str, str], None]:
    """Every partition that is stale, missing, lost or has changed inputs, or reads one that is, in dependency order."""
    gone = {(p.asset, p.partition) for p in lost}
    dirty: dict[tuple[str, str], None] = {}
    for asset in graph.assets():
        for partition in graph.partitions(asset):
            if (
                graph.status(asset, partition) != "FRESH"
                or (asset, partition) in gone
                or any(parent in dirty for parent in graph.parents(asset, partition))
            ):
                dirty[(asset, partition)] = None
    return dirty
