"""Does ZIP-FIT help? The paper's comparison on a real 185k-document pool, end to end through the pipeline.

The pool is the one `scale.py` builds (distinct blocks of Python, C, JavaScript and prose found on the machine, in
four JSONL sources). ZIP-FIT, DSIR, BM25 and random select from it at each `--budgets` token count against HumanEval
problems 0-81, `all` takes the whole pool in seeded order capped at `--all-cap` tokens, SmolLM2-135M is fine-tuned
on each selection once per seed, its test cross-entropy measured on problems 82-163, and the comparison report
written: every stage real Dagster runs (`materialize_all`) on a real DuckDB store. Then ZIP-FIT alone on the same
pool cut into pieces of at most `--chunk-chars` characters (a project of its own: its own store and report), paired
by seed with ZIP-FIT on the whole texts: ZIP-FIT favours short texts, and equal-sized pieces take that away.

It prints each stage's wall time and peak RSS, both reports and the chunked-against-whole table, and writes them
with the plots to `--out`. A killed run resumes where it stopped when given the same `--keep` folder.

Run: .venv/bin/python bench/experiment.py [--docs 185000] [--budgets 10000,50000] [--seeds 0,1,2]
     [--methods zipfit,dsir,bm25,random,all] [--batch-size 4] [--curve-points 0] [--chunk-chars 400]
     [--out docs/experiment] [--keep FOLDER]   (needs the demo model: `make demo` builds it)
On a GPU: --budgets 10000,50000,100000,1000000 --methods zipfit,dsir,bm25,random,all,d4,embedding --batch-size 8
--curve-points 4 (the report then gives the tokens each method needs to reach the best baseline's loss).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from corpus import real_pool
from pool_project import require_model, run_stages, write_project

from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.report.results import load_lengths, load_results
from zipfit_pipeline.engine.report.statistics import PairedRow, RunResult, group_runs, holm, interval
from zipfit_pipeline.engine.score import ZIPFIT

MODEL, TARGET = "smollm2-135m", "humaneval"
STAGES = ["ingest", "score", "select", "train", "eval", "report"]
METHODS = "zipfit,dsir,bm25,random,all"


def training(seeds: list[int], batch_size: int, curve_points: int) -> dict[str, object]:
    """A full fine-tune of 256-token blocks at the demo's learning rate. On 2 CPU cores: four blocks a step (1,024
    tokens) and no mid-training evals (each takes 33 s there, half a 10k-token fine-tune), so the curve is the
    budgets' final losses."""
    return {
        "block_size": 256,
        "batch_size": batch_size,
        "learning_rate": 1.0e-4,
        "warmup_fraction": 0.1,
        "seeds": seeds,
        "curve_points": curve_points,
    }


def current_runs(config_path: Path) -> tuple[Store, list[RunResult]]:
    """The project's store and its current evaluated fine-tunes, by the report's own rule (nothing stale mixed in)."""
    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.orchestration.assets.versions import current_inputs
    from zipfit_pipeline.orchestration.partitions import configured_runs

    config = load_project(config_path)
    store = Store(config.resolve(config.store))
    _, runs, _ = load_results(
        store, MODEL, TARGET, configured_runs(config, MODEL, TARGET), current_inputs(config, MODEL)
    )
    return store, runs


