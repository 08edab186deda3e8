"""Report: ZIP-FIT against the baselines for one model and target, over seeds, from current results only.

Per method and budget the report gives the mean test CE over seeds with a 95% t-interval, what the method cost
(ranking plus the scoring or embedding it ranks by) and which sources its selection came from, and for ZIP-FIT
against each baseline and each of its own ablations the difference paired by seed, its interval and how many
seeds ZIP-FIT won. Reading: `results.py`; figures: `statistics.py`; Markdown: `markdown.py`; plots: `plots.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.report.markdown import render_markdown
from zipfit_pipeline.engine.report.plots import plot_alignment_vs_loss, plot_loss_vs_budget, plot_loss_vs_tokens
from zipfit_pipeline.engine.report.results import (
    CurrentInputs,
    load_composition,
    load_lengths,
    load_pass_at_k,
    load_results,
)
from zipfit_pipeline.engine.report.statistics import Report, summarize
from zipfit_pipeline.engine.select import SelectionSettings, SelectTables


def build_report(
    store: Store,
    model: str,
    target: str,
    configured: Sequence[RunKey],
    folder: Path,
    selection: SelectionSettings,
    inputs: CurrentInputs,
) -> tuple[Report, dict[str, Path]]:
    """The report of `model` on `target` from the store's results made from `inputs` (the project's now): report.md
    and three PNG plots in `folder`."""
    base, runs, excluded = load_results(store, model, target, configured, inputs)
    pass_at_k, pass_at_k_excluded = load_pass_at_k(store, model, target, configured, inputs)
    selections = SelectTables(store)
    report = replace(
        summarize(
            f"{model} on {target}",
            base,
            runs,
            selections.method_seconds(model, target),
            excluded + pass_at_k_excluded,
            selection.all_max_tokens,
        ),
        contaminated=selections.contaminated_texts(model, target),
        decontamination=selection.decontamination.describe(),
        pass_at_k=pass_at_k,
        composition=load_composition(store, model, target, runs),
        lengths=load_lengths(store, model, target, runs),
    )
    folder.mkdir(parents=True, exist_ok=True)
    plots = {
        "loss_vs_tokens": plot_loss_vs_tokens(report, folder / "loss_vs_tokens.png"),
        "loss_vs_budget": plot_loss_vs_budget(report, folder / "loss_vs_budget.png"),
        "alignment_vs_loss": plot_alignment_vs_loss(report, folder / "alignment_vs_loss.png"),
    }
    images = "".join(f"\n\n![]({path.name})" for path in plots.values())
    (folder / "report.md").write_text(f"# {report.title}\n\n{render_markdown(report)}{images}\n", encoding="utf-8")
    return report, plots
