"""Asset checks evaluated per partition, shown in the UI's Checks tab next to each asset."""

from __future__ import annotations

import dagster as dg

from zipfit_pipeline.orchestration.dagster_beta import known_beta_apis


def partition_check(
    name: str, asset: str, partitions_def: dg.PartitionsDefinition, description: str, blocking: bool = False
) -> dg.AssetCheckSpec:
    """A check with a result per partition, so that one target's failure never blocks another's work (a preview in
    Dagster 1.13: see dagster_beta.py)."""
    with known_beta_apis():
        return dg.AssetCheckSpec(
            name, asset=asset, partitions_def=partitions_def, description=description, blocking=blocking
        )
