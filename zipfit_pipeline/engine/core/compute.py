"""Where per-text work runs: on this machine, or on a Ray cluster. One section of the project file (`compute`)
decides it for every stage that works text by text: scoring, token counts, DSIR's n-gram counts, BM25's term
counts, test-split checks and embeddings.

A stage hands `ComputeSettings.map` a picklable callable over a batch of texts (its "work") and a stream of batches; it
gets the results back in input order, a few batches in flight at a time, and stores each as it arrives. On this
machine the stage may pass its own local way of running the work (threads, a process pool); on Ray every batch is
a task, retried elsewhere when its worker or node is lost (`ray_cluster.py`). Where the work runs never changes
what it returns, so no stage's version reads this section.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

from pydantic import Field

from zipfit_pipeline.engine.core.settings import Settings

Backend = Literal["local", "ray"]
Result = TypeVar("Result")


class ComputeSettings(Settings):
    backend: Backend = Field(
        "local", description="local: this machine's cores; ray: tasks on a Ray cluster (started here if no address)"
    )
    workers: int = Field(
        0, ge=0, description="cores (Ray: tasks in flight at once); 0: one per core here, or per CPU of the cluster"
    )
    ray_address: str | None = Field(
        None, description="the cluster to join (`auto`, `head:6379`, `ray://head:10001`); none starts one here"
    )
    retries: int = Field(3, ge=0, description="Ray: times a batch lost with its worker or node runs again elsewhere")

    def local_workers(self) -> int:
        return self.workers or len(os.sched_getaffinity(0)) or 1

    def map(
        self,
        work: Callable[[list[str]], Result],
        batches: Iterable[list[str]],
        local: Callable[[list[str]], Result] | None = None,
    ) -> Iterator[Result]:
        """`work(batch)` of each batch, in order: on Ray, or here through `local` (default: `work` itself)."""
        if self.backend == "ray":
            from zipfit_pipeline.engine.core.ray_cluster import ray_map

            yield from ray_map(work, batches, self.ray_address, self.workers, self.retries)
        else:
            yield from map(local or work, batches)


LOCAL = ComputeSettings()
