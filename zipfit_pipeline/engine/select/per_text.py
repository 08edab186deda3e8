"""Work done once per text and stored by content hash: token counts, DSIR's n-gram features, test-split checks.

A selection asks the store which of the pool's texts lack a result, reads only those texts, a batch at a
time, and stores each batch's results before reading the next. Memory is bounded by the batch, not the pool;
a killed run keeps its finished batches; a re-selection after new documents pays only for the new texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from zipfit_pipeline.engine.core.progress import ProgressLog
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.select.tables import SelectTables

if TYPE_CHECKING:  # only a type here
    from zipfit_pipeline.engine.core.store import Store

READ_BATCH = 4096  # texts read, computed and stored at a time
PROGRESS_LINES = 10
Result = TypeVar("Result")


def fill_missing(
    store: Store,
    table: str,
    key: list[Any],
    hashes: pa.Array,
    compute: Callable[[list[str]], Result],
    insert: Callable[[pa.Array, Result], None],
    what: str,
    log: Callable[[str], None],
) -> int:
    """Compute and store `table`'s result for every given text that has none under `key`; returns how many.
    Logs at most PROGRESS_LINES lines, with texts per second and the time left."""
    missing = SelectTables(store).unstored(table, key, hashes)
    progress = ProgressLog(
        len(missing),
        lambda n, rate, left: f"{what}: {n:,}/{len(missing):,} computed, {rate:,.0f} texts/s, ETA {left:.0f}s",
        log,
        PROGRESS_LINES,
    )
    for start in range(0, len(missing), READ_BATCH):
        batch = missing[start : start + READ_BATCH]
        insert(batch, compute(IngestTables(store).texts_of(batch)))
        if start + len(batch) < len(missing):  # the summary below is the last line
            progress.update(start + len(batch))
    log(f"{what}: {len(hashes) - len(missing):,} stored, {len(missing):,} computed now")
    return len(missing)
