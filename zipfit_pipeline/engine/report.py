"""The comparison a user decides on: test loss per selection method and budget, over seeds, with confidence.

Everything is read from the store, and only what is current: an eval counts when it measured the checkpoint
the store records now, that checkpoint was trained on the selection the store holds now, and its method,
budget and seed are still configured. What is left out is listed with the reason. Per method and budget the
report gives the mean test CE over seeds with a 95% t-interval, what the method cost (ranking plus the scoring or
embedding it ranks by) and which sources its selection came from, and for ZIP-FIT against each baseline and each
of its own ablations the difference paired by seed, its interval and how many seeds ZIP-FIT won. Plots are PNG
files (Agg backend).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from zipfit_pipeline.engine.runs import BASE, THRESHOLD, WHOLE_POOL, RunKey
from zipfit_pipeline.engine.selection import ZIPFIT, is_budgeted, is_zipfit
from zipfit_pipeline.engine.store import Store

CONFIDENCE = 0.95


def is_baseline(method: str) -> bool:
    """A method ZIP-FIT competes with (DSIR, D4, embedding, BM25, random, all), not one of its own ablations."""
    return not is_zipfit(method) and method not in (THRESHOLD, BASE)


@dataclass(frozen=True)
class RunResult:
    """One current evaluated fine-tune (or the base model)."""

    key: RunKey
    train_tokens: int
    test_loss: float
    mean_alignment: float
    curve: list[tuple[int, float]]  # (training tokens, test loss), from 0 tokens to the end


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its 95% t-interval (NaN bounds with fewer than two seeds)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def interval(values: Sequence[float]) -> Interval:
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return Interval(float(x.mean()) if len(x) else math.nan, math.nan, math.nan, len(x))
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Interval(float(x.mean()), float(x.mean()) - half, float(x.mean()) + half, len(x))


@dataclass(frozen=True)
class MethodRow:
    method: str
    budget: int
    train_tokens: int
    test_loss: Interval
    change_from_base: float
    tokens_to_best_baseline: float | None
    mean_alignment: float
    selection_seconds: float


@dataclass(frozen=True)
class PairedRow:
    """ZIP-FIT's test CE minus a baseline's (or an ablation's), seed by seed (negative: ZIP-FIT is better)."""

    baseline: str
    budget: int
    difference: Interval
    wins: int


@dataclass(frozen=True)
class PassAtKRow:
    """pass@k of one (method, budget) over seeds, measured on current checkpoints only."""

    method: str
    budget: int
    k: int
    value: Interval


@dataclass(frozen=True)
class Report:
    title: str
    base_loss: float
    best_baseline: MethodRow | None
    rows: list[MethodRow]
    paired: list[PairedRow]
    runs: list[RunResult]
    excluded: list[str]
    all_max_tokens: int | None = None
    contaminated: list[dict[str, Any]] = field(default_factory=list)  # pool texts overlapping the test split
    ngram_words: int = 13
    pass_at_k: list[PassAtKRow] = field(default_factory=list)
    # (method, budget) -> each source's share of the selection's tokens, averaged over seeds
    composition: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)

    def markdown(self) -> str:
        return "\n".join(
            [
                *_results_table(self),
                "",
                *_paired_table(self),
                *_pass_at_k_table(self),
                *_composition_table(self),
                "",
                _decontamination_line(self),
                *_excluded_lines(self),
            ]
        )

    def alignment_r2(self) -> float:
        """R² of test CE against the training set's mean alignment, over the equal-size runs (the paper's Figure 3)."""
        return alignment_fit(equal_budget_runs(self))[4]

    def as_metadata(self) -> dict[str, Any]:
        """Plain JSON (a NaN, as in a one-seed interval, becomes null: browsers cannot parse NaN)."""
        return _without_nan(
            {
                "rows": [asdict(r) for r in self.rows],
                "paired": [asdict(p) for p in self.paired],
                "pass_at_k": [asdict(r) for r in self.pass_at_k],
                "excluded": self.excluded,
                "contaminated": self.contaminated,
                "composition": [
                    {"method": m, "budget": b, "token_shares": shares} for (m, b), shares in self.composition.items()
                ],
            }
        )


