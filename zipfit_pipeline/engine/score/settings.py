"""The score stage's section of the project file (`scoring`): compressor, level, chunks, workers, the compressor
ablation. Its defaults are stated here once; the engine's functions take the section whole."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zipfit_pipeline.engine.core.settings import Settings
from zipfit_pipeline.engine.score.compression import Compressor, check_compressor

# local: threads on the native path, processes on the pure-Python path; ray: actors, on a cluster or started here
Backend = Literal["local", "processes", "threads", "ray"]
DEFAULT_COMPRESSOR: Compressor = "gzip"
DEFAULT_LEVEL = 9  # Python's gzip.compress default (the reference's own default, level 0, does not compress)
DEFAULT_CHUNK_SIZE = 256


class ScoringSettings(Settings):
    compressor: Compressor = DEFAULT_COMPRESSOR
    level: int = DEFAULT_LEVEL
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=1)
    workers: int = Field(0, ge=0, description="processes (threads, Ray actors); 0 means one per core")
    backend: Backend = Field(
        "local",
        description="local: threads on the native path (it releases the GIL), processes on the pure-Python path",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join (`auto`, `ray://head:10001`); none starts a local one"
    )
    variants: list[str] = Field(
        [],
        description="the compressor ablation: each `<compressor>-<level>` (gzip-1, lz4-0, "
        "zstd-3) also scores the pool and adds the selection method `zipfit-<compressor>-<level>`",
    )

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

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1
