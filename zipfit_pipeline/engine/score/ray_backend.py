"""Score chunks on a Ray cluster: one actor per worker holds the target set, chunks stream through them.

Ray is an optional extra (`pip install 'zipfit-pipeline[ray]'`). With no address, Ray starts a local
cluster on this machine; `address="auto"` or `"ray://head:10001"` joins an existing one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from zipfit_pipeline.engine.score.allocator import keep_freed_memory
from zipfit_pipeline.engine.score.compression import compressor_build
from zipfit_pipeline.engine.score.scorer import AlignmentScorer


def _ray() -> Any:
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise ImportError("the ray backend needs the optional extra: pip install 'zipfit-pipeline[ray]'") from error
    return ray


class _ScorerActor:
    """Holds one AlignmentScorer, so the targets cross the network once per worker; it refuses to start on a node
    whose compressor build or code path differs from the driver's, since the scores are recorded under the driver's."""

    def __init__(self, targets: list[str], compressor: str, level: int, build: str, code_path: str) -> None:
        keep_freed_memory()
        self.scorer = AlignmentScorer(targets, compressor, level, build, code_path)

    def score(self, texts: list[str]) -> np.ndarray:
        return self.scorer.score_many(texts)


def ray_score_chunks(
    chunks: Iterable[Sequence[str]],
    targets: Sequence[str],
    compressor: str,
    level: int,
    workers: int,
    address: str | None = None,
    code_path: str | None = None,
) -> Iterator[np.ndarray]:
    """Like `alignment.score_chunks`, on Ray actors; results in input order, at most 2 chunks per actor in flight."""
    ray = _ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray.init(log_to_driver=False, **options)
    actor_class = ray.remote(num_cpus=1)(_ScorerActor)
    build = compressor_build(compressor)
    actors = [actor_class.remote(list(targets), compressor, level, build, code_path) for _ in range(workers)]
    pending: deque[Any] = deque()
    try:
        for i, chunk in enumerate(chunks):
            pending.append(actors[i % len(actors)].score.remote(list(chunk)))
            if len(pending) >= 2 * len(actors):
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:
        for actor in actors:
            ray.kill(actor)
