"""The accelerator pool gets one slot per visible GPU (simulated with ZIPFIT_GPU_COUNT), one without GPUs."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

from zipfit_pipeline.orchestration.accelerators import ACCELERATOR_POOL
from zipfit_pipeline.orchestration.dagster_internals import pool_slots


def test_size_pools_gives_one_slot_per_gpu(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for gpus, slots in (("4", 4), ("0", 1)):
        env = {"DAGSTER_HOME": str(tmp_path), "ZIPFIT_GPU_COUNT": gpus, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, "-m", "zipfit_pipeline.cli", "size-pools"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"pool accelerator: {slots} slot(s)" in done.stdout
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert pool_slots(instance, ACCELERATOR_POOL) == slots
