"""Ranking, budgets and baselines of the selection engine."""

import numpy as np

from zipfit_pipeline.engine.score import ScoringSettings
from zipfit_pipeline.engine.select import SelectionSettings
from zipfit_pipeline.engine.select.ranking import (
    above_threshold,
    random_order,
    rank_by_score,
    select_by_budget,
    select_by_threshold,
    select_whole_pool,
    within_budget,
)


def test_rank_breaks_ties_by_pool_order() -> None:
    assert rank_by_score([0.2, 0.5, 0.2, 0.5, 0.1]).tolist() == [1, 3, 0, 2, 4]


def test_budget_keeps_shortest_prefix_reaching_it() -> None:
    order = np.array([2, 0, 1, 3])
    tokens = np.array([10, 20, 30, 40])  # in order: 30, 10, 20, 40 -> cumulative 30, 40, 60, 100
    assert within_budget(order, tokens, 40).tolist() == [2, 0]
    assert within_budget(order, tokens, 41).tolist() == [2, 0, 1]
    assert within_budget(order, tokens, 1).tolist() == [2]
    assert within_budget(order, tokens, 10_000).tolist() == [2, 0, 1, 3]


def test_random_baseline_is_seeded() -> None:
    assert random_order(50, 3).tolist() == random_order(50, 3).tolist()
    assert random_order(50, 3).tolist() != random_order(50, 4).tolist()
    assert sorted(random_order(50, 3).tolist()) == list(range(50))


def test_threshold_keeps_scores_above_it_in_rank_order() -> None:
    scores = np.array([0.1, 0.35, 0.25, 0.4])
    assert above_threshold(rank_by_score(scores), scores, 0.2).tolist() == [3, 1, 2]


def test_select_by_budget_rows_per_budget() -> None:
    scores = np.array([0.3, 0.9, 0.5])
    tokens = np.array([5, 5, 5])
    rows = select_by_budget("zipfit", scores, tokens, [5, 10], seed=0)
    assert [(r["budget"], r["rank"], r["pool_index"], r["cumulative_tokens"]) for r in rows] == [
        (5, 0, 1, 5),
        (10, 0, 1, 5),
        (10, 1, 2, 10),
    ]


def test_each_method_fills_each_budget_and_all_is_one_selection() -> None:
    selection = SelectionSettings(methods=["zipfit", "all", "dsir"], budgets=[100, 200], thresholds=[0.35])
    assert selection.selections(ScoringSettings()) == [
        ("zipfit", 100),
        ("zipfit", 200),
        ("all", 0),
        ("dsir", 100),
        ("dsir", 200),
        ("threshold", 350),
    ]


def test_all_is_the_whole_pool_in_a_seeded_order_or_its_capped_prefix() -> None:
    tokens = np.array([5] * 40)
    orders = {seed: [r["pool_index"] for r in select_whole_pool(tokens, seed, None)] for seed in (0, 1)}
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(40))
    assert orders[0] != orders[1] and orders[0] != list(range(40))
    assert orders[0] == [r["pool_index"] for r in select_whole_pool(tokens, 0, None)]
    capped = select_whole_pool(tokens, 0, 12)
    assert [r["pool_index"] for r in capped] == orders[0][:3] and capped[-1]["cumulative_tokens"] == 15
    # `all` capped at B is not `random` at B with the same seed: independent streams.
    assert orders[0][:3] != [r["pool_index"] for r in select_by_budget("random", np.zeros(40), tokens, [12], seed=0)]


def test_dsir_ranks_by_its_own_weights() -> None:
    weights = np.array([-3.0, -np.inf, -1.0, -2.0])
    rows = select_by_budget("dsir", weights, np.array([1, 1, 1, 1]), [4], seed=0)
    assert [r["pool_index"] for r in rows] == [
        2,
        3,
        0,
    ]  # a filtered text (weight -inf) is never chosen, even short of budget


def test_threshold_keeps_every_text_above_it_best_first() -> None:
    scores = np.array([0.30, 0.10, 0.36, 0.35, 0.35])
    rows = select_by_threshold(scores, np.array([3, 3, 3, 3, 3]), [0.34, 0.355])
    assert [(r["method"], r["budget"], r["pool_index"]) for r in rows] == [
        ("threshold", 340, 2),
        ("threshold", 340, 3),
        ("threshold", 340, 4),
        ("threshold", 355, 2),
    ]
    assert [r["cumulative_tokens"] for r in rows] == [3, 6, 9, 3]
