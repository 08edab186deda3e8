"""The `accelerator` pool's size: one slot per visible GPU (one on a machine without), so that an 8-GPU machine
trains and evaluates 8 partitions at once while each step holds a GPU of its own (`engine/core/devices.py`).

Dagster keeps pool limits in its instance (`dagster instance concurrency set`); `zipfit size-pools` (run by
`make ui`) sets this one from the GPUs the machine shows, as that command does (`dagster_internals.set_pool_slots`).
"""

from __future__ import annotations

import dagster as dg

from zipfit_pipeline.orchestration.dagster_internals import set_pool_slots

ACCELERATOR_POOL = "accelerator"


def size_accelerator_pool(instance: dg.DagsterInstance, gpus: int | None = None) -> int:
    """Set the pool's slots to the GPU count (`ZIPFIT_GPU_COUNT` overrides it); returns the slots."""
    if gpus is None:
        from zipfit_pipeline.engine.core.devices import gpu_count  # torch: only where this command runs

        gpus = gpu_count()
    slots = max(1, gpus)
    set_pool_slots(instance, ACCELERATOR_POOL, slots)
    return slots
