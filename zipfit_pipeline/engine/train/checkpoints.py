"""Fine-tuned checkpoints on disk: where they go, whether the sweep fits, and dropping them once measured.

A paper-style sweep is 12-16 fine-tunes per model; at 2-5 GB each (bf16) it can fill a disk hours in. The disk a
sweep still needs is estimated before a fine-tune starts and refused with a clear error, and with
`keep_checkpoints: false` each fine-tune's weights are deleted once every eval of it is recorded (its figures stay).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.train.tables import TrainTables

GB = 1e9


def checkpoint_dir(models_dir: Path, key: RunKey) -> Path:
    """The folder of one fine-tune's checkpoints: one subfolder per run, only the recorded one kept."""
    return models_dir / key.model / key.target / key.label()


def remove_other_checkpoints(runs: TrainTables, folder: Path, keep: Path) -> None:
    """Older runs' checkpoints and a killed run's partial one, once the store points at `keep`: only run folders this
    store recorded as its own before writing them, never a file, a link or another project's folder."""
    own = runs.owned_checkpoint_folders()
    removed = []
    for path in folder.iterdir():
        if path != keep and path.name in own and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed.append(path.name)
    runs.forget_checkpoint_folders(removed)


def checkpoints_to_write(store: Store, sweep: Sequence[RunKey]) -> int:
    """Fine-tunes of the sweep with no checkpoint on disk yet (never trained, or dropped after their evals)."""
    rows = TrainTables(store).runs()
    missing = 0
    for key in sweep:
        row = rows.get(key)
        missing += row is None or bool(row["released"]) or not Path(row["checkpoint"]).is_dir()
    return missing


def check_disk(models_dir: Path, checkpoint_bytes: int, to_write: int, keep: bool, at_once: int = 1) -> None:
    """Refuse to start when the sweep's checkpoints cannot fit: all `to_write` of them when they are kept, else the
    `at_once` being written and measured at a time; one more either way (a rerun writes before it deletes)."""
    needed = checkpoint_bytes * ((to_write if keep else min(to_write, at_once)) + 1)
    models_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(models_dir).free
    if needed > free:
        kept = f"{to_write} fine-tunes still to save" if keep else f"{at_once} at a time, dropped after their evals"
        raise RuntimeError(
            f"not enough disk for the fine-tunes' checkpoints in {models_dir}: {kept}, {checkpoint_bytes / GB:.2f} GB "
            f"each, need {needed / GB:.1f} GB and {free / GB:.1f} GB are free. Free space, set "
            "training.keep_checkpoints: false, or train LoRA adapters (training.lora)"
        )


def release_checkpoint(store: Store, key: RunKey, run: dict[str, Any], log: Callable[[str], None]) -> None:
    """Delete the checkpoint of `key`'s current run `run` once its evals are recorded (`keep_checkpoints: false`):
    the store keeps its figures and marks it released."""
    TrainTables(store).release_checkpoint(key, run["run_id"])
    checkpoint = Path(run["checkpoint"])
    if checkpoint.is_dir() and not checkpoint.is_symlink():
        shutil.rmtree(checkpoint)
    log(f"{key}: checkpoint deleted (keep_checkpoints: false); its figures stay in the store")
