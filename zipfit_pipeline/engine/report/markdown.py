"""The report as Markdown: the results table and test CE by budget, the paired comparisons, pass@k, where each
selection's tokens came from and how long its texts are, alignment against loss, what decontamination removed, and
what was left out and why."""

from __future__ import annotations

import math

from zipfit_pipeline.engine.core.runs import BASE, THRESHOLD, WHOLE_POOL
from zipfit_pipeline.engine.report.statistics import CONFIDENCE, Interval, MethodRow, Report
from zipfit_pipeline.engine.select import is_budgeted


def render_markdown(report: Report) -> str:
    return "\n".join(
        [
            *_results_table(report),
            *_budget_table(report),
            "",
            *_paired_table(report),
            *_pass_at_k_table(report),
            *_composition_table(report),
            *_length_table(report),
            *_alignment_table(report),
            "",
            _decontamination_line(report),
            *_excluded_lines(report),
        ]
    )


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
        reach = (
            "not measured (no curve points)"
            if not row.curve_measured
            else "not reached"
            if row.tokens_to_best_baseline is None
            else f"{row.tokens_to_best_baseline:,.0f}"
        )
        lines.append(
            f"| {row.method} | {_budget_label(row, report)} | {row.test_loss.n} | {row.test_loss.mean:.4f} | "
            f"{_bounds(row.test_loss)} | {row.change_from_base:+.4f} | {reach} | {row.mean_alignment:.4f} | "
            f"{row.selection_seconds:.2f} |"
        )
    return lines


def _budget_table(report: Report) -> list[str]:
    """Test CE per method (rows) and budget (columns): how each method's loss falls as its budget grows."""
    budgets = sorted({r.budget for r in report.rows if is_budgeted(r.method)})
    if len(budgets) < 2:
        return []
    cells = {(r.method, r.budget): r.test_loss for r in report.rows}
    lines = [
        "",
        f"Test CE by budget (mean over seeds, {CONFIDENCE:.0%} interval):",
        "",
        "| method | " + " | ".join(f"{b:,} tokens" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for method in sorted({m for m, b in cells if b in budgets and is_budgeted(m)}):
        row = [cells.get((method, b)) for b in budgets]
        lines.append(
            f"| {method} | " + " | ".join("-" if i is None else f"{i.mean:.4f} {_bounds(i)}" for i in row) + " |"
        )
    return lines


def _paired_table(report: Report) -> list[str]:
    if not report.paired:
        return ["No baseline to pair ZIP-FIT with."]
    lines = [
        "ZIP-FIT against each baseline and ablation, paired by seed (negative: ZIP-FIT's test CE is lower); "
        f"p: paired t-test, Holm-adjusted over the {len(report.paired)} comparisons; significant: adjusted p < 0.05 "
        "(never with one seed or when every seed's difference is the same):",
        "",
        "| compared with | ZIP-FIT budget | ZIP-FIT − it | 95% CI | ZIP-FIT lower | p (Holm) | significant |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for p in report.paired:
        d = p.difference
        verdict = "n/a" if math.isnan(p.p_value) else ("yes" if p.significant else "no")
        p_text = "n/a" if math.isnan(p.p_value) else f"{p.p_value:.3g}"
        lines.append(
            f"| {p.baseline} | {p.budget:,} | {d.mean:+.4f} | {_bounds(d)} | {p.wins} of {d.n} seeds | {p_text} "
            f"| {verdict} |"
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


def _length_table(report: Report) -> list[str]:
    """How long each selection's texts are (ZIP-FIT favours short ones); random's are the pool's, in expectation."""
    if not report.lengths:
        return []
    lines = [
        "",
        "How long each selection's texts are, in tokens (mean over seeds; random's profile is the pool's):",
        "",
        "| method | budget | texts | median | 10th percentile | 90th percentile | mean |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.rows:
        p = report.lengths.get((row.method, row.budget))
        if p:
            lines.append(
                f"| {row.method} | {_budget_label(row, report)} | {p.texts:,.0f} | {p.median:,.0f} | {p.p10:,.0f} "
                f"| {p.p90:,.0f} | {p.mean:,.0f} |"
            )
    return lines


def _alignment_table(report: Report) -> list[str]:
    """The paper's Figure 3 as numbers: does a better-aligned training set give a lower test loss?"""
    fits = [f for f in report.alignment_fits() if not math.isnan(f.slope)]
    if not fits:
        return []
    lines = [
        "",
        "Test CE against the training set's mean ZIP-FIT alignment, one point per run (negative slope: better-aligned "
        "data gives a lower loss; over every budget, the budget moves the loss too, whatever the alignment):",
        "",
        "| runs of | points | slope | R² |",
        "|---|---:|---:|---:|",
    ]
    for f in fits:
        what = "every budget" if f.budget is None else f"{f.budget:,} tokens"
        lines.append(f"| {what} | {f.runs} | {f.slope:+.3f} | {f.r2:.2f} |")
    return lines


def _decontamination_line(report: Report) -> str:
    found = report.contaminated
    if not found:
        return f"Decontamination: no pool text shares {report.decontamination} with a held-out test text."
    ranks = ", ".join(str(r["zipfit_rank"]) for r in found[:10]) + (", …" if len(found) > 10 else "")
    rules = {rule: sum(r["rule"] == rule for r in found) for rule in ("words", "code")}
    by_rule = ", ".join(f"{n} by {'words' if rule == 'words' else 'code shape'}" for rule, n in rules.items() if n)
    fate = (
        "removed before ranking"
        if found[0]["removed"]
        else "KEPT: decontamination is off, so the test gain may be inflated"
    )
    return (
        f"Decontamination: {len(found)} pool texts share {report.decontamination} with a held-out test text "
        f"({by_rule}), {fate}; ZIP-FIT had ranked them {ranks}."
    )


def _excluded_lines(report: Report) -> list[str]:
    return ["", "Not in this report:", *[f"- {reason}" for reason in report.excluded]] if report.excluded else []
