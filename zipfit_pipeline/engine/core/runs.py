"""Which fine-tune a row of the store belongs to: a model, a target, a selection (method and budget) and a seed."""

from __future__ import annotations

from dataclasses import dataclass

BASE = "base"  # the model before fine-tuning: no selection, no seed
THRESHOLD = "threshold"  # ZIP-FIT's alignment > τ; its budget is τ in thousandths (threshold.350: > 0.350)
WHOLE_POOL = "all"  # the whole pool (or its configured cap): no budget of its own


@dataclass(frozen=True, order=True)
class RunKey:
    """One fine-tune. `budget` is a token budget, τ in thousandths for `threshold`, 0 for `all` and `base`."""

    model: str
    target: str
    method: str
    budget: int = 0
    seed: int = 0

    @property
    def is_base(self) -> bool:
        return self.method == BASE

    @property
    def selection(self) -> str:
        """`zipfit.2000`, `all` or `base`: the selection, whatever the seed."""
        return self.method if self.method in (BASE, WHOLE_POOL) else f"{self.method}.{self.budget}"

    def label(self) -> str:
        """`zipfit.2000.s0`, `all.s1`, `base`: unique per model and target, safe in file names."""
        return BASE if self.is_base else f"{self.selection}.s{self.seed}"

    def __str__(self) -> str:
        return f"{self.model} / {self.target} / {self.label()}"
