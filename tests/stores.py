"""Stages run straight on a store, without a project: a test names the texts and settings it is about."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zipfit_pipeline.engine.core.compute import ComputeSettings
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.score import ScoreSet, ScoringReport, ScoringSettings, score_dataset, score_sets
from zipfit_pipeline.engine.score.stage import COMMIT_SECONDS


def zipfit_set(targets: Sequence[str], compressor: str = "gzip", level: int = 9) -> ScoreSet:
    """ZIP-FIT's score set of `targets` with this compressor and level."""
    return score_sets(targets, ScoringSettings(compressor=compressor, level=level))[0]


def score(
    store: Store,
    dataset: str,
    targets: Sequence[str],
    compressor: str = "gzip",
    level: int = 9,
    progress: Callable[[str], None] = lambda _: None,
    commit_seconds: float = COMMIT_SECONDS,
    workers: int = 0,
    **settings: Any,
) -> ScoringReport:
    """Score a stored dataset against `targets` (`settings`: the project file's `scoring` entries; `workers`: its
    `compute` section's)."""
    scoring = ScoringSettings(**settings)
    return score_dataset(
        store,
        dataset,
        zipfit_set(targets, compressor, level),
        scoring,
        progress,
        commit_seconds,
        ComputeSettings(workers=workers),
    )
