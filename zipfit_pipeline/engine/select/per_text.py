"""Work done once per text and stored by content hash: token counts, DSIR's n-gram counts, BM25's term counts,
test-split checks, embeddings.

A selection asks the store which of the pool's texts lack a result, reads only those texts, a batch at a time,
hands the batches to the `compute` section's backend (this machine, or a Ray cluster), and stores each batch's
results as they come back. Memory is bounded by the batches in flight, not the pool; a killed run keeps its
finished batches; a re-selection after new documents pays only for the new texts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.progress import ProgressLog
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.select.tables import SelectTables

if TYPE_CHECKING:  # only a type here
    from zipfit_pipeline.engine.core.store import Store

READ_BATCH = 4096  # texts read, computed and stored at a time
PROGRESS_LINES = 10
Result = TypeVar("Result")


def seconds_each(started: float, texts: int) -> float:
    """The seconds per text of a batch begun at `started` (`time.perf_counter()`): what a stored result records of
    its cost, so that a selection can charge its whole pool's per-text work, whenever it was done."""
    return (time.perf_counter() - started) / max(1, texts)


def fill_missing(
    store: Store,
    table: str,
    key: list[Any],
    hashes: pa.Array,
    work: Callable[[list[str]], Result],
    insert: Callable[[pa.Array, Result], None],
    what: str,
    log: Callable[[str], None],
    compute: ComputeSettings = LOCAL,
    local: Callable[[list[str]], Result] | None = None,
) -> int:
    """Compute and store `table`'s result for every given text that has none under `key`; returns how many.
    `work` (picklable) runs on Ray when `compute` says so; on this machine `local` runs instead, if given (a
    stage's own way of using every core). Logs at most PROGRESS_LINES lines, with texts per second and the time
    left."""
    missing = SelectTables(store).unstored(table, key, hashes)
    progress = ProgressLog(
        len(missing),
        lambda n, rate, left: f"{what}: {n:,}/{len(missing):,} computed, {rate:,.0f} texts/s, ETA {left:.0f}s",
        log,
        PROGRESS_LINES,
    )
    in_flight: deque[pa.Array] = deque()

    def batches() -> Iterator[list[str]]:
        for start in range(0, len(missing), READ_BATCH):
            in_flight.append(missing[start : start + READ_BATCH])
            yield IngestTables(store).texts_of(in_flight[-1])

    done = 0
    for result in compute.map(work, batches(), local):
        batch = in_flight.popleft()
        insert(batch, result)
        done += len(batch)
        if done < len(missing):  # the summary below is the last line
            progress.update(done)
    where = f" on Ray ({compute.ray_address or 'started here'})" if compute.backend == "ray" and missing else ""
    log(f"{what}: {len(hashes) - len(missing):,} stored, {len(missing):,} computed now{where}")
    return len(missing)
