"""The comparison's arithmetic (means over seeds, t-intervals, paired differences) and what it reads from the store."""

import math
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.evaluate import EvalTables, Measured
from zipfit_pipeline.engine.report import render_markdown
from zipfit_pipeline.engine.report.results import CurrentInputs, load_lengths, load_results
from zipfit_pipeline.engine.report.statistics import (
    LengthProfile,
    RunResult,
    alignment_fit,
    equal_budget_runs,
    interval,
    summarize,
    tokens_to_reach,
)
from zipfit_pipeline.engine.select import SelectTables
from zipfit_pipeline.engine.train import TrainTables

T_975 = {1: 12.706204736, 2: 4.302652730}  # Student's t, 97.5th percentile, by degrees of freedom (printed tables)


def _run(
    method: str, budget: int, seed: int, loss: float, alignment: float = 0.2, curve: list | None = None
) -> RunResult:
    return RunResult(
        RunKey("m", "t", method, budget, seed),
        budget,
        loss,
        alignment,
        curve or [(0, 3.0), (budget, loss)],
        curve_measured=curve is not None,
    )


BASE = RunResult(RunKey("m", "t", "base"), 0, 3.0, math.nan, [(0, 3.0)])


def test_tokens_to_reach_interpolates_between_curve_points() -> None:
    curve = [(0, 3.0), (100, 2.0), (200, 1.5)]
    assert tokens_to_reach(curve, 2.5) == pytest.approx(50.0)
    assert tokens_to_reach(curve, 2.0) == pytest.approx(100.0)
    assert tokens_to_reach(curve, 1.75) == pytest.approx(150.0)
    assert tokens_to_reach(curve, 1.0) is None
    assert tokens_to_reach(curve, 3.5) == 0.0


def test_interval_is_students_t_over_seeds() -> None:
    three = interval([2.0, 2.2, 2.4])
    half = T_975[2] * 0.2 / math.sqrt(3)
    assert (three.mean, three.low, three.high, three.n) == (
        pytest.approx(2.2),
        pytest.approx(2.2 - half),
        pytest.approx(2.2 + half),
        3,
    )
    assert interval([1.0, 2.0]).high == pytest.approx(1.5 + T_975[1] * math.sqrt(0.5) / math.sqrt(2))
    one = interval([2.0])
    assert one.mean == 2.0 and math.isnan(one.low) and math.isnan(one.high) and not one.excludes_zero


def test_summary_pairs_zipfit_with_each_baseline_seed_by_seed() -> None:
    runs = [
        _run("zipfit", 100, 0, 2.00),
        _run("zipfit", 100, 1, 2.10),
        _run("zipfit", 100, 2, 2.05),
        _run("random", 100, 0, 2.30),
        _run("random", 100, 1, 2.35),
        _run("random", 100, 2, 2.40),
        _run("dsir", 100, 0, 1.90),
        _run("dsir", 100, 1, 2.20),
        _run("dsir", 100, 2, 2.10),
    ]
    report = summarize("m on t", BASE, runs, {"zipfit": 1.5})
    rows = {r.method: r for r in report.rows}
    assert rows["zipfit"].test_loss.mean == pytest.approx(2.05) and rows["zipfit"].test_loss.n == 3
    assert rows["zipfit"].change_from_base == pytest.approx(-0.95)
    assert rows["zipfit"].selection_seconds == 1.5
    assert report.best_baseline is not None and report.best_baseline.method == "dsir"  # 2.0667 < random's 2.35
    paired = {p.baseline: p for p in report.paired}
    # random: every seed lower by 0.30, 0.25, 0.35 -> significant; dsir: +0.10, -0.10, -0.05 -> not.
    assert paired["random"].difference.mean == pytest.approx(-0.30) and paired["random"].wins == 3
    assert paired["random"].difference.excludes_zero
    assert paired["dsir"].difference.mean == pytest.approx(-0.05 / 3) and paired["dsir"].wins == 2
    assert not paired["dsir"].difference.excludes_zero
    # Holm over the two comparisons: random's p (0.009) doubled is still below 0.05.
    assert paired["random"].significant and paired["random"].p_value == pytest.approx(0.0182, abs=5e-4)
    assert not paired["dsir"].significant
    markdown = render_markdown(report)
    assert "| random | 100 | -0.3000 | [" in markdown and "| 3 of 3 seeds | 0.0183 | yes |" in markdown
    assert "| dsir | 100 | -0.0167 | [" in markdown and "| 2 of 3 seeds |" in markdown
    assert "Holm-adjusted over the 2 comparisons" in markdown


