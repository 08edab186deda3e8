"""The score stage's section of the project file (`scoring`): compressor, level, chunks, the compressor ablation.
Its defaults are stated here once; the engine's functions take the section whole. Where scoring runs (cores, a Ray
cluster) is the `compute` section's, shared with every other per-text stage."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from zipfit_pipeline.engine.core.settings import Settings
from zipfit_pipeline.engine.score.compression import Compressor, check_compressor

DEFAULT_COMPRESSOR: Compressor = "gzip"
DEFAULT_LEVEL = 9  # Python's gzip.compress default (the reference's own default, level 0, does not compress)
DEFAULT_CHUNK_SIZE = 256


class ScoringSettings(Settings):
    compressor: Compressor = DEFAULT_COMPRESSOR
    level: int = DEFAULT_LEVEL
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=1)
    variants: list[str] = Field(
        [],
        description="the compressor ablation: each `<compressor>-<level>` (gzip-1, lz4-0, "
        "zstd-3) also scores the pool and adds the selection method `zipfit-<compressor>-<level>`",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_to_compute(cls, data: object) -> object:
        moved = sorted(set(data) & {"backend", "workers", "ray_address"}) if isinstance(data, dict) else []
        if moved:
            raise ValueError(
                f"scoring.{', scoring.'.join(moved)} moved to the `compute` section, shared by every stage"
            )
        return data

    @model_validator(mode="after")
    def _valid_level(self) -> ScoringSettings:
        check_compressor(self.compressor, self.level)
        for compressor, level in self.variant_pairs():
            check_compressor(compressor, level)
        if (self.compressor, self.level) in self.variant_pairs() or len(set(self.variants)) != len(self.variants):
            raise ValueError(
                f"variants must be distinct and differ from the compressor ({self.compressor}-{self.level})"
            )
        return self

    @field_validator("variants")
    @classmethod
    def _compressor_dash_level(cls, variants: list[str]) -> list[str]:
        malformed = [v for v in variants if not re.fullmatch(r"[a-z0-9]+-[0-9]+", v)]
        if malformed:
            raise ValueError(f"variants are <compressor>-<level>, such as gzip-1 or lz4-0; got {malformed}")
        return variants

    def variant_pairs(self) -> list[tuple[str, int]]:
        return [(name, int(level)) for name, level in (v.rsplit("-", 1) for v in self.variants)]