def load_results(
    store: Store,
    model: str,
    target: str,
    configured: Sequence[RunKey],
) -> tuple[RunResult, list[RunResult], list[str]]:
    """(the base model, the current runs of the configured keys, why any other eval or key is left out)."""
    found = {
        RunKey(model, target, r["method"], r["budget"], r["seed"]): r
        for r in store.query(
            """SELECT e.method, e.budget, e.seed, e.run_id AS eval_run, e.test_loss, t.run_id AS train_run,
                  t.selection_version AS trained_on, t.train_tokens, c.version AS selection_now, c.mean_alignment
           FROM eval_losses e LEFT JOIN training_runs t USING (model, target, method, budget, seed)
           LEFT JOIN selection_sets c USING (model, target, method, budget, seed)
           WHERE e.model = ? AND e.target = ?""",
            [model, target],
        ).to_pylist()
    }
    current, excluded = [], []
    for key in configured:
        reason = _not_current(found.get(key))
        if reason:
            excluded.append(f"{key.label()}: {reason}")
        else:
            current.append(key)
    unconfigured = len(set(found) - set(configured))
    if unconfigured:
        excluded.append(f"{unconfigured} evals of methods, budgets or seeds no longer configured")
    base_key = RunKey(model, target, BASE)
    if base_key not in current:
        raise LookupError(
            f"no current eval of the base model {model} on {target}: materialize eval_loss for {model}.base"
        )
    curves = _test_curves(store, [found[k]["train_run"] for k in current])
    base_loss = found[base_key]["test_loss"]
    results = []
    for key in current:
        row = found[key]
        curve = {0: base_loss, **dict(curves.get(row["train_run"], [])), row["train_tokens"]: row["test_loss"]}
        alignment = (
            math.nan if row["mean_alignment"] is None else row["mean_alignment"]
        )  # the base model selects nothing
        results.append(RunResult(key, row["train_tokens"], row["test_loss"], alignment, sorted(curve.items())))
    base = next(r for r in results if r.key == base_key)
    return base, sorted((r for r in results if r.key != base_key), key=lambda r: r.key), excluded


def _not_current(row: dict[str, Any] | None) -> str:
    """Why an eval row does not describe the current fine-tune ('' when it does)."""
    if row is None:
        return "not evaluated yet"
    if row["train_run"] is None:
        return "its training run is no longer recorded: materialize finetuned_model"
    if row["eval_run"] != row["train_run"]:
        return (
            f"its eval measured the checkpoint of run {row['eval_run'][:8]}, replaced since by run "
            f"{row['train_run'][:8]}: materialize eval_loss"
        )
    if row["trained_on"] is not None and row["trained_on"] != row["selection_now"]:
        return "trained on an earlier version of its selection: materialize finetuned_model"
    return ""


def load_pass_at_k(store: Store, model: str, target: str, configured: Sequence[RunKey]) -> list[PassAtKRow]:
    """pass@k per (method, budget, k) over seeds, from rows that measured the current checkpoint of a configured run
    trained on the current selection (the same rule as the test loss)."""
    rows = store.query(
        """SELECT p.method, p.budget, p.seed, p.k, p.pass_at_k FROM pass_at_k p
           JOIN training_runs t USING (model, target, method, budget, seed)
           LEFT JOIN selection_sets c USING (model, target, method, budget, seed)
           WHERE p.model = ? AND p.target = ? AND p.run_id = t.run_id
             AND (t.selection_version IS NULL OR t.selection_version = c.version)""",
        [model, target],
    ).to_pylist()
    wanted = set(configured)
    values: dict[tuple[str, int, int], list[float]] = {}
    for row in sorted(rows, key=lambda r: (r["method"], r["budget"], r["k"], r["seed"])):
        if RunKey(model, target, row["method"], row["budget"], row["seed"]) in wanted:
            values.setdefault((row["method"], row["budget"], row["k"]), []).append(row["pass_at_k"])
    return [PassAtKRow(method, budget, k, interval(v)) for (method, budget, k), v in values.items()]


def load_composition(
    store: Store, model: str, target: str, runs: Sequence[RunResult]
) -> dict[tuple[str, int], dict[str, float]]:
    """Each source's share of the tokens of each reported (method, budget)'s selections, averaged over its seeds."""
    rows = store.query(
        """SELECT method, budget, seed, dataset,
                                 sum(tokens) / sum(sum(tokens)) OVER (PARTITION BY method, budget, seed) AS share
                          FROM selections WHERE model = ? AND target = ? GROUP BY method, budget, seed, dataset
                          ORDER BY method, budget, seed, dataset""",
        [model, target],
    )
    seeds: dict[tuple[str, int], set[int]] = {}
    for run in runs:
        seeds.setdefault((run.key.method, run.key.budget), set()).add(run.key.seed)
    shares: dict[tuple[str, int], dict[str, float]] = {}
    for row in rows.to_pylist():
        group = (row["method"], row["budget"])
        if row["seed"] in seeds.get(group, ()):
            found = shares.setdefault(group, {})
            found[row["dataset"]] = found.get(row["dataset"], 0.0) + float(row["share"]) / len(seeds[group])
    return shares


