"""Materialize a project's assets in dependency order, as real recorded Dagster runs.

Runs are in-process and sequential (one DuckDB writer at a time) and land in the given instance, so the
UI shows them afterwards. Each stage is materialized for all its partitions before the next starts;
`only_out_of_date` restricts that to what `lineage.out_of_date` reports before each stage (stale, missing, lost
from the store, or below one of these).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg

from zipfit_pipeline.config import ProjectConfig, load_project
from zipfit_pipeline.orchestration.asset_keys import STAGES
from zipfit_pipeline.orchestration.lineage import out_of_date
from zipfit_pipeline.orchestration.partitions import register_sources
from zipfit_pipeline.orchestration.recovery import recover_killed_runs
from zipfit_pipeline.orchestration.store_state import to_recompute

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # asset logs, not engine events


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    log: Callable[[str], None] = print,
    stages: tuple[str, ...] = STAGES,
    only_out_of_date: bool = False,
    project: ProjectConfig | None = None,
) -> dict[str, list[str]]:
    """Materialize every partition of the given stages (or only the out-of-date ones); returns what ran. `project`:
    the project file the definitions were built from, if the caller has read it already."""
    resources = defs.resources or {}
    for message in recover_killed_runs(instance):
        log(message)
    config = project or load_project(resources["project"].config_path)
    register_sources(instance, config)
    by_key = {a.key.to_user_string(): a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)}
    todo = None
    reported: set[tuple[str, str]] = set()
    started = time.monotonic()
    done: dict[str, list[str]] = {}
    for name in (stage for stage in stages if stage in by_key):
        if only_out_of_date:
            # Asked again at each stage: a partition below one that was recomputed with the same data version (an
            # unchanged selection, a reused fine-tune) is no longer out of date.
            lost = to_recompute(config, by_key.values(), instance)
            for item in lost:
                if (item.asset, item.partition) not in reported:
                    reported.add((item.asset, item.partition))
                    log(f"{item.asset} [{item.partition}] is out of date: {item.reason}")
            todo = out_of_date(defs, instance, lost)
        asset = by_key[name]
        assert asset.partitions_def is not None, f"{name} is not partitioned"
        keys = asset.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        for partition in keys if todo is None else [k for k in keys if k in todo.get(name, ())]:
            log(f"[{time.monotonic() - started:6.0f}s] materializing {name} [{partition}]")
            result = dg.materialize(
                list(by_key.values()),
                selection=[asset.key],
                partition_key=partition,
                instance=instance,
                resources=resources,
                run_config=QUIET_CONSOLE,
            )
            if not result.success:
                raise RuntimeError(f"{name} [{partition}] failed; see the run in the Dagster UI")
            done.setdefault(name, []).append(partition)
    log(f"[{time.monotonic() - started:6.0f}s] done")
    return done
