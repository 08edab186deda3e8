"""Per source length: µs per pair compressing x + t whole vs copying a deflate stream primed with x.

Sets `PRIME_MIN_BYTES` in zipfit_pipeline/engine/score/scorer.py. Run: .venv/bin/python bench/priming.py
"""

from __future__ import annotations

import time
import zlib

from corpus import sources, targets

BUCKETS = [(200, 600), (600, 1000), (1000, 1500), (1500, 2000), (2000, 4000)]
PER_BUCKET = 40


def direct(xs: list[bytes], ts: list[bytes], level: int) -> None:
    for x in xs:
        for t in ts:
            zlib.compress(x + t, level, wbits=-15)


def primed(xs: list[bytes], ts: list[bytes], level: int) -> None:
    for x in xs:
        stream = zlib.compressobj(level, zlib.DEFLATED, -15)
        stream.compress(x)
        for t in ts:
            copy = stream.copy()
            copy.compress(t)
            copy.flush()


def per_pair_us(fn, xs: list[bytes], ts: list[bytes], level: int) -> float:
    started = time.perf_counter()
    fn(xs, ts, level)
    return (time.perf_counter() - started) / (len(xs) * len(ts)) * 1e6


def main() -> None:
    docs = [s.encode() for s in sources(n_python=20000)]
    ts = [t.encode() for t in targets()]
    print(f"{len(docs)} sources, {len(ts)} targets; µs per pair, direct / primed (one core)")
    print("level  " + "  ".join(f"{f'[{lo},{hi})':>15}" for lo, hi in BUCKETS))
    for level in (9, 6, 4, 3, 1):
        cells = []
        for lo, hi in BUCKETS:
            xs = [d for d in docs if lo <= len(d) < hi][:PER_BUCKET]
            cells.append(f"{per_pair_us(direct, xs, ts, level):6.1f} / {per_pair_us(primed, xs, ts, level):5.1f}")
        print(f"gzip-{level}  " + "  ".join(f"{c:>15}" for c in cells))


if __name__ == "__main__":
    main()