def _test_curves(store: Store, run_ids: list[str]) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    for point in store.query(
        "SELECT run_id, tokens, loss FROM loss_curves WHERE kind = 'test' AND list_contains(?, run_id) ORDER BY tokens",
        [run_ids],
    ).to_pylist():
        curves.setdefault(point["run_id"], []).append((point["tokens"], point["loss"]))
    return curves


def tokens_to_reach(curve: list[tuple[int, float]], loss: float) -> float | None:
    """Training tokens at which a test-loss curve first reaches `loss` (linear between points), or None."""
    for (t0, l0), (t1, l1) in zip(curve, curve[1:]):
        if l1 <= loss:
            return float(t0) if l0 <= loss else t0 + (t1 - t0) * (l0 - loss) / (l0 - l1)
    return None


def losses_at(runs: Sequence[RunResult]) -> dict[int, list[float]]:
    """The seeds' test losses at each training-token count they were measured at, in token order."""
    at: dict[int, list[float]] = {}
    for run in runs:
        for tokens, loss in run.curve:
            at.setdefault(tokens, []).append(loss)
    return dict(sorted(at.items()))


def mean_curve(runs: Sequence[RunResult]) -> list[tuple[int, float]]:
    """The seeds' curves averaged at each training-token count they were measured at."""
    return [(tokens, float(np.mean(losses))) for tokens, losses in losses_at(runs).items()]


def group_runs(runs: Sequence[RunResult]) -> dict[tuple[str, int], list[RunResult]]:
    """Runs by (method, budget), seeds together, in method and budget order."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: r.key):
        groups.setdefault((run.key.method, run.key.budget), []).append(run)
    return groups


def summarize(
    title: str,
    base: RunResult,
    runs: Sequence[RunResult],
    selection_seconds: dict[str, float],
    excluded: list[str] | None = None,
    all_max_tokens: int | None = None,
) -> Report:
    """Per (method, budget): the mean test CE over seeds with its interval; ZIP-FIT paired with each baseline and
    each of its ablations."""
    groups = group_runs(runs)
    means = {group: float(np.mean([r.test_loss for r in members])) for group, members in groups.items()}
    baseline_groups = [g for g in groups if is_baseline(g[0])]
    best = min(baseline_groups, key=lambda g: means[g]) if baseline_groups else None
    rows = [
        MethodRow(
            method,
            budget,
            round(float(np.mean([r.train_tokens for r in members]))),
            interval([r.test_loss for r in members]),
            means[(method, budget)] - base.test_loss,
            tokens_to_reach(mean_curve(members), means[best]) if best else None,
            float(np.mean([r.mean_alignment for r in members])),
            selection_seconds.get(method, 0.0),
        )
        for (method, budget), members in groups.items()
    ]
    others = sorted({m for m, _ in groups if m not in (ZIPFIT, THRESHOLD)}, key=lambda m: (is_zipfit(m), m))
    paired = [
        _paired(groups, budget, other)
        for method, budget in groups
        if method == ZIPFIT
        for other in others
        if _partner(other, budget) in groups
    ]
    best_row = next((r for r in rows if (r.method, r.budget) == best), None)
    return Report(title, base.test_loss, best_row, rows, paired, list(runs), excluded or [], all_max_tokens)


def _partner(baseline: str, budget: int) -> tuple[str, int]:
    """The baseline selection ZIP-FIT at `budget` is compared with: the same budget, or `all`."""
    return (baseline, budget) if is_budgeted(baseline) else (baseline, 0)


def _paired(groups: dict[tuple[str, int], list[RunResult]], budget: int, baseline: str) -> PairedRow:
    ours = {r.key.seed: r.test_loss for r in groups[(ZIPFIT, budget)]}
    theirs = {r.key.seed: r.test_loss for r in groups[_partner(baseline, budget)]}
    differences = [ours[seed] - theirs[seed] for seed in sorted(set(ours) & set(theirs))]
    return PairedRow(baseline, budget, interval(differences), sum(d < 0 for d in differences))


def build_report(
    store: Store,
    model: str,
    target: str,
    configured: Sequence[RunKey],
    folder: Path,
    all_max_tokens: int | None = None,
    ngram_words: int = 13,
) -> tuple[Report, dict[str, Path]]:
    """The report of `model` on `target` from the store's current runs: report.md and two PNG plots in `folder`."""
    base, runs, excluded = load_results(store, model, target, configured)
    contaminated = store.query(
        "SELECT dataset, doc_id, zipfit_rank, test_row, ngram, removed FROM contaminated_texts "
        "WHERE model = ? AND target = ? ORDER BY zipfit_rank",
        [model, target],
    ).to_pylist()
    seconds = {
        r["method"]: r["seconds"]
        for r in store.query(
            "SELECT method, seconds + coalesce(prepare_seconds, 0) AS seconds FROM selection_runs "
            "WHERE model = ? AND target = ?",
            [model, target],
        ).to_pylist()
    }
    report = replace(
        summarize(f"{model} on {target}", base, runs, seconds, excluded, all_max_tokens),
        contaminated=contaminated,
        ngram_words=ngram_words,
        pass_at_k=load_pass_at_k(store, model, target, configured),
        composition=load_composition(store, model, target, runs),
    )
    folder.mkdir(parents=True, exist_ok=True)
    plots = {
        "loss_vs_tokens": plot_loss_vs_tokens(report, folder / "loss_vs_tokens.png"),
        "alignment_vs_loss": plot_alignment_vs_loss(report, folder / "alignment_vs_loss.png"),
    }
    images = "".join(f"\n\n![]({path.name})" for path in plots.values())
    (folder / "report.md").write_text(f"# {report.title}\n\n{report.markdown()}{images}\n", encoding="utf-8")
    return report, plots


