"""Rank a pool and keep the top of it: by count, by a token budget, or above a score threshold.

Rankings are deterministic: scores descending, ties broken by pool order (the reference's order); a text whose
score is not finite (-inf: DSIR's too-short texts, D4's near-duplicates) is never chosen.
A budget keeps the shortest prefix of a ranking whose tokens reach the budget, so every method trains on
the same number of tokens (the last document is cut at training time). `random` and `all` walk seeded
permutations of the pool, one per training seed, so that seeds also cover the baselines' own randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zipfit_pipeline.engine.core.runs import THRESHOLD, WHOLE_POOL
from zipfit_pipeline.engine.select.methods import METHODS, RANDOM_STREAMS, SCORED_METHODS, is_zipfit, threshold_key


def rank_by_score(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Pool indices, best score first; equal scores keep pool order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def random_order(n: int, seed: int, stream: int = 0) -> np.ndarray:
    """A seeded permutation of the pool."""
    return np.random.default_rng([seed, stream]).permutation(n)


def top_k(order: np.ndarray, k: int) -> np.ndarray:
    return order[:k]


def above_threshold(order: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    return order[np.asarray(scores)[order] > threshold]


def within_budget(order: np.ndarray, tokens: Sequence[int] | np.ndarray, budget: int) -> np.ndarray:
    """The shortest prefix of `order` whose tokens reach `budget` (all of it if the pool is smaller)."""
    cumulative = np.cumsum(np.asarray(tokens, dtype=np.int64)[order])
    reached = np.searchsorted(cumulative, budget, side="left")
    return order[: min(int(reached) + 1, len(order))]


def method_order(method: str, scores: np.ndarray, seed: int) -> np.ndarray:
    """The ranking a selection method walks through (`scores` are the method's own; seeds matter to random orders)."""
    if method in SCORED_METHODS or is_zipfit(method):
        order = rank_by_score(scores)
        return order[np.isfinite(np.asarray(scores, dtype=np.float64)[order])]
    if method in RANDOM_STREAMS:
        return random_order(len(scores), seed, RANDOM_STREAMS[method])
    raise ValueError(f"unknown selection method {method!r}; choose one of {', '.join(METHODS)}")


def select_by_budget(
    method: str, scores: np.ndarray, tokens: np.ndarray, budgets: Sequence[int], seed: int
) -> list[dict[str, Any]]:
    """Rows (method, budget, rank, pool index, tokens, cumulative tokens) for every budget."""
    order = method_order(method, scores, seed)
    return [row for budget in budgets for row in _rows(method, budget, within_budget(order, tokens, budget), tokens)]


def select_whole_pool(tokens: np.ndarray, seed: int, max_tokens: int | None) -> list[dict[str, Any]]:
    """`all`: the whole pool in a seeded random order, or the prefix of that order that reaches `max_tokens`."""
    order = method_order(WHOLE_POOL, tokens, seed)
    return _rows(WHOLE_POOL, 0, order if max_tokens is None else within_budget(order, tokens, max_tokens), tokens)


def select_by_threshold(scores: np.ndarray, tokens: np.ndarray, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """ZIP-FIT's other rule (the paper's Figure 6): every text with alignment > τ, best first, for each τ."""
    order = rank_by_score(scores)
    return [
        row for t in thresholds for row in _rows(THRESHOLD, threshold_key(t), above_threshold(order, scores, t), tokens)
    ]


def _rows(method: str, budget: int, chosen: np.ndarray, tokens: np.ndarray) -> list[dict[str, Any]]:
    cumulative = np.cumsum(tokens[chosen])
    return [
        {
            "method": method,
            "budget": int(budget),
            "rank": rank,
            "pool_index": int(index),
            "tokens": int(tokens[index]),
            "cumulative_tokens": int(total),
        }
        for rank, (index, total) in enumerate(zip(chosen, cumulative))
    ]
