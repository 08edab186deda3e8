"""Paper scale on this machine: ingest → score → select of a real pool, a +1% refresh, and DSIR's own cost.

The pool is real text found on the machine (Python, C, JavaScript, prose; `corpus.real_pool`) of `--docs`
documents in four JSONL sources, scored with gzip-9 against HumanEval problems 0-81 (`--targets`) and selected by
ZIP-FIT, DSIR, BM25 and random (`--methods`) at 100k and 1M tokens of the demo model's tokenizer, all through the
project's own `materialize_all` (real Dagster runs on a real DuckDB store). Then 1% more documents are appended to every
source and the same runs repeat. Last, the `data-selection` package itself fits DSIR and computes its weights on
the same pool files with every core, for the cost comparison. Each stage prints its wall time and the peak RSS of
its process tree (workers included), and the store's size on disk; the `summary` line is one row of the README's
table by pool size.

Run: .venv/bin/python bench/scale.py [--docs 185000] [--targets 82] [--methods zipfit,random] [--keep FOLDER]
(needs the demo model: `make demo` builds it)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from corpus import real_pool
from measure import peak_rss_of
from pool_project import TEMPLATE, require_model, run_stages, write_project

REFRESH = 0.01
SCALE_STAGES = ["ingest", "score", "select"]


def append(folder: Path, extra: dict[str, list[dict[str, str]]]) -> None:
    for name, rows in extra.items():
        with open(folder / "inputs" / f"{name}.jsonl", "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))


def selection_seconds(config: Path) -> dict[str, float]:
    from zipfit_pipeline.engine.core.store import Store

    rows = Store(config.parent / "zipfit.duckdb").query("SELECT method, seconds FROM selection_runs").to_pylist()
    return {r["method"]: r["seconds"] for r in rows}


def package_dsir_child(folder: str) -> None:
    """The `data-selection` package on the pool files: fit on all tokens, then every text's weight, all cores."""
    from data_selection import HashedNgramDSIR

    from zipfit_pipeline.demo.inputs import humaneval_rows, write_jsonl

    inputs = Path(folder) / "inputs"
    targets = Path(folder) / "targets.jsonl"

    write_jsonl(targets, [{"text": TEMPLATE.format(**row)} for row in humaneval_rows()[:82]])
    sources = sorted(str(p) for p in inputs.glob("*.jsonl") if p.name != "humaneval.jsonl")
    dsir = HashedNgramDSIR(
        sources,
        [str(targets)],
        cache_dir=f"{folder}/dsir-package",
        min_example_length=10,
        num_proc=len(os.sched_getaffinity(0)),
    )
    dsir.fit_importance_estimator(num_tokens_to_fit="all")
    dsir.compute_importance_weights()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=185_000)
    parser.add_argument("--targets", type=int, default=82, help="HumanEval problems 0..n-1 as the alignment set")
    parser.add_argument("--methods", default="zipfit,dsir,bm25,random", help="selection methods, comma-separated")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--skip-package", action="store_true", help="leave out the data-selection package's run")
    parser.add_argument("--package-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.package_child:
        return package_dsir_child(args.package_child)
    require_model("bench/scale.py")

    folder = Path(args.keep or tempfile.mkdtemp(prefix="zipfit-scale-"))
    started = time.perf_counter()
    full_pool = real_pool(round(args.docs * (1 + REFRESH)))
    first = {name: rows[: round(len(rows) / (1 + REFRESH))] for name, rows in full_pool.items()}
    extra = {name: rows[len(first[name]) :] for name, rows in full_pool.items()}
    selection = {
        "methods": args.methods.split(","),
        "budgets": [100_000, 1_000_000],
        "dsir": {"min_example_length": 10},
    }
    config = write_project(folder, first, args.targets, selection)
    docs, new = sum(map(len, first.values())), sum(map(len, extra.values()))
    mb = sum(len(r["text"].encode()) for rows in first.values() for r in rows) / 1e6
    print(
        f"pool: {docs:,} documents ({', '.join(f'{k} {len(v):,}' for k, v in first.items())}), {mb:.0f} MB of text, "
        f"× {args.targets} HumanEval targets, methods {args.methods}; "
        f"built in {time.perf_counter() - started:.0f}s in {folder}\n"
    )

    full = run_stages(config, SCALE_STAGES)
    full_methods = selection_seconds(config)
    full_store = (folder / "zipfit.duckdb").stat().st_size / 1e6
    append(folder, extra)
    refresh = run_stages(config, SCALE_STAGES)
    refresh_methods = selection_seconds(config)
    refresh_store = (folder / "zipfit.duckdb").stat().st_size / 1e6
    print(f"store on disk: {full_store:,.0f} MB after the full run, {refresh_store:,.0f} MB after +1%")

    print(f"| stage | full run s | RSS at start MB | full peak RSS MB | +1% ({new:,} docs) s | +1% peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for a, b in zip(full, refresh):
        print(
            f"| {a['stage']} | {a['seconds']:.1f} | {a['start_mb']:.0f} | {a['peak_mb']:.0f} | {b['seconds']:.1f} | "
            f"{b['peak_mb']:.0f} |"
        )
    total_full, total_refresh = sum(r["seconds"] for r in full), sum(r["seconds"] for r in refresh)
    print(
        f"| total | {total_full:.1f} | {full[0]['start_mb']:.0f} | {max(r['peak_mb'] for r in full):.0f} | "
        f"{total_refresh:.1f} "
        f"(**{100 * total_refresh / total_full:.1f}% of full**) | {max(r['peak_mb'] for r in refresh):.0f} |"
    )
    print(
        "\nselection by method, s (full / +1%): "
        + ", ".join(f"{m} {full_methods[m]:.1f} / {refresh_methods.get(m, 0):.1f}" for m in full_methods)
    )
    zipfit = full[1]["seconds"] + full[2]["seconds"] - full_methods.get("dsir", 0.0)
    print(f"ZIP-FIT end to end (score + select without DSIR's share), full run: {zipfit:.1f}s")
    print(
        f"\nsummary | {docs:,} | "
        + " | ".join(f"{r['seconds']:.0f} s, {r['peak_mb']:,.0f} MB" for r in full)
        + f" | {full_store:,.0f} MB | {100 * total_refresh / total_full:.1f}% |"
    )
    if not args.skip_package:
        seconds, peak = peak_rss_of([sys.executable, __file__, "--package-child", str(folder)])
        print(
            f"data-selection's own HashedNgramDSIR fit_importance_estimator + compute_importance_weights on the same "
            f"pool, {len(os.sched_getaffinity(0))} processes: {seconds:.1f}s, peak RSS {peak:.0f} MB"
        )


if __name__ == "__main__":
    main()
