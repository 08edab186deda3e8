"""The comparison a user decides on: test loss per selection method and budget, against tokens and alignment.

Everything is read from the store (eval losses, loss curves, selections), so the report can be rebuilt at any
time without retraining. Plots are PNG files made with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zipfit_pipeline.engine.selection import THRESHOLD
from zipfit_pipeline.engine.store import Store

BASELINES = ("dsir", "random", "all")


@dataclass(frozen=True)
class RunResult:
    """One fine-tune (or the base model, method `base`) and what it scored on the target's test split."""

    method: str
    budget: int
    train_tokens: int
    test_loss: float
    mean_alignment: float
    selection_seconds: float
    curve: list[tuple[int, float]]  # (training tokens, test loss), from 0 tokens to the end


def load_results(store: Store, model: str, target: str, zipfit_scoring_seconds: float = 0.0) -> list[RunResult]:
    """Every evaluated run of `model` on `target`, the base model first, then by method and budget.

    A method's selection time is its ranking time; ZIP-FIT's (and its thresholds') also counts the time spent
    scoring the pool.
    """
    runs = store.query(
        """SELECT e.selection, e.test_loss, t.train_tokens FROM eval_losses e JOIN training_runs t USING (model, selection)
           WHERE e.model = ? AND e.task = ?""", [model, target]).to_pylist()
    base = next((r for r in runs if r["selection"] == f"{target}.base"), None)
    if base is None:
        raise LookupError(f"no eval of the base model {model} on {target}: materialize eval_loss for {model}.base first")
    alignment = {(r["method"], r["budget"]): r["mean_score"] for r in store.query(
        "SELECT method, budget, avg(score) AS mean_score FROM selections WHERE model = ? AND target = ? GROUP BY ALL",
        [model, target]).to_pylist()}
    seconds = {r["method"]: r["seconds"] for r in store.query(
        "SELECT method, seconds FROM selection_runs WHERE model = ? AND target = ?", [model, target]).to_pylist()}
    for method in ("zipfit", THRESHOLD):  # both rank by ZIP-FIT's alignment
        seconds[method] = seconds.get(method, 0.0) + zipfit_scoring_seconds
    curves: dict[str, list[tuple[int, float]]] = {}
    for point in store.query(
        "SELECT selection, tokens, loss FROM loss_curves WHERE model = ? AND kind = 'test' ORDER BY tokens", [model]
    ).to_pylist():
        curves.setdefault(point["selection"], []).append((point["tokens"], point["loss"]))

    results = [RunResult("base", 0, 0, base["test_loss"], float("nan"), 0.0, [(0, base["test_loss"])])]
    for run in runs:
        _, method, *budget = run["selection"].split(".")
        if method == "base":
            continue
        curve = [(0, base["test_loss"]), *curves.get(run["selection"], []), (run["train_tokens"], run["test_loss"])]
        results.append(RunResult(method, int(budget[0]), run["train_tokens"], run["test_loss"],
                                 float(alignment.get((method, int(budget[0])), float("nan"))), float(seconds.get(method, 0.0)),
                                 sorted(dict(curve).items())))
    return [results[0], *sorted(results[1:], key=lambda r: (r.method, r.budget))]


def tokens_to_reach(curve: list[tuple[int, float]], loss: float) -> float | None:
    """Training tokens at which a run's test loss first reaches `loss` (linear between points), or None."""
    for (t0, l0), (t1, l1) in zip(curve, curve[1:]):
        if l1 <= loss:
            return float(t0) if l0 <= loss else t0 + (t1 - t0) * (l0 - loss) / (l0 - l1)
    return None


