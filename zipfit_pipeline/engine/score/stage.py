"""Score a stored dataset against a target set, chunk by chunk, committing finished chunks every few seconds.

Only texts with no stored score for (target set, compressor, level, engine version) are scored, so a rerun
after a kill, or after new documents arrive, pays only for what is missing. The store is never held for the
run: the to-do list is a column of hashes, texts are read a batch at a time, and each commit is one short
transaction, so other processes (a fine-tune recording its result, a report) write in between.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.progress import ProgressLog
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.score import native
from zipfit_pipeline.engine.score.alignment import score_chunks
from zipfit_pipeline.engine.score.score_set import ScoreSet
from zipfit_pipeline.engine.score.settings import ScoringSettings
from zipfit_pipeline.engine.score.tables import ScoreTables

READ_BATCH_CHUNKS = 16  # texts are read this many chunks at a time, each batch one short read of the store
COMMIT_SECONDS = 2.0  # finished chunks are committed at least this often (a kill loses at most this much work)
PROGRESS_LINES = 20  # every 5%, and the end
IN_PROCESS_PAIRS = 50_000  # about a second of gzip-9 on one core: fewer pairs are scored without starting a pool


@dataclass(frozen=True)
class ScoringReport:
    target_hash: str
    distinct_texts: int
    reused: int
    scored: int
    n_targets: int
    seconds: float
    code_path: str

    @property
    def pairs_scored(self) -> int:
        return self.scored * self.n_targets

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_scored / self.seconds if self.seconds > 0 else 0.0


def score_dataset(
    store: Store,
    dataset: str,
    score_set: ScoreSet,
    settings: ScoringSettings,
    progress: Callable[[str], None] = print,
    commit_seconds: float = COMMIT_SECONDS,
    compute: ComputeSettings = LOCAL,
) -> ScoringReport:
    """Score the texts of a stored dataset that have no score in this score set yet."""
    scores = ScoreTables(store)
    documents = IngestTables(store)
    targets = list(score_set.targets)
    scores.register(score_set)
    todo = scores.unscored(score_set, documents.distinct_hashes(dataset))
    distinct = documents.distinct_texts(dataset)
    reused = distinct - len(todo)
    in_flight: deque[pa.Array] = deque()

    def chunks() -> Iterator[list[str]]:
        chunk_size = settings.chunk_size
        batch_size = chunk_size * READ_BATCH_CHUNKS
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = documents.texts_of(batch)
            for offset in range(0, len(batch), chunk_size):
                in_flight.append(batch[offset : offset + chunk_size])
                yield texts[offset : offset + chunk_size]

    started = last_commit = time.monotonic()
    done = 0
    finished_hashes: list[str] = []
    finished_scores: list[float] = []
    pairs = len(targets)
    log = ProgressLog(
        len(todo),
        lambda n, rate, left: (
            f"{dataset}: {n:,}/{len(todo):,} texts ({n * pairs:,} pairs) scored, "
            f"{rate * pairs:,.0f} pairs/s, ETA {left:.0f}s"
        ),
        progress,
        PROGRESS_LINES,
        started,
    )

    def commit() -> None:
        nonlocal done, finished_hashes, finished_scores, last_commit
        if finished_hashes:
            scores.insert(score_set, finished_hashes, finished_scores)
            done += len(finished_hashes)
            finished_hashes, finished_scores = [], []
            log.update(done)
        last_commit = time.monotonic()

    # A pool costs a second or so to start: never start more workers than there are chunks to score, and none for
    # a to-do list that one process scores in about that time (a refresh after a few new documents).
    workers = max(1, min(compute.local_workers(), math.ceil(len(todo) / settings.chunk_size)))
    if compute.backend == "local" and len(todo) * len(targets) < IN_PROCESS_PAIRS:
        workers = 1
    compressor, level = score_set.compressor, score_set.level
    cluster = compute if compute.backend == "ray" else None  # its own workers and retries
    for chunk_scores in score_chunks(chunks(), targets, compressor, level, workers, compute.backend, cluster):
        finished_hashes += in_flight.popleft().to_pylist()
        finished_scores += chunk_scores.tolist()
        if time.monotonic() - last_commit >= commit_seconds:
            commit()
    commit()
    path = native.code_path(compressor, level)
    report = ScoringReport(
        score_set.target_hash, distinct, reused, done, len(targets), time.monotonic() - started, path
    )
    scores.record_run(dataset, score_set, done, report.seconds, path)
    return report


def pool_scores(store: Store, datasets: Sequence[str], score_set: ScoreSet) -> pa.Table:
    """Each distinct text of the datasets with its score in this set (null if unscored), as (dataset, row_index,
    doc_id, content_hash, score) of its first document in (dataset order, row order): the selection pool, without
    texts."""
    pool = IngestTables(store).pool_documents(datasets)
    return pool.append_column("score", ScoreTables(store).scores_of(score_set, pool.column("content_hash")))


def summarize_scores(
    store: Store, dataset: str, score_set: ScoreSet, quantiles: Sequence[float], top_n: int
) -> dict[str, Any]:
    """A dataset's scores in one set: documents, mean, quantiles, a digest of every (text, score) in row order (it
    changes exactly when a stored score does) and the `top_n` best texts with their scores."""
    documents = IngestTables(store)
    summary = ScoreTables(store).summary(score_set, documents.row_hashes(dataset), quantiles, top_n)
    return {**summary, "top_texts": documents.texts_of(summary.pop("top_hashes"))}
