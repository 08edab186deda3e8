"""Where a fine-tune or an eval runs, and in which dtype.

On a machine with several GPUs every running step holds a GPU of its own: it takes the first GPU whose lock file
(`<artifacts>/devices/cuda<i>.lock`) no other process holds and keeps it until the step ends. The locks are the
kernel's (flock), so a killed step frees its GPU at once. Dagster's `accelerator` pool has one slot per GPU
(`accelerators.size_accelerator_pool`), so steps rarely wait here; the lock makes the assignment safe anyway.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

GPU_COUNT_ENV = "ZIPFIT_GPU_COUNT"  # overrides the visible GPU count (tests simulate GPUs on a CPU machine with it)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gpu_count() -> int:
    override = os.environ.get(GPU_COUNT_ENV, "").strip()
    return int(override) if override else torch.cuda.device_count()


@contextmanager
def claimed_device(
    requested: str, lock_dir: Path, log: Callable[[str], None] = print, poll_seconds: float = 5.0
) -> Iterator[torch.device]:
    """The device a step runs on, held until the block ends: `auto` is a free GPU (waiting for one if all are
    held) or the CPU where there is none; `cpu` and `cuda:<i>` are taken as given."""
    gpus = gpu_count()
    if requested == "cpu" or (requested == "auto" and gpus == 0):
        yield torch.device("cpu")
        return
    if requested != "auto":
        yield torch.device(requested if ":" in requested else "cuda:0")
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for index in range(gpus):
            handle = open(lock_dir / f"cuda{index}.lock", "a+")  # noqa: SIM115 - held until the step ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield torch.device(f"cuda:{index}")
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if not waited:
            log(f"all {gpus} GPUs are held by other steps: waiting for one")
            waited = True
        time.sleep(poll_seconds)


def compute_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bf16 on CUDA GPUs that support it (Ampere and later), fp32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name == "fp16" and device.type != "cuda":
        raise ValueError(f"dtype fp16 needs a GPU and this step runs on {device}: use bf16 or fp32 (or auto)")
    return DTYPES[name]


@contextmanager
def fast_matmuls(device: torch.device) -> Iterator[None]:
    """TF32 tensor cores for the float32 matmuls left in training on Ampere and later, restored afterwards: the test
    loss is measured with full float32 matmuls (TF32 keeps 10 mantissa bits, too few for differences of ~1e-3)."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
