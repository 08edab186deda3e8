"""The comparison's arithmetic: tokens to reach a loss, the table's columns, the alignment fit."""

import math

import pytest

from zipfit_pipeline.engine.report import RunResult, alignment_fit, comparison_table, tokens_to_reach


def _run(method: str, budget: int, loss: float, alignment: float, curve: list[tuple[int, float]]) -> RunResult:
    return RunResult(method, budget, budget, loss, alignment, 0.5, curve)


def test_tokens_to_reach_interpolates_between_curve_points() -> None:
    curve = [(0, 3.0), (100, 2.0), (200, 1.5)]
    assert tokens_to_reach(curve, 2.5) == pytest.approx(50.0)
    assert tokens_to_reach(curve, 2.0) == pytest.approx(100.0)
    assert tokens_to_reach(curve, 1.75) == pytest.approx(150.0)
    assert tokens_to_reach(curve, 1.0) is None
    assert tokens_to_reach(curve, 3.5) == 0.0


def test_table_compares_with_the_base_model_and_the_best_baseline() -> None:
    results = [
        RunResult("base", 0, 0, 3.0, math.nan, 0.0, [(0, 3.0)]),
        _run("random", 100, 2.6, 0.10, [(0, 3.0), (100, 2.6)]),
        _run("dsir", 100, 2.4, 0.15, [(0, 3.0), (100, 2.4)]),
        _run("zipfit", 100, 2.0, 0.30, [(0, 3.0), (50, 2.4), (100, 2.0)]),
    ]
    rows, markdown = comparison_table(results)
    by_method = {r["method"]: r for r in rows}
    assert by_method["zipfit"]["change_from_base"] == pytest.approx(-1.0)
    assert by_method["zipfit"]["tokens_to_best_baseline"] == pytest.approx(50.0)  # DSIR's 2.4, reached at 50 tokens
    assert by_method["random"]["tokens_to_best_baseline"] is None
    assert "| zipfit | 100 | 2.0000 | -1.0000 | 50 |" in markdown
    assert "best baseline: **2.4000**" in markdown


def test_alignment_fit_uses_equal_size_training_sets() -> None:
    results = [RunResult("base", 0, 0, 3.0, math.nan, 0.0, [(0, 3.0)])]
    results += [_run(m, 100, 3.0 - 2 * a, a, []) for m, a in (("random", 0.1), ("dsir", 0.2), ("zipfit", 0.4))]
    results += [_run("zipfit", 50, 9.0, 0.9, [])]  # a smaller budget is not a point of the fit
    _, _, slope, intercept, r2 = alignment_fit(results)
    assert (slope, intercept, r2) == (pytest.approx(-2.0), pytest.approx(3.0), pytest.approx(1.0))
