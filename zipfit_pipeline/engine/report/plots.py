"""The report's plots as PNG files (Agg backend: no display needed): test CE against training tokens per method
(the paper's Figures 2 and 5), final test CE against the budget, and the training set's alignment against test CE
(Figure 3)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from zipfit_pipeline.engine.report.statistics import (
    Report,
    RunResult,
    aligned_runs,
    alignment_fit,
    group_runs,
    losses_at,
    mean_curve,
)
from zipfit_pipeline.engine.select import is_budgeted


@contextmanager
def _figure(path: Path) -> Iterator[Any]:
    """Axes to draw on, saved as a PNG at `path` when the block ends (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.2, 4.6), dpi=120)
    # A distinct colour per method: tab10's ten, then tab20's light shades, for up to 20 methods.
    axes.set_prop_cycle(color=[*plt.get_cmap("tab10")(range(10)), *plt.get_cmap("tab20")(range(1, 20, 2))])
    try:
        yield axes
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)


def plot_loss_vs_tokens(report: Report, path: Path) -> Path:
    """Test CE against training tokens per method (the paper's Figures 2 and 5): the largest budget's mean curve,
    the seeds' range shaded, and every budget's final mean CE with its 95% interval."""
    groups = group_runs(report.runs)
    with _figure(path) as axes:
        for method in sorted({m for m, _ in groups}):
            largest = max((g for g in groups if g[0] == method), key=lambda g: groups[g][0].train_tokens)
            curve = mean_curve(groups[largest])
            (line,) = axes.plot(*zip(*curve), marker="o", markersize=3, label=method)
            spread = _seed_range(groups[largest])
            if spread:
                axes.fill_between(*zip(*spread), color=line.get_color(), alpha=0.15, linewidth=0)
            _final_losses(axes, report, method, fmt="s", color=line.get_color())
        axes.axhline(report.base_loss, color="grey", linestyle=":", label="base model")
        axes.set(xlabel="training tokens", ylabel="test cross-entropy", title=report.title)
        axes.legend(fontsize="small", ncols=2)
    return path


def _final_losses(axes: Any, report: Report, method: str, shift: float = 1.0, **style: Any) -> None:
    """Each budget's final mean test CE of `method`, in token order, with its 95% interval (none for one seed); at
    `shift` times its tokens, so that methods' intervals at one budget stand side by side."""
    rows = sorted((r for r in report.rows if r.method == method), key=lambda r: r.train_tokens)
    errors = [[0 if math.isnan(r.test_loss.low) else r.test_loss.mean - r.test_loss.low for r in rows]] * 2
    tokens = [r.train_tokens * shift for r in rows]
    axes.errorbar(tokens, [r.test_loss.mean for r in rows], yerr=errors, capsize=3, **style)


def _seed_range(runs: Sequence[RunResult]) -> list[tuple[int, float, float]]:
    """(tokens, lowest, highest) test CE over the seeds at each measured point; nothing for a single seed."""
    return [(t, min(v), max(v)) for t, v in losses_at(runs).items()] if len(runs) > 1 else []


def plot_loss_vs_budget(report: Report, path: Path) -> Path:
    """Final test CE against the token budget per method, each budget's mean over seeds with its 95% interval (a
    separate fine-tune per budget, each with its own schedule); `all` is one point at its size."""
    methods = sorted({r.method for r in report.rows})
    with _figure(path) as axes:
        for i, method in enumerate(methods):
            shift = 1.03 ** (i - (len(methods) - 1) / 2)
            _final_losses(axes, report, method, shift, marker="o", markersize=4, label=method)
        axes.axhline(report.base_loss, color="grey", linestyle=":", label="base model")
        axes.set_xscale("log")
        budgets = sorted({r.budget for r in report.rows if is_budgeted(r.method)})
        axes.set_xticks(budgets, [f"{b:,}" for b in budgets])
        axes.set_xticks([], minor=True)
        axes.set(xlabel="training tokens (budget)", ylabel="test cross-entropy (95% interval over seeds)")
        axes.set_title(report.title)
        axes.legend(fontsize="small", ncols=2)
    return path


def plot_alignment_vs_loss(report: Report, path: Path) -> Path:
    """Mean alignment of each training set against the test CE it gave, one point per seed (marker: budget), and
    each budget's fit with its R² (the paper's Figure 3)."""
    runs = aligned_runs(report.runs)
    budgets = sorted({r.key.budget for r in runs})
    markers = dict(zip(budgets, "osD^vP*X"))
    with _figure(path) as axes:
        for method in sorted({r.key.method for r in runs}):
            colour = None  # the cycle's next colour for the method's first points, the same for the rest
            for budget in budgets:
                members = [r for r in runs if (r.key.method, r.key.budget) == (method, budget)]
                if members:
                    points = axes.scatter(
                        [r.mean_alignment for r in members],
                        [r.test_loss for r in members],
                        marker=markers.get(budget, "o"),
                        color=colour,
                        label=method if colour is None else None,
                    )
                    colour = points.get_facecolor()[0]
        for budget in budgets:
            x, _, slope, intercept, r2 = alignment_fit([r for r in runs if r.key.budget == budget])
            if np.isfinite(slope):
                xs = np.linspace(x.min(), x.max(), 10)
                axes.plot(
                    xs,
                    slope * xs + intercept,
                    color="grey",
                    marker=markers.get(budget, "o"),
                    markevery=[0, len(xs) - 1],
                    label=f"{budget:,} tokens: fit, R² = {r2:.2f}",
                )
        axes.set(xlabel="mean ZIP-FIT alignment of the training set", ylabel="test cross-entropy", title=report.title)
        if runs:
            axes.legend(fontsize="small", ncols=2)
    return path