def chunked_table(whole: Path, chunked: Path, chunk_chars: int) -> list[str]:
    """ZIP-FIT on pieces against ZIP-FIT on whole texts, per budget, paired by seed (Holm over the budgets), with
    how long each one's selected texts are."""
    (whole_store, whole_runs), (chunked_store, chunked_runs) = current_runs(whole), current_runs(chunked)
    ours, theirs = group_runs(chunked_runs), group_runs(whole_runs)
    lengths = {
        "whole": load_lengths(whole_store, MODEL, TARGET, whole_runs),
        "pieces": load_lengths(chunked_store, MODEL, TARGET, chunked_runs),
    }
    budgets = sorted(b for m, b in ours if m == ZIPFIT and (ZIPFIT, b) in theirs)
    paired = []
    for budget in budgets:
        a = {r.key.seed: r.test_loss for r in ours[(ZIPFIT, budget)]}
        b = {r.key.seed: r.test_loss for r in theirs[(ZIPFIT, budget)]}
        differences = [a[s] - b[s] for s in sorted(set(a) & set(b))]
        paired.append(PairedRow("zipfit", budget, interval(differences), sum(d < 0 for d in differences)))
    lines = [
        f"ZIP-FIT on pieces of at most {chunk_chars:,} characters against ZIP-FIT on the whole texts, paired by seed "
        f"(negative: pieces give a lower test CE; p: paired t-test, Holm-adjusted over the {len(budgets)} budgets):",
        "",
        "| budget | whole texts: test CE | pieces: test CE | pieces − whole | 95% CI | pieces lower | p (Holm) "
        "| median tokens per text, whole / pieces |",
        "|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in holm(paired):
        w = interval([r.test_loss for r in theirs[(ZIPFIT, row.budget)]])
        c = interval([r.test_loss for r in ours[(ZIPFIT, row.budget)]])
        d = row.difference
        medians = " / ".join(
            f"{lengths[k][(ZIPFIT, row.budget)].median:,.0f}" if (ZIPFIT, row.budget) in lengths[k] else "-"
            for k in ("whole", "pieces")
        )
        lines.append(
            f"| {row.budget:,} | {w.mean:.4f} | {c.mean:.4f} | {d.mean:+.4f} | [{d.low:.4f}, {d.high:.4f}] "
            f"| {row.wins} of {d.n} seeds | {row.p_value:.3g} | {medians} |"
        )
    return lines


def stage_table(name: str, rows: list[dict[str, float]]) -> list[str]:
    lines = [f"| {name}: stage | wall s | peak RSS MB |", "|---|---:|---:|"]
    lines += [f"| {r['stage']} | {r['seconds']:.0f} | {r['peak_mb']:,.0f} |" for r in rows]
    return [*lines, f"| total | {sum(r['seconds'] for r in rows):.0f} | |", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=185_000)
    parser.add_argument("--budgets", default="10000,50000", help="training tokens, comma-separated")
    parser.add_argument("--all-cap", type=int, default=10_000, help="`all`: the whole pool in seeded order, cut here")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--methods", default=METHODS, help="add d4,embedding on a GPU (their embeddings: 1 h on 2 cores)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="256-token blocks per optimizer step")
    parser.add_argument("--curve-points", type=int, default=0, help="test-loss evals during each fine-tune")
    parser.add_argument("--chunk-chars", type=int, default=400, help="ZIP-FIT on pieces of at most this many chars")
    parser.add_argument("--out", default=None, help="write the reports, plots and timings here (default: the folder)")
    parser.add_argument(
        "--keep",
        help="work in this folder and keep it; run again to resume, with the project files it wrote the first time "
        "(default: a temporary folder)",
    )
    args = parser.parse_args()
    require_model("bench/experiment.py")

    folder = Path(args.keep or tempfile.mkdtemp(prefix="zipfit-experiment-"))
    budgets, seeds = [int(b) for b in args.budgets.split(",")], [int(s) for s in args.seeds.split(",")]
    whole, chunked = folder / "whole" / "zipfit.yaml", folder / "chunked" / "zipfit.yaml"
    if not chunked.exists():  # written last: both projects are whole
        started = time.perf_counter()
        pool = real_pool(args.docs)
        selection = {"budgets": budgets, "all_max_tokens": args.all_cap, "dsir": {"min_example_length": 10}}
        settings = training(seeds, args.batch_size, args.curve_points)
        for config, methods, cut in ((whole, args.methods.split(","), None), (chunked, [ZIPFIT], args.chunk_chars)):
            shutil.rmtree(config.parent, ignore_errors=True)  # a folder left half-written by a killed first run
            write_project(config.parent, pool, 82, {"methods": methods, **selection}, settings, cut)
        docs = sum(map(len, pool.values()))
        mb = sum(len(r["text"].encode()) for rows in pool.values() for r in rows) / 1e6
        print(
            f"pool: {docs:,} documents ({', '.join(f'{k} {len(v):,}' for k, v in pool.items())}), {mb:.0f} MB of "
            f"text; built in {time.perf_counter() - started:.0f}s in {folder}",
            flush=True,
        )

    # What is missing or stale, then the report always: it reads the store, and is rebuilt by the code run now.
    timings = {
        name: run_stages(config, STAGES[:-1], only_out_of_date=True) + run_stages(config, STAGES[-1:])
        for name, config in (("whole texts", whole), ("pieces", chunked))
    }
    out = Path(args.out) if args.out else folder
    out.mkdir(parents=True, exist_ok=True)
    reports = {
        name: config.parent / "artifacts" / "reports" / MODEL / TARGET
        for name, config in (("whole", whole), ("pieces", chunked))
    }
    for name, report in reports.items():
        for path in report.iterdir():
            shutil.copyfile(path, out / (path.name if name == "whole" else f"pieces-{path.name}"))
    summary = [
        *[line for name, rows in timings.items() for line in stage_table(name, rows)],
        *chunked_table(whole, chunked, args.chunk_chars),
    ]
    (out / "summary.md").write_text("\n".join(summary) + "\n", encoding="utf-8")
    print((reports["whole"] / "report.md").read_text(encoding="utf-8"))
    print("\n".join(summary))
    print(f"\nreports, plots and this summary: {out}")


if __name__ == "__main__":
    main()