def comparison_table(results: list[RunResult]) -> tuple[list[dict[str, object]], str]:
    """Rows and a markdown table: final test CE, change from base, tokens to the best baseline's loss, timing."""
    base = results[0].test_loss
    baselines = [r.test_loss for r in results if r.method in BASELINES]
    best_baseline = min(baselines) if baselines else None
    rows = []
    for r in results[1:]:
        reach = tokens_to_reach(r.curve, best_baseline) if best_baseline is not None else None
        rows.append({"method": r.method, "budget": r.budget, "train_tokens": r.train_tokens, "test_loss": r.test_loss,
                     "change_from_base": r.test_loss - base, "tokens_to_best_baseline": reach,
                     "mean_alignment": r.mean_alignment, "selection_seconds": r.selection_seconds})
    lines = [f"Base model test CE: **{base:.4f}**" + (f"; best baseline: **{best_baseline:.4f}**" if best_baseline else ""), "",
             "| method | budget | test CE | change from base | tokens to best baseline's CE | mean alignment | selection s (ZIP-FIT: + scoring) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        reach = "not reached" if row["tokens_to_best_baseline"] is None else f"{row['tokens_to_best_baseline']:,.0f}"
        budget = f"> {row['budget'] / 1000:.3f} ({row['train_tokens']:,} tokens)" if row["method"] == THRESHOLD else f"{row['budget']:,}"
        lines.append(f"| {row['method']} | {budget} | {row['test_loss']:.4f} | {row['change_from_base']:+.4f} | "
                     f"{reach} | {row['mean_alignment']:.4f} | {row['selection_seconds']:.2f} |")
    return rows, "\n".join(lines)


def equal_budget_runs(results: list[RunResult]) -> list[RunResult]:
    """The runs at the largest budget: training sets of the same size, which every method has (`all` included)."""
    budgeted = [r for r in results[1:] if r.method != THRESHOLD and np.isfinite(r.mean_alignment)]
    largest = max((r.budget for r in budgeted), default=0)
    return [r for r in budgeted if r.budget == largest]


def alignment_fit(results: list[RunResult]) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """x = mean alignment of each equal-size training set, y = test CE after fine-tuning on it; slope, intercept, R²."""
    points = [(r.mean_alignment, r.test_loss) for r in equal_budget_runs(results)]
    x, y = np.asarray([p[0] for p in points]), np.asarray([p[1] for p in points])
    if len(x) < 2 or np.ptp(x) == 0:
        return x, y, float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1 - np.sum(residual**2) / total if total > 0 else float("nan")
    return x, y, float(slope), float(intercept), float(r2)


@contextmanager
def _figure(path: Path) -> Iterator[Any]:
    """Axes to draw on, saved as a PNG at `path` when the block ends (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    try:
        yield axes
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)


def plot_loss_vs_tokens(results: list[RunResult], title: str, path: Path) -> Path:
    """Test CE against training tokens, one line per method (the paper's Figures 2 and 5)."""
    with _figure(path) as axes:
        for method in sorted({r.method for r in results[1:]}):
            runs = [r for r in results if r.method == method]
            longest = max(runs, key=lambda r: r.train_tokens)
            (line,) = axes.plot(*zip(*longest.curve), marker="o", label=method)
            axes.plot([r.train_tokens for r in runs], [r.test_loss for r in runs], "s", color=line.get_color())
        axes.axhline(results[0].test_loss, color="grey", linestyle=":", label="base model")
        axes.set(xlabel="training tokens", ylabel="test cross-entropy", title=title)
        axes.legend()
    return path


def plot_alignment_vs_loss(results: list[RunResult], title: str, path: Path) -> tuple[Path, float]:
    """Mean alignment of each training set (largest budget) against the test CE it gave, the fit and R² (Figure 3)."""
    x, y, slope, intercept, r2 = alignment_fit(results)
    labelled = equal_budget_runs(results)
    with _figure(path) as axes:
        axes.scatter(x, y)
        for r, xi, yi in zip(labelled, x, y):
            axes.annotate(r.method, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if np.isfinite(slope):
            xs = np.linspace(x.min(), x.max(), 10)
            axes.plot(xs, slope * xs + intercept, color="grey", label=f"fit, R² = {r2:.2f}")
            axes.legend()
        budget = labelled[0].budget if labelled else 0
        axes.set(xlabel=f"mean ZIP-FIT alignment of the training set ({budget:,} tokens)", ylabel="test cross-entropy", title=title)
    return path, r2
