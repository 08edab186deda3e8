"""Each asset's code version, from one declaration of what it reads: the engine version, and the project settings
that change its output (fields of its own stage's section, and any field of another section it depends on, named
here). A change to any other setting leaves the asset fresh; a change to one named here makes it stale.

A read is a field (`scoring.level`) or a whole section (`selection`), less the fields that change no result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine import ENGINE_VERSION
from zipfit_pipeline.engine.train import TrainingSettings
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    PASS_AT_K,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)


@dataclass(frozen=True)
class Read:
    path: str  # `scoring.level` (one field) or `training` (a whole section)
    exclude: frozenset[str] = frozenset()  # fields of a whole section that change no result


READS: dict[str, tuple[Read, ...]] = {
    SOURCE_DOCUMENTS: (),
    TARGET_DOCUMENTS: (),
    # The target-set ablation's subsets are score sets: the score stage computes them.
    ALIGNMENT_SCORES: (
        Read("scoring.compressor"),
        Read("scoring.level"),
        Read("scoring.variants"),
        Read("selection.target_subsets"),
        Read("selection.target_subset_seed"),
    ),
    # Selections rank by the score sets, and draw the random baselines once per training seed.
    SELECTIONS: (
        Read("selection"),
        Read("scoring.compressor"),
        Read("scoring.level"),
        Read("scoring.variants"),
        Read("training.seeds"),
    ),
    # Each partition trains with its own seed: adding a seed adds partitions, it does not retrain the others.
    FINETUNED_MODEL: (Read("training", TrainingSettings.NOT_IN_RESULT),),
    EVAL_LOSS: (Read("training.eval_max_length"),),
    PASS_AT_K: (Read("pass_at_k", frozenset({"enabled"})),),
    COMPARISON_REPORT: (Read("selection.all_max_tokens"),),
}


def code_version(asset: str, config: ProjectConfig) -> str:
    """Engine version plus a short digest of the settings `asset` declares it reads, stable across processes."""
    payload = json.dumps(
        [ENGINE_VERSION, asset, *(_value(config, read) for read in READS[asset])], sort_keys=True, default=str
    )
    return f"{ENGINE_VERSION}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _value(config: ProjectConfig, read: Read) -> Any:
    value: Any = config
    for name in read.path.split("."):
        value = getattr(value, name)
    return value.model_dump(exclude=set(read.exclude)) if isinstance(value, BaseModel) else value
