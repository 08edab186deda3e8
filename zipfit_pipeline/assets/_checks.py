"""Asset checks evaluated per partition, shown in the UI's Checks tab next to each asset."""

from __future__ import annotations

import warnings

import dagster as dg


def partition_check(name: str, asset: str, partitions_def: dg.PartitionsDefinition, description: str,
                    blocking: bool = False) -> dg.AssetCheckSpec:
    """A check with a result per partition, so that one target's failure never blocks another's work.

    Dagster 1.13 marks partitioned checks as a preview and warns on every load; the warning is silenced here only.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=partitions_def, description=description, blocking=blocking)