# Markdown --------------------------------------------------------------------------------------------------


def _budget_label(row: MethodRow, report: Report) -> str:
    if row.method == THRESHOLD:
        return f"> {row.budget / 1000:.3f} ({row.train_tokens:,} tokens)"
    if row.method == WHOLE_POOL:
        return (
            f"whole pool ({row.train_tokens:,} tokens)"
            if report.all_max_tokens is None
            else f"cap {report.all_max_tokens:,} ({row.train_tokens:,} tokens)"
        )
    return f"{row.budget:,}"


def _bounds(i: Interval) -> str:
    return "n/a (1 seed)" if math.isnan(i.low) else f"[{i.low:.4f}, {i.high:.4f}]"


def _results_table(report: Report) -> list[str]:
    best = report.best_baseline
    head = f"Base model test CE: **{report.base_loss:.4f}**" + (
        f"; best baseline: **{best.method} {_budget_label(best, report)}, {best.test_loss.mean:.4f}**" if best else ""
    )
    lines = [
        head + f". Means over seeds with {CONFIDENCE:.0%} t-intervals.",
        "",
        "| method | budget | seeds | test CE | 95% CI | change from base | tokens to best baseline's CE "
        "| mean alignment | selection s (with scoring or embedding) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in report.rows:
        reach = "not reached" if row.tokens_to_best_baseline is None else f"{row.tokens_to_best_baseline:,.0f}"
        lines.append(
            f"| {row.method} | {_budget_label(row, report)} | {row.test_loss.n} | {row.test_loss.mean:.4f} | "
            f"{_bounds(row.test_loss)} | {row.change_from_base:+.4f} | {reach} | {row.mean_alignment:.4f} | "
            f"{row.selection_seconds:.2f} |"
        )
    return lines


def _paired_table(report: Report) -> list[str]:
    if not report.paired:
        return ["No baseline to pair ZIP-FIT with."]
    lines = [
        "ZIP-FIT against each baseline and ablation, paired by seed (negative: ZIP-FIT's test CE is lower):",
        "",
        "| compared with | ZIP-FIT budget | ZIP-FIT − it | 95% CI | ZIP-FIT lower | significant |",
        "|---|---:|---:|---|---:|---|",
    ]
    for p in report.paired:
        d = p.difference
        verdict = "n/a" if math.isnan(d.low) else ("yes" if d.excludes_zero else "no")
        lines.append(
            f"| {p.baseline} | {p.budget:,} | {d.mean:+.4f} | {_bounds(d)} | {p.wins} of {d.n} seeds | {verdict} |"
        )
    return lines


def _pass_at_k_table(report: Report) -> list[str]:
    if not report.pass_at_k:
        return []
    lines = [
        "",
        f"Pass@k on the held-out problems (sandboxed execution), means over seeds with {CONFIDENCE:.0%} t-intervals:",
        "",
        "| method | budget | k | seeds | pass@k | 95% CI |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in report.pass_at_k:
        budget = "-" if row.method in (BASE, WHOLE_POOL) else f"{row.budget:,}"
        lines.append(
            f"| {row.method} | {budget} | {row.k} | {row.value.n} | {row.value.mean:.4f} | {_bounds(row.value)} |"
        )
    return lines


def _composition_table(report: Report) -> list[str]:
    """Which sources each selection's tokens came from (the in-domain share of each method)."""
    if not report.composition:
        return []
    sources = sorted({d for shares in report.composition.values() for d in shares})
    lines = [
        "",
        "Where each selection's tokens came from (share of its tokens per source, mean over seeds):",
        "",
        "| method | budget | " + " | ".join(sources) + " |",
        "|---|---:|" + "---:|" * len(sources),
    ]
    for row in report.rows:
        shares = report.composition.get((row.method, row.budget), {})
        lines.append(
            f"| {row.method} | {_budget_label(row, report)} | "
            + " | ".join(f"{shares.get(d, 0.0):.0%}" for d in sources)
            + " |"
        )
    return lines


def _decontamination_line(report: Report) -> str:
    found = report.contaminated
    if not found:
        return f"Decontamination: no pool text shares {report.ngram_words} words with a held-out test text."
    ranks = ", ".join(str(r["zipfit_rank"]) for r in found[:10]) + (", …" if len(found) > 10 else "")
    fate = (
        "removed before ranking"
        if found[0]["removed"]
        else "KEPT: decontamination is off, so the test gain may be inflated"
    )
    return (
        f"Decontamination: {len(found)} pool texts share {report.ngram_words} words with a held-out test text, "
        f"{fate}; ZIP-FIT had ranked them {ranks}."
    )


def _excluded_lines(report: Report) -> list[str]:
    return ["", "Not in this report:", *[f"- {reason}" for reason in report.excluded]] if report.excluded else []


# Plots -----------------------------------------------------------------------------------------------------


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
            finals = [r for r in report.rows if r.method == method]
            errors = [[0 if math.isnan(r.test_loss.low) else r.test_loss.mean - r.test_loss.low for r in finals]] * 2
            axes.errorbar(
                [r.train_tokens for r in finals],
                [r.test_loss.mean for r in finals],
                yerr=errors,
                fmt="s",
                color=line.get_color(),
                capsize=3,
            )
        axes.axhline(report.base_loss, color="grey", linestyle=":", label="base model")
        axes.set(xlabel="training tokens", ylabel="test cross-entropy", title=report.title)
        axes.legend(fontsize="small", ncols=2)
    return path


def _seed_range(runs: Sequence[RunResult]) -> list[tuple[int, float, float]]:
    """(tokens, lowest, highest) test CE over the seeds at each measured point; nothing for a single seed."""
    return [(t, min(v), max(v)) for t, v in losses_at(runs).items()] if len(runs) > 1 else []


def equal_budget_runs(report: Report) -> list[RunResult]:
    """Every seed's run at the largest token budget: training sets of the same size, one point each."""
    budgeted = [r for r in report.runs if is_budgeted(r.key.method) and np.isfinite(r.mean_alignment)]
    largest = max((r.key.budget for r in budgeted), default=0)
    return [r for r in budgeted if r.key.budget == largest]


def alignment_fit(runs: Sequence[RunResult]) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """x = mean alignment of each training set, y = test CE after fine-tuning on it; slope, intercept, R²."""
    x = np.asarray([r.mean_alignment for r in runs], dtype=np.float64)
    y = np.asarray([r.test_loss for r in runs], dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return x, y, math.nan, math.nan, math.nan
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1 - np.sum(residual**2) / total if total > 0 else math.nan
    return x, y, float(slope), float(intercept), float(r2)


def plot_alignment_vs_loss(report: Report, path: Path) -> Path:
    """Mean alignment of each equal-size training set against the test CE it gave, one point per seed, the fit
    and its R² (the paper's Figure 3)."""
    runs = equal_budget_runs(report)
    x, y, slope, intercept, r2 = alignment_fit(runs)
    with _figure(path) as axes:
        for method in sorted({r.key.method for r in runs}):
            chosen = [i for i, r in enumerate(runs) if r.key.method == method]
            axes.scatter(x[chosen], y[chosen], label=method)
        if np.isfinite(slope):
            xs = np.linspace(x.min(), x.max(), 10)
            axes.plot(xs, slope * xs + intercept, color="grey", label=f"fit, R² = {r2:.2f}")
        budget = runs[0].key.budget if runs else 0
        axes.set(
            xlabel=f"mean ZIP-FIT alignment of the training set ({budget:,} tokens)",
            ylabel="test cross-entropy",
            title=report.title,
        )
        if runs:
            axes.legend(fontsize="small", ncols=2)
    return path
