"""Score chunks on a Ray cluster: one actor per worker holds the target set, chunks stream through them.

Ray is an optional extra (`pip install 'zipfit-pipeline[ray]'`). With no address, Ray starts a local
cluster on this machine, every one of its servers listening on 127.0.0.1 only; `address="auto"` or
`"ray://head:10001"` joins an existing one.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from zipfit_pipeline.engine.score.allocator import keep_freed_memory
from zipfit_pipeline.engine.score.compression import compressor_build
from zipfit_pipeline.engine.score.scorer import AlignmentScorer

# Read by Ray when it is imported: "0" makes a local node's address 127.0.0.1 (as on macOS and Windows), and Ray's
# servers (GCS, raylet, workers, object store) then listen on loopback only instead of on every interface.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


def _ray(local: bool) -> Any:
    if local:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise ImportError("the ray backend needs the optional extra: pip install 'zipfit-pipeline[ray]'") from error
    return ray


def _start_local(ray: Any, workers: int) -> None:
    """A local Ray cluster bound to 127.0.0.1, or an error where it would listen on the machine's address."""
    address = ray.util.get_node_ip_address()
    if address != LOOPBACK:
        raise RuntimeError(
            f"a local Ray cluster would listen on {address}, not on {LOOPBACK}: ray was imported before "
            f"{LOOPBACK_ONLY}=0 was set; set it in the environment, or give scoring.ray_address"
        )
    ray.init(
        _node_ip_address=LOOPBACK,  # the node, and so every server of it, on loopback
        dashboard_host=LOOPBACK,
        include_dashboard=False,
        num_cpus=workers,
        log_to_driver=False,
    )


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
    ray = _ray(local=not address)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            _start_local(ray, workers)
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
