"""One source text's ZIP-FIT alignment with a fixed target set: mean over targets of 1 - NCD(x, t).

Exact shortcuts (each gives the reference's sizes to the byte):
- every text is encoded once and C(t) is computed once per target set;
- the native extension (`native.py`) deflates x once for all targets and sizes each joint stream's last block
  instead of writing it (gzip 1-9), or loops over the targets in C (lz4), once it has proved its sizes equal
  to the interpreter's;
- on the pure-Python path, for a long gzip source, a deflate stream primed with x is copied per target, so x is
  compressed once, not n times. Copying zlib's state costs about as much as deflating 1-2 KB (`bench/priming.py`
  measures it per source length), so short sources are compressed whole with each target instead.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from zipfit_pipeline.engine.score import native
from zipfit_pipeline.engine.score.compression import (
    GZIP_FRAMING_BYTES,
    compressor_build,
    joint_sizes_function,
    size_function,
)
from zipfit_pipeline.engine.score.settings import DEFAULT_COMPRESSOR, DEFAULT_LEVEL

# Source length (bytes) from which priming a deflate stream beats compressing x + t whole, measured on
# 2 cores with HumanEval targets (~520 bytes): deflate_slow (levels 4-9) and deflate_fast (levels 1-3).
PRIME_MIN_BYTES = {"slow": 1500, "fast": 3000}


class AlignmentScorer:
    """Scores source texts against one fixed target set with one compressor and level."""

    def __init__(
        self,
        targets: Sequence[str],
        compressor: str = DEFAULT_COMPRESSOR,
        level: int = DEFAULT_LEVEL,
        build: str | None = None,
        code_path: str | None = None,
    ) -> None:
        """`build` and `code_path`: what the caller records its scores with; a worker that would compress with
        another library build, or on another path, refuses to score rather than make that record untrue."""
        if not targets:
            raise ValueError("the target set is empty: alignment is a mean over targets, so it needs at least one")
        if build is not None and compressor_build(compressor) != build:
            raise RuntimeError(
                f"this worker compresses with {compressor_build(compressor)}, not {build}: its sizes would "
                "differ from the scores it would be stored with"
            )
        native_joint_sizes, _ = native.joint_sizes(compressor, level)
        self.code_path = native.NATIVE if native_joint_sizes else native.PURE_PYTHON
        if code_path is not None and code_path != self.code_path:
            raise RuntimeError(
                f"this worker scores on the {self.code_path} path, not the {code_path} path that the run "
                f"records ({native.joint_sizes(compressor, level)[1]})"
            )
        self.compressor = compressor
        self.level = level
        self._joint_sizes = native_joint_sizes or joint_sizes_function(compressor, level)
        self._targets = [t.encode("utf-8") for t in targets]
        size = size_function(compressor, level)
        self._target_sizes = np.asarray([size(t) for t in self._targets], dtype=np.int64)
        # C(x) is C(x + empty), joined like any target: the native path then sizes it from x's snapshot.
        self._targets_then_empty = [*self._targets, b""]
        primes = compressor == "gzip" and level > 0 and native_joint_sizes is None
        self._prime_min_bytes = PRIME_MIN_BYTES["slow" if level >= 4 else "fast"] if primes else None

    def score(self, text: str) -> float:
        """alignment(x) = mean over t of (1 - NCD(x, t)), in target order, as float64.

        The vectorised similarity does the reference's operations in its order on exact integers
        (1 - (C(x+t) - min) / max), so every term is bit-identical to the reference's Python floats.
        """
        x = text.encode("utf-8")
        if self._prime_min_bytes is not None and len(x) >= self._prime_min_bytes:
            sizes = np.asarray(self._gzip_joint_sizes(x), dtype=np.int64)
        else:
            sizes = np.asarray(self._joint_sizes(x, self._targets_then_empty), dtype=np.int64)
        joint, c_x, c_t = sizes[:-1], sizes[-1], self._target_sizes
        sims = 1 - (joint - np.minimum(c_x, c_t)) / np.maximum(c_x, c_t)
        return float(np.mean(sims))

    def score_many(self, texts: Iterable[str]) -> np.ndarray:
        return np.asarray([self.score(text) for text in texts], dtype=np.float64)

    def _gzip_joint_sizes(self, x: bytes) -> list[int]:
        """C(x + t) for every t, then C(x), compressing x once: a primed deflate stream is copied per target."""
        primed = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        prefix = len(primed.compress(x)) + GZIP_FRAMING_BYTES
        sizes = []
        for t in self._targets_then_empty:
            stream = primed.copy()
            sizes.append(prefix + len(stream.compress(t)) + len(stream.flush()))
        return sizes
