"""Score a stored dataset against a target set, chunk by chunk, committing finished chunks every few seconds.

Only texts with no stored score for (target set, compressor, level, engine version) are scored, so a rerun
after a kill, or after new documents arrive, pays only for what is missing. The store is never held for the
run: the to-do list is a column of hashes, texts are read a batch at a time, and each commit is one short
transaction, so other processes (a fine-tune recording its result, a report) write in between.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa

from zipfit_pipeline.engine import native
from zipfit_pipeline.engine.alignment import score_chunks
from zipfit_pipeline.engine.loaders import content_hash, set_hash
from zipfit_pipeline.engine.progress import ProgressLog
from zipfit_pipeline.engine.settings import ScoringSettings, SelectionSettings, zipfit_scores
from zipfit_pipeline.engine.store import Store

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


def target_set_hash(targets: Sequence[str]) -> str:
    return set_hash([content_hash(t) for t in targets])


@dataclass(frozen=True)
class ScoreSet:
    """What one ZIP-FIT selection method ranks by: the pool scored against `targets` with one compressor and level."""

    method: str
    targets: tuple[str, ...]
    compressor: str
    level: int

    @property
    def target_hash(self) -> str:
        return target_set_hash(self.targets)


def target_subset(targets: Sequence[str], n: int, seed: int) -> list[str]:
    """n of the targets, in their order, chosen by a seeded hash of their content: the same texts whatever order
    the target file lists them in, and each smaller subset inside every larger one (for the ablation on n)."""
    if n > len(targets):
        raise ValueError(f"selection.target_subsets asks for {n} targets, but the alignment split holds {len(targets)}")
    key = [hashlib.sha256(f"{seed}:{content_hash(t)}".encode()).digest() for t in targets]
    chosen = sorted(sorted(range(len(targets)), key=lambda i: key[i])[:n])
    return [targets[i] for i in chosen]


def score_sets(targets: Sequence[str], scoring: ScoringSettings, selection: SelectionSettings) -> list[ScoreSet]:
    """ZIP-FIT's score set, then one per compressor variant and one per target subset, with their target texts."""
    return [
        ScoreSet(
            s.method,
            tuple(targets if s.targets is None else target_subset(targets, s.targets, selection.target_subset_seed)),
            s.compressor,
            s.level,
        )
        for s in zipfit_scores(scoring, selection)
    ]


def score_dataset(
    store: Store,
    dataset: str,
    targets: list[str],
    compressor: str,
    level: int,
    chunk_size: int = 256,
    workers: int = 1,
    progress: Callable[[str], None] = print,
    backend: str = "local",
    ray_address: str | None = None,
    commit_seconds: float = COMMIT_SECONDS,
) -> ScoringReport:
    """Score the texts of a stored dataset that have no score for this target set and compressor yet."""
    target_hash = target_set_hash(targets)
    store.register_score_set(target_hash, compressor, level, len(targets))
    todo = store.unscored_hashes(dataset, target_hash, compressor, level)
    distinct = store.distinct_texts(dataset)
    reused = distinct - len(todo)
    in_flight: deque[pa.Array] = deque()

    def chunks() -> Iterator[list[str]]:
        batch_size = chunk_size * READ_BATCH_CHUNKS
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = store.texts_of(batch)
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
            store.insert_scores(target_hash, compressor, level, finished_hashes, finished_scores)
            done += len(finished_hashes)
            finished_hashes, finished_scores = [], []
            log.update(done)
        last_commit = time.monotonic()

    # A pool costs a second or so to start: never start more workers than there are chunks to score, and none for
    # a to-do list that one process scores in about that time (a refresh after a few new documents).
    workers = max(1, min(workers, math.ceil(len(todo) / chunk_size)))
    if backend in ("local", "processes") and len(todo) * len(targets) < IN_PROCESS_PAIRS:
        workers = 1
    for scores in score_chunks(chunks(), targets, compressor, level, workers, backend, ray_address):
        finished_hashes += in_flight.popleft().to_pylist()
        finished_scores += scores.tolist()
        if time.monotonic() - last_commit >= commit_seconds:
            commit()
    commit()
    path = native.code_path(compressor, level)
    report = ScoringReport(target_hash, distinct, reused, done, len(targets), time.monotonic() - started, path)
    store.record_scoring_run(dataset, target_hash, compressor, level, done, report.seconds, path)
    return report
