"""Each stage's settings, validated: the project file's `scoring`, `selection` and `training` sections, and what
the engine's stage functions take from plain Python or the CLI."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zipfit_pipeline.engine.compression import check_compressor
from zipfit_pipeline.engine.selection import METHODS, threshold_key


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoringSettings(Settings):
    compressor: Literal["gzip", "lz4", "zstd"] = "gzip"
    level: int = 9
    chunk_size: int = Field(256, ge=1)
    workers: int = Field(0, ge=0, description="processes (threads, Ray actors); 0 means one per core")
    backend: Literal["local", "processes", "threads", "ray"] = Field(
        "local", description="local: threads on the native path (it releases the GIL), processes on the pure-Python path")
    ray_address: str | None = Field(None, description="Ray cluster to join (`auto`, `ray://head:10001`); none starts a local one")

    @model_validator(mode="after")
    def _valid_level(self) -> ScoringSettings:
        check_compressor(self.compressor, self.level)
        return self

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


class DsirSettings(Settings):
    """HashedNgramDSIR's settings (the `data-selection` package's defaults)."""

    ngrams: int = Field(2, ge=1)
    num_buckets: int = Field(10_000, ge=1)
    min_example_length: int = Field(100, ge=0, description="texts with fewer words are never chosen by DSIR")


class DecontaminationSettings(Settings):
    """Pool texts sharing `ngram_words` consecutive words with a held-out test text are removed before ranking."""

    enabled: bool = Field(True, description="false keeps contaminated texts (they are still counted and listed)")
    ngram_words: int = Field(13, ge=1, description="13 lower-cased word tokens, as GPT-3's contamination study")


class SelectionSettings(Settings):
    methods: list[str] = Field(["zipfit", "random"], description="zipfit, dsir, random, all (the whole pool)")
    budgets: list[int] = Field([100_000, 200_000], min_length=1)
    thresholds: list[float] = Field([], description="ZIP-FIT also keeps every text with alignment > τ, one fine-tune per τ")
    all_max_tokens: int | None = Field(None, ge=1, description="cap of `all` (the pool in seeded random order); "
                                       "none: the whole pool")
    dsir: DsirSettings = DsirSettings()
    decontamination: DecontaminationSettings = DecontaminationSettings()

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, thresholds: list[float]) -> list[float]:
        if any(not 0 < t < 1 for t in thresholds) or len({threshold_key(t) for t in thresholds}) != len(thresholds):
            raise ValueError("thresholds must be distinct alignments between 0 and 1 (to 3 decimals)")
        return sorted(thresholds)

    @field_validator("methods")
    @classmethod
    def _known(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown selection methods {unknown}; choose from {list(METHODS)}")
        return methods

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: list[int]) -> list[int]:
        if any(b <= 0 for b in budgets) or len(set(budgets)) != len(budgets):
            raise ValueError("budgets must be distinct positive token counts")
        return sorted(budgets)


class TrainSettings(Settings):
    """One fine-tune's hyperparameters (the paper's: block 1024, weight decay 0.01, max grad norm 1.0)."""

    block_size: int = Field(1024, ge=1)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_fraction: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    curve_points: int = Field(1, ge=0, description="test-loss evaluations during training, evenly spaced; the end is eval_loss's")


class TrainingSettings(TrainSettings):
    """The project's fine-tunes: the hyperparameters, the seeds each selection is trained with, the test loss."""

    seeds: list[int] = Field([0, 1, 2], min_length=1, description="every (method, budget) is fine-tuned once per seed")
    eval_max_length: int = Field(1024, ge=2)
    eval_batch_size: int = Field(8, ge=1)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct non-negative integers")
        return seeds

    def train_settings(self) -> TrainSettings:
        return TrainSettings(**self.model_dump(include=set(TrainSettings.model_fields)))
