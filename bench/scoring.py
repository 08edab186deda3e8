"""Scoring speed against the reference `zip-fit==1.0.9`, whole process against whole process, and peak memory.

For each setting, one round runs three processes on the same corpus files, one after another: the reference's
`rank_sequences_by_alignment`, then `zipfit score` on the pure-Python path (`ZIPFIT_NATIVE=0`), then `zipfit score`
on the native path. Rounds repeat, so the three are interleaved, and the medians are reported with how far each
score is from the reference's and how many are bit-identical. Then one core's cost per pair against the source's
length, per path, and the peak memory of scoring from a store. Absolute times drift between runs on shared machines:
read the ratios.
Run: .venv/bin/python bench/scoring.py [--docs 5500] [--rounds 3] [--only speed|per-pair|memory]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

# `corpus` and `measure` are imported where they are used: the loop child starts as bare as a scoring worker.

SETTINGS = [("gzip", 9), ("gzip", 1), ("lz4", 0)]
SOURCE_BYTES = [300, 1000, 2000, 5000, 10_000, 20_000]
WORKERS = os.cpu_count() or 1
ZIPFIT = Path(sys.executable).with_name("zipfit")


def reference_scores(src: list[str], tgt: list[str], compressor: str, level: int) -> dict[str, float]:
    from zip_fit.zipfit import ZIPFIT

    with tempfile.TemporaryDirectory() as folder:
        ranker = ZIPFIT(
            "unused",
            "unused",
            k=len(src),
            output_file=f"{folder}/out.jsonl",
            compression_algorithm=compressor,
            compress_level=level,
        )
        return dict(ranker.rank_sequences_by_alignment(src, tgt))


def read_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def reference_child(compressor: str, level: str, src: str, tgt: str, out: str) -> None:
    """The reference's whole process: read the corpus files, score, write the scores in source order."""
    texts = read_texts(Path(src))
    scores = reference_scores(texts, read_texts(Path(tgt)), compressor, int(level))
    Path(out).write_text(json.dumps([scores[t] for t in texts]))


