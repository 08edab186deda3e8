"""Scoring throughput, compression limit and peak memory, all in one run (`scale.py` measures refreshes).

Compares our engine with the reference `zip-fit==1.0.9` (`rank_sequences_by_alignment`) on the same corpus,
settings and machine. Absolute times drift between runs on shared machines: read the ratios.
Run: .venv/bin/python bench/scoring.py [--docs 5500] [--rss-docs 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import numpy as np

from corpus import scaled, sources, targets
from measure import peak_rss_of

SETTINGS = [("gzip", 9), ("gzip", 1), ("lz4", 0)]
WORKERS = os.cpu_count() or 1
HERE = Path(__file__).resolve().parent


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def reference_scores(src: list[str], tgt: list[str], compressor: str, level: int) -> dict[str, float]:
    from zip_fit.zipfit import ZIPFIT

    with tempfile.TemporaryDirectory() as folder:
        ranker = ZIPFIT("unused", "unused", k=len(src), output_file=f"{folder}/out.jsonl",
                        compression_algorithm=compressor, compress_level=level)
        return dict(ranker.rank_sequences_by_alignment(src, tgt))


def _limit_chunk(args: tuple[list[bytes], list[bytes], str, int]) -> int:
    xs, ts, compressor, level = args
    compress = (lambda b: zlib.compress(b, level, wbits=-15)) if compressor == "gzip" else (
        lambda b: lz4.frame.compress(b, compression_level=level))
    return sum(len(compress(x + t)) for x in xs for t in ts)


def compression_limit(src: list[str], tgt: list[str], compressor: str, level: int) -> None:
    """Compress every pair's bytes once, in chunks over all cores: the naive floor of the work."""
    xs, ts = [s.encode() for s in src], [t.encode() for t in tgt]
    chunks = [(xs[i : i + 128], ts, compressor, level) for i in range(0, len(xs), 128)]
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        pool.map(_limit_chunk, chunks)


def with_threads(src: list[str], tgt: list[str], compressor: str, level: int) -> None:
    """Our scorer on a thread pool instead of processes: zlib and lz4 release the GIL while compressing."""
    from concurrent.futures import ThreadPoolExecutor

    from zipfit_pipeline.engine.alignment import AlignmentScorer

    scorer = AlignmentScorer(tgt, compressor, level)
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(scorer.score_many, [src[i : i + 128] for i in range(0, len(src), 128)]))


def throughput(src: list[str], tgt: list[str]) -> list[dict[str, object]]:
    from zipfit_pipeline.engine.alignment import alignment_scores

    pairs = len(src) * len(tgt)
    rows = []
    for compressor, level in SETTINGS:
        ref_s, ref = timed(lambda: reference_scores(src, tgt, compressor, level))
        our_s, ours = timed(lambda: alignment_scores(src, tgt, compressor, level, workers=WORKERS, chunk_size=128))
        lim_s, _ = timed(lambda: compression_limit(src, tgt, compressor, level))
        threads_s, _ = timed(lambda: with_threads(src, tgt, compressor, level))
        exact = bool(np.max(np.abs(np.asarray(ours) - np.asarray([ref[s] for s in src]))) <= 1e-12)
        rows.append({"setting": f"{compressor}-{level}", "reference_pairs_s": pairs / ref_s, "ours_pairs_s": pairs / our_s,
                     "limit_pairs_s": pairs / lim_s, "threads_pairs_s": pairs / threads_s, "exact": exact})
    return rows


def rss_child(kind: str, corpus: str, db: str) -> None:
    """Runs in a subprocess: the reference on all pairs in memory, or our streaming scorer on a DuckDB store."""
    tgt = targets()
    if kind == "reference":
        reference_scores(json.loads(Path(corpus).read_text()), tgt, "lz4", 0)
        return
    from zipfit_pipeline.engine.scoring import score_dataset
    from zipfit_pipeline.engine.store import Store

    score_dataset(Store(db), "bench", tgt, "lz4", 0, chunk_size=128, workers=WORKERS, progress=lambda _: None)


def memory(rss_docs: list[int]) -> list[dict[str, object]]:
    from zipfit_pipeline.engine.loaders import Record
    from zipfit_pipeline.engine.store import Store

    rows = []
    base = sources()
    for n in rss_docs:
        with tempfile.TemporaryDirectory() as folder:
            db, corpus = f"{folder}/bench.duckdb", f"{folder}/corpus.json"
            texts = scaled(base, n)
            Path(corpus).write_text(json.dumps(texts))
            Store(db).replace_documents("bench", [Record(i, None, t) for i, t in enumerate(texts)], {})
            row: dict[str, object] = {"docs": n}
            for kind in ("reference", "ours"):
                seconds, mb = peak_rss_of([sys.executable, __file__, "--rss-child", kind, corpus, db])
                row[f"{kind}_mb"], row[f"{kind}_s"] = mb, seconds
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=0, help="cap the corpus (default: all, ≥5,000)")
    parser.add_argument("--rss-docs", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--only", choices=["throughput", "memory"], help="run one part")
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return

    src, tgt = sources(), targets()
    src = src[: args.docs] if args.docs else src
    print(f"corpus: {len(src)} real documents × {len(tgt)} HumanEval targets = {len(src) * len(tgt):,} pairs; "
          f"{WORKERS} cores; zlib {zlib.ZLIB_RUNTIME_VERSION}\n")
    if args.only in (None, "throughput"):
        print("| setting | reference pairs/s | ours pairs/s | ours ÷ reference | limit pairs/s | ours ÷ limit "
              "| ours on threads pairs/s | exact |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in throughput(src, tgt):
            print(f"| {r['setting']} | {r['reference_pairs_s']:,.0f} | {r['ours_pairs_s']:,.0f} | "
                  f"{r['ours_pairs_s'] / r['reference_pairs_s']:.2f}× | {r['limit_pairs_s']:,.0f} | "
                  f"{r['ours_pairs_s'] / r['limit_pairs_s']:.2f} | {r['threads_pairs_s']:,.0f} | {r['exact']} |")
    if args.only in (None, "memory"):
        print("\npeak RSS (MB, the process and its workers), lz4-0:\n")
        print("| documents | pairs | reference MB | ours MB | reference s | ours s |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in memory(args.rss_docs):
            print(f"| {r['docs']:,} | {r['docs'] * len(tgt):,} | {r['reference_mb']:,.0f} | {r['ours_mb']:,.0f} | "
                  f"{r['reference_s']:.1f} | {r['ours_s']:.1f} |")


if __name__ == "__main__":
    main()