def test_a_difference_that_never_varies_is_not_called_significant() -> None:
    """Every seed 0.1 lower: a zero-width interval 'excludes' zero, but there is no evidence of a spread to test."""
    runs = [
        _run(m, 100, seed, loss + (0.1 if m == "random" else 0.0))
        for m in ("zipfit", "random")
        for seed, loss in enumerate([2.0, 2.2, 2.4])
    ]
    (row,) = summarize("m on t", BASE, runs, {}).paired
    assert row.difference.mean == pytest.approx(-0.1) and math.isnan(row.p_value) and not row.significant
    assert "| n/a | n/a |" in render_markdown(summarize("m on t", BASE, runs, {}))


def test_tokens_to_the_best_baseline_need_measured_curve_points() -> None:
    runs = [_run("zipfit", 100, 0, 2.0), _run("random", 100, 0, 2.5)]
    report = summarize("m on t", BASE, runs, {})
    row = next(r for r in report.rows if r.method == "zipfit")
    assert row.tokens_to_best_baseline is None and not row.curve_measured
    assert "not measured (no curve points)" in render_markdown(report)


def test_tokens_to_the_best_baseline_follow_the_mean_curve_over_seeds() -> None:
    runs = [
        _run("zipfit", 100, 0, 2.0, curve=[(0, 3.0), (50, 2.4), (100, 2.0)]),
        _run("zipfit", 100, 1, 2.2, curve=[(0, 3.0), (50, 2.6), (100, 2.2)]),
        _run("random", 100, 0, 2.5),
        _run("random", 100, 1, 2.5),
    ]
    row = next(r for r in summarize("m on t", BASE, runs, {}).rows if r.method == "zipfit")
    assert row.tokens_to_best_baseline == pytest.approx(50.0)  # the mean curve is at 2.5 after 50 tokens


def test_alignment_fit_uses_every_seed_of_the_equal_size_training_sets() -> None:
    runs = [
        _run(m, 100, seed, 3.0 - 2 * a, a)
        for m, a in (("random", 0.1), ("dsir", 0.2), ("zipfit", 0.4))
        for seed in (0, 1)
    ]
    runs += [_run("zipfit", 50, 0, 9.0, 0.9)]  # a smaller budget is not a point of the fit
    report = summarize("m on t", BASE, runs, {})
    assert len(equal_budget_runs(report)) == 6
    _, _, slope, intercept, r2 = alignment_fit(equal_budget_runs(report))
    assert (slope, intercept, r2) == (pytest.approx(-2.0), pytest.approx(3.0), pytest.approx(1.0))


def test_alignment_is_fitted_at_each_budget_and_over_all_of_them() -> None:
    """Within a budget, better-aligned data gives a lower loss here (slope -2, exact); across budgets the larger
    budget's lower losses at lower alignment turn the pooled slope around, which is why each budget has its own."""
    runs = [
        _run(m, budget, seed, start - 2 * a, a)
        for budget, start, aligned in ((100, 3.0, (0.5, 0.8)), (400, 1.0, (0.1, 0.4)))
        for m, a in zip(("random", "zipfit"), aligned)
        for seed in (0, 1)
    ]
    runs += [_run("all", 0, 0, 0.5, 0.05)]  # `all` has no budget: not a point of any fit
    report = summarize("m on t", BASE, runs, {})
    fits = {f.budget: f for f in report.alignment_fits()}
    assert set(fits) == {100, 400, None}
    for budget in (100, 400):
        assert (fits[budget].runs, fits[budget].slope, fits[budget].r2) == (4, pytest.approx(-2.0), pytest.approx(1.0))
    assert fits[None].runs == 8 and fits[None].slope > 0 and 0 < fits[None].r2 < 1
    markdown = render_markdown(report)
    assert "| 100 tokens | 4 | -2.000 | 1.00 |" in markdown and "| every budget | 8 | +" in markdown
    assert report.as_metadata()["alignment_fits"][0] == {
        "budget": 100,
        "runs": 4,
        "slope": pytest.approx(-2.0),
        "r2": pytest.approx(1.0),
    }