def timed_process(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def speed(src: list[str], tgt: list[str], rounds: int) -> list[dict[str, object]]:
    """Median whole-process seconds of the reference and of both our paths, interleaved round by round."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        files = {name: Path(folder) / f"{name}.jsonl" for name in ("sources", "targets")}
        for name, texts in (("sources", src), ("targets", tgt)):
            files[name].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        for compressor, level in SETTINGS:
            outputs = {path: Path(folder) / f"{path}.jsonl" for path in ("python", "native")}
            reference_out = Path(folder) / "reference.json"
            commands = {
                "reference": (
                    [
                        sys.executable,
                        __file__,
                        "--reference-child",
                        compressor,
                        str(level),
                        str(files["sources"]),
                        str(files["targets"]),
                        str(reference_out),
                    ],
                    None,
                ),
                **{
                    path: (
                        [
                            str(ZIPFIT),
                            "score",
                            str(files["sources"]),
                            str(files["targets"]),
                            "--output",
                            str(outputs[path]),
                            "--compressor",
                            compressor,
                            "--level",
                            str(level),
                        ],
                        {**os.environ, "ZIPFIT_NATIVE": "0" if path == "python" else "1"},
                    )
                    for path in outputs
                },
            }
            seconds: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(rounds):
                for name, (command, env) in commands.items():
                    seconds[name].append(timed_process(command, env))
            expected = json.loads(reference_out.read_text())
            ours = {
                path: [row["score"] for row in map(json.loads, outputs[path].read_text().splitlines())]
                for path in outputs
            }
            differences = [abs(a - b) for path in outputs for a, b in zip(ours[path], expected, strict=True)]
            rows.append(
                {
                    "setting": f"{compressor}-{level}",
                    "max_difference": max(differences),
                    "bit_identical": sum(d == 0 for d in differences) / len(differences),
                    **{name: statistics.median(values) for name, values in seconds.items()},
                }
            )
    return rows


def loop_child(allocator: str, cases: str) -> None:
    """µs per pair of a plain `zlib.compress(x + t)` loop, in a process that holds only its cases (a scoring
    worker's small heap, where glibc's trimming hands zlib's buffers back to the OS after every call)."""
    if allocator == "tuned":
        from zipfit_pipeline.engine.score.allocator import keep_freed_memory

        keep_freed_memory()
    given = json.loads(Path(cases).read_text())
    xs, ts = [x.encode() for x in given["sources"]], [t.encode() for t in given["targets"]]

    def loop() -> None:
        for x in xs:
            for t in ts:
                zlib.compress(x + t, 9, -15)

    print(best_us_per_pair(loop, len(xs) * len(ts)))


def engine_child(cases: str) -> None:
    """µs per pair of the engine's scorer on each path (allocator tuned, as in its workers)."""
    from zipfit_pipeline.engine.score import native
    from zipfit_pipeline.engine.score.allocator import keep_freed_memory
    from zipfit_pipeline.engine.score.scorer import AlignmentScorer

    keep_freed_memory()
    given = json.loads(Path(cases).read_text())
    result = {}
    for path in ("python", "native"):
        os.environ["ZIPFIT_NATIVE"] = "0" if path == "python" else "1"
        native.joint_sizes.cache_clear()
        score_all = partial(AlignmentScorer(given["targets"], "gzip", 9).score_many, given["sources"])
        result[path] = best_us_per_pair(score_all, len(given["sources"]) * len(given["targets"]))
    print(json.dumps(result))


def best_us_per_pair(run: Callable[[], object], pairs: int, repeats: int = 3) -> float:
    """The fastest of a few runs, in µs per pair: one run on a shared machine can be slowed by its neighbours."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / pairs * 1e6


def per_pair() -> dict[int, dict[str, float]]:
    """By source length: the plain loop with glibc's default allocator and tuned, and the engine's two paths."""
    from corpus import sources, targets

    text = "\n".join(sources())
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in SOURCE_BYTES:
            cases = Path(folder) / f"{size}.json"
            cases.write_text(
                json.dumps(
                    {
                        "targets": targets(),
                        "sources": [text[i * size : (i + 1) * size] for i in range(max(3, 60_000 // size))],
                    }
                )
            )

            def child(*options: str, cases: Path = cases) -> str:
                command = [sys.executable, __file__, *options, str(cases)]
                return subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]

            rows[size] = {
                "default": float(child("--loop-child", "default")),
                "tuned": float(child("--loop-child", "tuned")),
                **json.loads(child("--engine-child")),
            }
    return rows


def rss_child(corpus: str, db: str) -> None:
    """Runs in a subprocess: the reference on all pairs in memory, or our streaming scorer on a DuckDB store."""
    from corpus import targets

    tgt = targets()
    if not db:
        reference_scores(json.loads(Path(corpus).read_text()), tgt, "lz4", 0)
        return
    from zipfit_pipeline.engine.core.compute import ComputeSettings
    from zipfit_pipeline.engine.core.store import Store
    from zipfit_pipeline.engine.score import ScoringSettings, score_dataset, score_sets

    settings = ScoringSettings(compressor="lz4", level=0, chunk_size=128)
    score_dataset(
        Store(db),
        "bench",
        score_sets(tgt, settings)[0],
        settings,
        progress=lambda _: None,
        compute=ComputeSettings(workers=WORKERS),
    )


def memory(rss_docs: list[int]) -> list[dict[str, object]]:
    from corpus import scaled, sources
    from measure import peak_rss_of

    from zipfit_pipeline.engine.core.store import Store
    from zipfit_pipeline.engine.ingest import IngestTables, Record

    rows = []
    base = sources()
    for n in rss_docs:
        with tempfile.TemporaryDirectory() as folder:
            db, corpus = f"{folder}/bench.duckdb", f"{folder}/corpus.json"
            texts = scaled(base, n)
            Path(corpus).write_text(json.dumps(texts))
            IngestTables(Store(db)).replace_documents("bench", [Record(i, None, t) for i, t in enumerate(texts)], {})
            row: dict[str, object] = {"docs": n}
            for kind, store in (("reference", ""), ("ours", db)):
                seconds, mb = peak_rss_of([sys.executable, __file__, "--rss-child", corpus, store])
                row[f"{kind}_mb"], row[f"{kind}_s"] = mb, seconds
            rows.append(row)
    return rows


def print_speed(rows: list[dict[str, object]], pairs: int) -> None:
    print(
        "| setting | reference pairs/s | pure-Python pairs/s | native pairs/s | pure-Python ÷ reference "
        "| native ÷ reference | native ÷ pure-Python | max \\|score − reference\\| | bit-identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref, python, fast = (pairs / float(r[name]) for name in ("reference", "python", "native"))
        print(
            f"| {r['setting']} | {ref:,.0f} | {python:,.0f} | {fast:,.0f} | {python / ref:.2f}× | {fast / ref:.2f}× "
            f"| {fast / python:.2f}× | {r['max_difference']:.1e} | {r['bit_identical']:.2%} |"
        )


def print_per_pair(rows: dict[int, dict[str, float]]) -> None:
    print(
        "| source bytes | `zlib.compress(x + t)` loop | same, allocator tuned | engine, pure Python | engine, native "
        "| native ÷ pure Python |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, r in rows.items():
        print(
            f"| {size:,} | {r['default']:.1f} | {r['tuned']:.1f} | {r['python']:.1f} | {r['native']:.1f} | "
            f"{r['python'] / r['native']:.2f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=0, help="cap the corpus (default: all, ≥5,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting (medians are reported)")
    parser.add_argument("--rss-docs", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--only", choices=["speed", "per-pair", "memory"], help="run one part")
    parser.add_argument("--reference-child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--loop-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--engine-child", help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        reference_child(*args.reference_child)
        return
    if args.loop_child:
        loop_child(*args.loop_child)
        return
    if args.engine_child:
        engine_child(args.engine_child)
        return
    if args.rss_child:
        rss_child(*args.rss_child)
        return

    from corpus import sources, targets

    src, tgt = sources(), targets()
    src = src[: args.docs] if args.docs else src
    pairs = len(src) * len(tgt)
    print(
        f"corpus: {len(src)} real documents × {len(tgt)} HumanEval targets = {pairs:,} pairs; {WORKERS} cores; "
        f"zlib {zlib.ZLIB_RUNTIME_VERSION}\n"
    )
    if args.only in (None, "speed"):
        print(f"Whole processes, median of {args.rounds} interleaved rounds (pairs ÷ wall seconds):\n")
        print_speed(speed(src, tgt, args.rounds), pairs)
    if args.only in (None, "per-pair"):
        print("\nµs per pair on one core against the source's length (gzip-9, the 82 targets):\n")
        print_per_pair(per_pair())
    if args.only in (None, "memory"):
        print("\npeak RSS (MB, the process and its workers), lz4-0:\n")
        print("| documents | pairs | reference MB | ours MB | reference s | ours s |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in memory(args.rss_docs):
            print(
                f"| {r['docs']:,} | {r['docs'] * len(tgt):,} | {r['reference_mb']:,.0f} | {r['ours_mb']:,.0f} | "
                f"{r['reference_s']:.1f} | {r['ours_s']:.1f} |"
            )


if __name__ == "__main__":
    main()
