"""Score a stored dataset against a target set, chunk by chunk, committing each chunk in its own transaction.

Only texts with no stored score for (target set, compressor, level, engine version) are scored, so a rerun
after a kill, or after new documents arrive, pays only for what is missing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from zipfit_pipeline.engine.alignment import score_chunks
from zipfit_pipeline.engine.loaders import content_hash, set_hash
from zipfit_pipeline.engine.store import Store


@dataclass(frozen=True)
class ScoringReport:
    target_hash: str
    distinct_texts: int
    reused: int
    scored: int
    n_targets: int
    seconds: float

    @property
    def pairs_scored(self) -> int:
        return self.scored * self.n_targets

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_scored / self.seconds if self.seconds > 0 else 0.0


def target_set_hash(targets: list[str]) -> str:
    return set_hash([content_hash(t) for t in targets])


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
) -> ScoringReport:
    """Score the texts of a stored dataset that have no score for this target set and compressor yet."""
    with store.session():
        target_hash = target_set_hash(targets)
        store.register_score_set(target_hash, compressor, level, len(targets))
        distinct, reused = store.count_unscored(dataset, target_hash, compressor, level)
        todo = distinct - reused
        pending_hashes: deque[list[str]] = deque()

        def texts() -> Iterator[list[str]]:
            for hashes, chunk in store.iter_unscored(dataset, target_hash, compressor, level, chunk_size):
                pending_hashes.append(hashes)
                yield chunk

        started, done = time.monotonic(), 0
        # A pool costs a second or so to start: never start more workers than there are chunks to score.
        workers = max(1, min(workers, math.ceil(todo / chunk_size)))
        for scores in score_chunks(texts(), targets, compressor, level, workers, backend, ray_address):
            hashes = pending_hashes.popleft()
            store.insert_scores(target_hash, compressor, level, hashes, scores.tolist())
            done += len(hashes)
            elapsed = time.monotonic() - started
            rate = done * len(targets) / elapsed if elapsed else 0.0
            eta = (todo - done) * len(targets) / rate if rate else 0.0
            progress(f"{dataset}: {done}/{todo} texts ({done * len(targets)} pairs) scored, {rate:,.0f} pairs/s, ETA {eta:.0f}s")
        report = ScoringReport(target_hash, distinct, reused, done, len(targets), time.monotonic() - started)
        store.record_scoring_run(dataset, target_hash, compressor, level, done, report.seconds)
        return report