def test_test_loss_is_tabled_by_budget_for_the_budgeted_methods() -> None:
    runs = [
        _run(m, b, seed, loss + seed * 0.1)
        for m, b, loss in (("zipfit", 100, 2.0), ("zipfit", 400, 1.5), ("random", 400, 1.7))
        for seed in (0, 1)
    ]
    runs += [_run("all", 0, seed, 1.2) for seed in (0, 1)]
    markdown = render_markdown(summarize("m on t", BASE, runs, {}))
    assert "| method | 100 tokens | 400 tokens |" in markdown
    assert "| zipfit | 2.0500 [1.4147, 2.6853] | 1.5500 [0.9147, 2.1853] |" in markdown
    assert (
        "| random | - | 1.7500 [" in markdown
        and "| all | " not in markdown.split("Test CE by budget")[1].split("\n\n")[1]
    )
    assert "Test CE by budget" not in render_markdown(summarize("m on t", BASE, runs[:2], {}))  # one budget: no table


INPUTS = CurrentInputs(training_version="train-v", base_version="base-v", eval_version="eval-v")


def _stored_run(
    store: Store,
    key: RunKey,
    run_id: str,
    version: str | None,
    loss: float,
    trained_with: str | None = None,
    measured_on: str | None = None,
) -> None:
    """A run recorded with the project's current inputs (unless told otherwise) and its eval; the store holds no
    target, so the current test split is None."""
    row = _run_row(key, run_id, version, trained_with)
    TrainTables(store).record_training(key, row, {"test": [(key.budget // 2, loss + 0.1)]} if not key.is_base else {})
    EvalTables(store).record_eval(key, run_id, version, loss, 10, Measured(measured_on, "eval-v"))


def _run_row(key: RunKey, run_id: str, version: str | None, trained_with: str | None = None) -> dict[str, object]:
    """A training run's row, trained with the project's current settings unless `trained_with` says otherwise."""
    return {
        "settings_version": trained_with or ("base-v" if key.is_base else "train-v"),
        "run_id": run_id,
        "selection_version": version,
        "checkpoint": f"/ckpt/{run_id}",
        "train_tokens": key.budget,
        "steps": 1,
        "final_train_loss": 1.0,
        "seconds": 1.0,
        "device": "cpu",
    }


def _selection_sets(
    store: Store, keys: list[RunKey], versions: dict[RunKey, str], lengths: dict[RunKey, list[int]] | None = None
) -> None:
    """The selection sets of `keys`, each of the texts whose token lengths `lengths` gives (none by default)."""
    texts = [(k, i, n) for k, found in (lengths or {}).items() for i, n in enumerate(found)]
    sets = pa.table(
        {
            "method": [k.method for k in keys],
            "budget": pa.array([k.budget for k in keys], pa.int64()),
            "seed": pa.array([k.seed for k in keys], pa.int32()),
            "version": [versions[k] for k in keys],
            "documents": pa.array([1] * len(keys), pa.int64()),
            "tokens": pa.array([k.budget for k in keys], pa.int64()),
            "mean_alignment": pa.array([0.2] * len(keys), pa.float64()),
        }
    )
    selected = pa.table(
        {
            "method": pa.array([k.method for k, _, _ in texts], pa.string()),
            "budget": pa.array([k.budget for k, _, _ in texts], pa.int64()),
            "seed": pa.array([k.seed for k, _, _ in texts], pa.int32()),
            "rank": pa.array([i for _, i, _ in texts], pa.int64()),
            "dataset": pa.array(["pool"] * len(texts), pa.string()),
            "doc_id": pa.array([str(i) for _, i, _ in texts], pa.string()),
            "content_hash": pa.array([f"h{i}" for _, i, _ in texts], pa.string()),
            "score": pa.array([0.5] * len(texts), pa.float64()),
            "tokens": pa.array([n for _, _, n in texts], pa.int64()),
            "cumulative_tokens": pa.array([0] * len(texts), pa.int64()),
        }
    )
    clean = pa.table(
        {
            "dataset": pa.array([], pa.string()),
            "doc_id": pa.array([], pa.string()),
            "content_hash": pa.array([], pa.string()),
            "zipfit_rank": pa.array([], pa.int64()),
            "test_row": pa.array([], pa.int64()),
            "ngram": pa.array([], pa.string()),
            "rule": pa.array([], pa.string()),
            "removed": pa.array([], pa.bool_()),
        }
    )
    SelectTables(store).replace_selections("m", "t", selected, sets, {}, clean)


def test_the_report_reads_only_current_evals_of_configured_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    base = RunKey("m", "t", "base")
    current, retrained, reselected, removed, other_settings, other_split = (
        RunKey("m", "t", "zipfit", 100, 0),
        RunKey("m", "t", "zipfit", 100, 1),
        RunKey("m", "t", "random", 100, 0),
        RunKey("m", "t", "dsir", 100, 0),
        RunKey("m", "t", "zipfit", 100, 2),
        RunKey("m", "t", "zipfit", 100, 3),
    )
    trained = [current, retrained, reselected, removed, other_settings, other_split]
    _selection_sets(store, trained, {k: "v1" for k in trained})
    _stored_run(store, base, "run-base", None, 3.0)
    for key in trained[:4]:
        _stored_run(store, key, f"run-{key.label()}", "v1", 2.0)
    # Trained at another learning rate (a partial retrain left it behind), and measured on an earlier test split.
    _stored_run(store, other_settings, "run-old-lr", "v1", 1.0, trained_with="train-old")
    _stored_run(store, other_split, "run-old-split", "v1", 1.0, measured_on="old-split")
    # A second fine-tune of seed 1 replaced the checkpoint its eval measured, and it has not been evaluated yet.
    TrainTables(store).record_training(retrained, _run_row(retrained, "run-new", "v1"), {})
    # The random selection was made again and chose other texts; its fine-tune trained on the earlier version.
    _selection_sets(store, trained, {**{k: "v1" for k in trained}, reselected: "v2"})

    configured = [base, current, retrained, reselected, other_settings, other_split]
    base_result, runs, excluded = load_results(store, "m", "t", configured, INPUTS)
    assert base_result.test_loss == 3.0
    assert [r.key for r in runs] == [current]
    assert runs[0].curve == [(0, 3.0), (50, 2.1), (100, 2.0)]
    assert any(line.startswith("zipfit.100.s1: its eval measured the checkpoint of run run-zipf") for line in excluded)
    assert "random.100.s0: trained on an earlier version of its selection: materialize finetuned_model" in excluded
    assert "1 evals of methods, budgets or seeds no longer configured" in excluded  # dsir, removed from the project
    assert (
        "zipfit.100.s2: trained with other training settings or model weights than the project's now: "
        "materialize finetuned_model" in excluded
    )
    assert any(line.startswith("zipfit.100.s3: measured on another test split of t") for line in excluded)
    # New base weights: every comparison with the base model would mix models, so it is not current either.
    with pytest.raises(LookupError, match="no current eval of the base model .*trained with other model weights"):
        load_results(store, "m", "t", configured, CurrentInputs("train-v", "new-base", "eval-v"))

    with pytest.raises(LookupError, match="no current eval of the base model m on t"):
        load_results(store, "m", "t", [current], INPUTS)  # `base` is never optional


def test_the_length_profile_averages_the_reported_seeds_of_each_selection(tmp_path: Path) -> None:
    """ZIP-FIT's short texts against random's long ones; a seed left out of the report is left out of its profile."""
    store = Store(tmp_path / "store.duckdb")
    zipfit = [RunKey("m", "t", "zipfit", 100, seed) for seed in (0, 1)]
    lengths = {zipfit[0]: [10, 20, 30, 40, 50], zipfit[1]: [30, 30, 30], RunKey("m", "t", "random", 100, 0): [90, 110]}
    lengths[RunKey("m", "t", "zipfit", 100, 2)] = [1000]  # a seed the report does not hold (its eval is not current)
    _selection_sets(store, list(lengths), {k: "v1" for k in lengths}, lengths)
    reported = [_run(k.method, k.budget, k.seed, 2.0) for k in lengths if k.seed < 2]
    found = load_lengths(store, "m", "t", reported)
    assert found[("zipfit", 100)] == LengthProfile(
        texts=4.0, median=30.0, p10=(14 + 30) / 2, p90=(46 + 30) / 2, mean=30.0
    )
    assert found[("random", 100)].median == 100.0 and found[("random", 100)].texts == 2
    report = replace(summarize("m on t", BASE, reported, {}), lengths=found)
    assert "| zipfit | 100 | 4 | 30 | 22 | 38 | 30 |" in render_markdown(report)
