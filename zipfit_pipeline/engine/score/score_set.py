"""What ZIP-FIT methods rank by: score sets, each the pool scored against one target set with one compressor and
level. ZIP-FIT's own set comes first; the ablations add one per compressor variant (`scoring.variants`) and one per
target subset (`selection.target_subsets`, read here by declaration: the score stage computes those sets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from zipfit_pipeline.engine.core.hashing import content_hash, set_hash
from zipfit_pipeline.engine.score.settings import ScoringSettings

ZIPFIT = "zipfit"


def variant_method(compressor: str, level: int) -> str:
    """ZIP-FIT scored with another compressor (`scoring.variants`): `zipfit-lz4-0`."""
    return f"{ZIPFIT}-{compressor}-{level}"


def subset_method(n_targets: int) -> str:
    """ZIP-FIT scored against a seeded subset of n targets (`selection.target_subsets`): `zipfit-n10`."""
    return f"{ZIPFIT}-n{n_targets}"


def is_zipfit(method: str) -> bool:
    """ZIP-FIT or one of its ablations: ranked by an alignment score computed in the score stage."""
    return method == ZIPFIT or method.startswith(f"{ZIPFIT}-")


def target_set_hash(targets: Sequence[str]) -> str:
    return set_hash([content_hash(t) for t in targets])


@dataclass(frozen=True)
class ScoreSet:
    """The pool scored against `targets` with one compressor and level: what the ZIP-FIT method `method` ranks by,
    and (with the engine version and the compressor's build) the key of its stored scores."""

    method: str
    targets: tuple[str, ...]
    compressor: str
    level: int

    @property
    def target_hash(self) -> str:
        return target_set_hash(self.targets)

    def describe(self) -> str:
        """`zipfit-n10: gzip-9, 10 targets`, for logs and errors."""
        return f"{self.method}: {self.compressor}-{self.level}, {len(self.targets)} targets"


def target_subset(targets: Sequence[str], n: int, seed: int) -> list[str]:
    """n of the targets, in their order, chosen by a seeded hash of their content: the same texts whatever order
    the target file lists them in, and each smaller subset inside every larger one (for the ablation on n)."""
    if n > len(targets):
        raise ValueError(f"selection.target_subsets asks for {n} targets, but the alignment split holds {len(targets)}")
    key = [hashlib.sha256(f"{seed}:{content_hash(t)}".encode()).digest() for t in targets]
    chosen = sorted(sorted(range(len(targets)), key=lambda i: key[i])[:n])
    return [targets[i] for i in chosen]


def zipfit_methods(scoring: ScoringSettings, subsets: Sequence[int]) -> list[str]:
    """The method of each score set, in `score_sets` order: ZIP-FIT, its compressor variants, its target subsets."""
    return [
        ZIPFIT,
        *(variant_method(compressor, level) for compressor, level in scoring.variant_pairs()),
        *(subset_method(n) for n in subsets),
    ]


def score_sets(
    targets: Sequence[str], scoring: ScoringSettings, subsets: Sequence[int] = (), subset_seed: int = 0
) -> list[ScoreSet]:
    """ZIP-FIT's score set, then one per compressor variant and one per target subset, with their target texts."""
    every = tuple(targets)
    return [
        ScoreSet(ZIPFIT, every, scoring.compressor, scoring.level),
        *(ScoreSet(variant_method(c, level), every, c, level) for c, level in scoring.variant_pairs()),
        *(
            ScoreSet(subset_method(n), tuple(target_subset(targets, n, subset_seed)), scoring.compressor, scoring.level)
            for n in subsets
        ),
    ]
