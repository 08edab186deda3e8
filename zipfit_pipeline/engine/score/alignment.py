"""ZIP-FIT alignment for streams of source texts: chunks go to the scorer (`scorer.py`) on threads (the native path
releases the GIL), in a process pool, or as Ray tasks (`core/ray_cluster.py`); the pool's and Ray's workers get a
`ScoreWork`, which carries the targets and builds its scorer once per process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

import numpy as np

from zipfit_pipeline.engine.core.compute import ComputeSettings
from zipfit_pipeline.engine.score import native
from zipfit_pipeline.engine.score.allocator import keep_freed_memory
from zipfit_pipeline.engine.score.compression import compressor_build, size_function
from zipfit_pipeline.engine.score.scorer import AlignmentScorer
from zipfit_pipeline.engine.score.settings import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSOR, DEFAULT_LEVEL

# SPEC.md's golden values (stock zlib 1.2.13): sizes at gzip level 1, and similarities (compressor, level, x, t, sim).
GOLDEN_A = "def add(a, b):\n    return a + b\n"
GOLDEN_B1 = "def sub(a, b):\n    return a - b\n"
GOLDEN_B2 = "The quick brown fox jumps over the lazy dog."
GOLDEN_GZIP1_SIZES = {GOLDEN_A: 50, GOLDEN_B1: 50, GOLDEN_B2: 63, GOLDEN_A + GOLDEN_B1: 61, GOLDEN_A + GOLDEN_B2: 92}
GOLDEN_SIMILARITIES = [
    ("gzip", 1, GOLDEN_A, GOLDEN_B1, 0.78),
    ("gzip", 1, GOLDEN_A, GOLDEN_B2, 0.33333333333333337),
    ("lz4", 0, GOLDEN_A, GOLDEN_B1, 0.6909090909090909),
]

# local: threads on the native path, processes on the pure-Python path; ray: tasks, on a cluster or started here
Backend = Literal["local", "processes", "threads", "ray"]
BACKENDS: tuple[str, ...] = get_args(Backend)
THREAD_PIECE = 16  # texts per task on the threads backend


@dataclass(frozen=True)
class ScoreWork:
    """Scores of a chunk against the target set, wherever it runs (a process of the pool, a Ray task): the targets
    travel with it, and each process builds its scorer once. It refuses to score on a worker whose compressor build
    or code path differs from the caller's, since the scores are recorded under the caller's."""

    targets: tuple[str, ...]
    compressor: str
    level: int
    build: str
    code_path: str

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return _scorer(self).score_many(texts)


@lru_cache(maxsize=2)
def _scorer(work: ScoreWork) -> AlignmentScorer:
    keep_freed_memory()
    return AlignmentScorer(work.targets, work.compressor, work.level, work.build, work.code_path)


def score_chunks(
    chunks: Iterable[Sequence[str]],
    targets: Sequence[str],
    compressor: str = DEFAULT_COMPRESSOR,
    level: int = DEFAULT_LEVEL,
    workers: int = 1,
    backend: str = "local",
    cluster: ComputeSettings | None = None,
) -> Iterator[np.ndarray]:
    """Yield one array of scores per chunk of source texts, in input order.

    At most `2 * workers` chunks are in flight, so memory is bounded by the chunk size, not the corpus.
    `backend` is `processes` (a pool on this machine), `threads` (in this process: the native path releases the GIL
    while it compresses), `local` (threads on the native path, processes on the pure-Python path) or `ray` (Ray
    tasks on `cluster`, the project's `compute` section with its address, workers and retries, or else on a Ray
    started here with `workers` CPUs). Workers score on this process's code path (`native.code_path`) or refuse.
    """
    path = native.code_path(compressor, level)
    work = ScoreWork(tuple(targets), compressor, level, compressor_build(compressor), path)
    if backend == "ray":
        ray = cluster or ComputeSettings(backend="ray", workers=workers)
        yield from ray.map(work, (list(chunk) for chunk in chunks))
        return
    if backend not in BACKENDS:
        raise ValueError(f"unknown scoring backend {backend!r}; choose {', '.join(BACKENDS)}")
    if backend == "local":
        backend = "threads" if path == native.NATIVE else "processes"
    if workers <= 1 or backend == "threads":
        scorer = _scorer(work)
        if workers <= 1:
            yield from map(scorer.score_many, chunks)
        else:
            with ThreadPoolExecutor(workers) as threads:
                yield from _in_order(threads, scorer.score_many, chunks, 2 * workers, THREAD_PIECE)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as processes:
        yield from _in_order(processes, work, chunks, 2 * workers)


def _in_order(
    pool: Executor,
    score: Callable[[list[str]], np.ndarray],
    chunks: Iterable[Sequence[str]],
    in_flight: int,
    piece: int | None = None,
) -> Iterator[np.ndarray]:
    """Results in input order, with at most `in_flight` chunks submitted and not yet yielded; each chunk is
    submitted in pieces of `piece` texts if given (threads share no pickling cost, and small pieces keep them all
    busy until the last chunk ends)."""
    pending: deque[list[Future[np.ndarray]]] = deque()
    for chunk in chunks:
        texts = list(chunk)
        step = piece or max(1, len(texts))
        pending.append([pool.submit(score, texts[i : i + step]) for i in range(0, len(texts), step)])
        if len(pending) >= in_flight:
            yield _joined(pending.popleft())
    while pending:
        yield _joined(pending.popleft())


def _joined(pieces: list[Future[np.ndarray]]) -> np.ndarray:
    return np.concatenate([p.result() for p in pieces]) if pieces else np.zeros(0, dtype=np.float64)


def alignment_scores(
    sources: Sequence[str],
    targets: Sequence[str],
    compressor: str = DEFAULT_COMPRESSOR,
    level: int = DEFAULT_LEVEL,
    workers: int = 1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    backend: str = "local",
) -> np.ndarray:
    """Scores of all sources against the target set, in source order (the in-memory convenience API)."""
    chunks = (sources[i : i + chunk_size] for i in range(0, len(sources), chunk_size))
    parts = list(score_chunks(chunks, targets, compressor, level, workers, backend))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def golden_mismatches(compressor: str) -> list[str]:
    """Where this process's build disagrees with SPEC.md's golden values, through the scorer that computes the
    stored scores (empty: it reproduces them, or none are known for this compressor)."""
    build = compressor_build(compressor)
    found = []
    if compressor == "gzip":
        size = size_function("gzip", 1)
        found += [
            f"C({text!r}) = {size(text.encode())} at gzip level 1, expected {want} ({build})"
            for text, want in GOLDEN_GZIP1_SIZES.items()
            if size(text.encode()) != want
        ]
    for name, level, x, t, want in GOLDEN_SIMILARITIES:
        if name != compressor:
            continue
        similarity = AlignmentScorer([t], name, level).score(x)
        if similarity != want:
            found.append(
                f"similarity({x!r}, {t!r}) = {similarity!r} at {name} level {level}, expected {want!r} ({build})"
            )
    return found
