"""Materialize every asset and partition of a project in dependency order, as real recorded Dagster runs.

Runs are in-process and sequential (one DuckDB writer at a time) and land in the given instance, so the
UI shows them afterwards. Each stage is materialized for all its partitions before the next starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # asset logs, not engine events
STAGES = ("source_documents", "target_documents", "alignment_scores", "selections", "finetuned_model", "eval_loss")


def materialize_all(
    defs: dg.Definitions, instance: dg.DagsterInstance, log: Callable[[str], None] = print, stages: tuple[str, ...] = STAGES
) -> None:
    assets = list(defs.assets or [])
    by_key = {a.key.to_user_string(): a for a in assets if isinstance(a, dg.AssetsDefinition)}
    started = time.monotonic()
    for name in stages:
        asset = by_key[name]
        assert asset.partitions_def is not None, f"{name} is not partitioned"
        for partition in asset.partitions_def.get_partition_keys():
            log(f"[{time.monotonic() - started:6.0f}s] materializing {name} [{partition}]")
            result = dg.materialize(
                assets, selection=[asset.key], partition_key=partition, instance=instance,
                resources=defs.resources, run_config=QUIET_CONSOLE,
            )
            if not result.success:
                raise RuntimeError(f"{name} [{partition}] failed; see the run in the Dagster UI")
    log(f"[{time.monotonic() - started:6.0f}s] done")
