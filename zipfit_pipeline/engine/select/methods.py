"""The selection methods by name: which rank by a score of their own, which draw seeded random orders, which fill
token budgets. The methods a project runs are listed in one place, `SelectionSettings.method_names`."""

from __future__ import annotations

from zipfit_pipeline.engine.core.runs import THRESHOLD, WHOLE_POOL
from zipfit_pipeline.engine.score import ZIPFIT, is_zipfit, subset_method, variant_method

__all__ = ["ZIPFIT", "is_zipfit", "subset_method", "variant_method"]  # ZIP-FIT's names, from the score stage

# Ranked by a score of their own: ZIP-FIT's alignment, DSIR's log importance weight, D4's order, the cosine to the
# target's mean embedding, BM25 against the targets. ZIP-FIT's ablations (`zipfit-lz4-0`, `zipfit-n10`) rank too.
SCORED_METHODS = (ZIPFIT, "dsir", "d4", "embedding", "bm25")
EMBEDDING_METHODS = ("d4", "embedding")  # read the stored embeddings
# Independent random streams per method, so that `all` capped at B is not `random` at B with the same seed.
RANDOM_STREAMS = {"random": 0, WHOLE_POOL: 1}
METHODS = (*SCORED_METHODS, *RANDOM_STREAMS)


def is_budgeted(method: str) -> bool:
    """Fills each token budget; `all` and thresholds train on all they keep."""
    return method not in (WHOLE_POOL, THRESHOLD)


def threshold_key(threshold: float) -> int:
    """A threshold τ as the budget of its selection: τ in thousandths (`threshold.350` keeps alignment > 0.350)."""
    return round(threshold * 1000)
