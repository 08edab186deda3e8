"""The report's figures: means over seeds with 95% t-intervals, ZIP-FIT paired with each baseline seed by seed,
tokens to reach the best baseline's loss, and the alignment-against-loss fit (the paper's Figure 3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from zipfit_pipeline.engine.core.runs import BASE, THRESHOLD, RunKey
from zipfit_pipeline.engine.score import ZIPFIT, is_zipfit
from zipfit_pipeline.engine.select import NGRAM_WORDS, is_budgeted

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
    curve_measured: bool = False  # points were measured during training (else the curve is just its two ends)


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
    curve_measured: bool = True  # every seed's curve was measured during training (else tokens-to-reach is unknown)


@dataclass(frozen=True)
class PairedRow:
    """ZIP-FIT's test CE minus a baseline's (or an ablation's), seed by seed (negative: ZIP-FIT is better)."""

    baseline: str
    budget: int
    difference: Interval
    wins: int
    p_value: float = math.nan  # two-sided paired t-test, Holm-adjusted over the report's comparisons
    significant: bool = False  # adjusted p < 0.05 and the seeds' differences vary (a zero-variance one never is)


@dataclass(frozen=True)
class PassAtKRow:
    """pass@k of one (method, budget) over seeds, measured on current checkpoints only."""

    method: str
    budget: int
    k: int
    value: Interval


@dataclass(frozen=True)
class LengthProfile:
    """How long a selection's texts are, in tokens, averaged over its seeds: ZIP-FIT favours short texts, and this
    says whether its selection is made of them."""

    texts: float
    median: float
    p10: float
    p90: float
    mean: float


@dataclass(frozen=True)
class AlignmentFit:
    """Test CE fitted on the training set's mean alignment over some runs (the paper's Figure 3): one budget's, or
    every budget's together (`budget` None), where the budget moves the loss too, whatever the alignment."""

    budget: int | None
    runs: int
    slope: float
    r2: float


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
    decontamination: str = f"{NGRAM_WORDS} words"  # the rules, as `DecontaminationSettings.describe` says them
    pass_at_k: list[PassAtKRow] = field(default_factory=list)
    # (method, budget) -> each source's share of the selection's tokens, averaged over seeds
    composition: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    # (method, budget) -> the selected texts' length in tokens (texts, median, p10, p90, mean), averaged over seeds
    lengths: dict[tuple[str, int], LengthProfile] = field(default_factory=dict)

    def alignment_r2(self) -> float:
        """R² of test CE against the training set's mean alignment, over the equal-size runs (the paper's Figure 3)."""
        return alignment_fit(equal_budget_runs(self))[4]

    def alignment_fits(self) -> list[AlignmentFit]:
        """Test CE against alignment at each budget, then over every budgeted run together."""
        return alignment_fits(self.runs)

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
                "lengths": [{"method": m, "budget": b, **asdict(p)} for (m, b), p in self.lengths.items()],
                "alignment_fits": [asdict(f) for f in self.alignment_fits()],
            }
        )


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
            tokens_to_reach(mean_curve(members), means[best]) if best and measured else None,
            float(np.mean([r.mean_alignment for r in members])),
            selection_seconds.get(method, 0.0),
            measured,
        )
        for (method, budget), members in groups.items()
        for measured in [all(r.curve_measured for r in members)]
    ]
    others = sorted({m for m, _ in groups if m not in (ZIPFIT, THRESHOLD)}, key=lambda m: (is_zipfit(m), m))
    paired = holm(
        [
            _paired(groups, budget, other)
            for method, budget in groups
            if method == ZIPFIT
            for other in others
            if _partner(other, budget) in groups
        ]
    )
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


def holm(rows: list[PairedRow], alpha: float = 1 - CONFIDENCE) -> list[PairedRow]:
    """Each comparison's paired t-test p-value, Holm-adjusted over all of them (the report makes several: one per
    baseline, ablation and budget), and whether it is significant at `alpha`. A comparison whose seeds' differences
    do not vary (or with one seed) has no p-value and is never significant."""
    p = [_t_test(r.difference) for r in rows]
    tested = sorted((i for i in range(len(rows)) if not math.isnan(p[i])), key=lambda i: p[i])
    adjusted = [math.nan] * len(rows)
    running = 0.0
    for rank, i in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p[i]))
        adjusted[i] = running
    return [
        replace(r, p_value=adjusted[i], significant=not math.isnan(adjusted[i]) and adjusted[i] < alpha)
        for i, r in enumerate(rows)
    ]


def _t_test(d: Interval) -> float:
    """Two-sided p-value of a mean difference from its t-interval (NaN when degenerate)."""
    half = d.high - d.mean
    if d.n < 2 or not half > 0:
        return math.nan
    se = half / float(stats.t.ppf((1 + CONFIDENCE) / 2, d.n - 1))
    return float(2 * stats.t.sf(abs(d.mean) / se, d.n - 1))


def aligned_runs(runs: Sequence[RunResult]) -> list[RunResult]:
    """The runs of budgeted methods with a known alignment: the points of the alignment-against-loss fits."""
    return [r for r in runs if is_budgeted(r.key.method) and np.isfinite(r.mean_alignment)]


def equal_budget_runs(report: Report) -> list[RunResult]:
    """Every seed's run at the largest token budget: training sets of the same size, one point each."""
    budgeted = aligned_runs(report.runs)
    largest = max((r.key.budget for r in budgeted), default=0)
    return [r for r in budgeted if r.key.budget == largest]


def alignment_fits(runs: Sequence[RunResult]) -> list[AlignmentFit]:
    """The alignment-against-loss fit at each budget, and over all budgets together where there are several."""
    budgeted = aligned_runs(runs)
    budgets = sorted({r.key.budget for r in budgeted})
    groups: list[tuple[int | None, list[RunResult]]] = [
        (b, [r for r in budgeted if r.key.budget == b]) for b in budgets
    ]
    if len(budgets) > 1:
        groups.append((None, budgeted))
    fits = []
    for budget, members in groups:
        _, _, slope, _, r2 = alignment_fit(members)
        fits.append(AlignmentFit(budget, len(members), slope, r2))
    return fits


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
