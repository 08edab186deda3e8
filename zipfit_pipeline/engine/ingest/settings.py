"""The ingest stage's sections of the project file: each source (`sources`), each target task (`targets`) and the
incoming folder where a dropped file becomes a source."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zipfit_pipeline.engine.core.input_files import MAX_TEXT_CHARS
from zipfit_pipeline.engine.core.settings import NAME_PATTERN, Settings
from zipfit_pipeline.engine.ingest.records import FILE_FORMATS, template_fields


class DatasetSpec(Settings):
    """Where examples come from and how a text is made of a row."""

    name: str = Field(pattern=NAME_PATTERN)
    path: str = Field(description="file, folder, save_to_disk folder, DuckDB file or hub id")
    format: Literal["json", "csv", "parquet", "text_folder", "hf_disk", "hub", "duckdb"] | None = None
    text_field: str = "text"
    template: str | None = Field(None, description="a str.format template over fields, instead of text_field")
    id_field: str | None = None
    query: str | None = Field(None, description="SQL for a DuckDB input")
    split: str = "train"
    chunk_chars: int | None = Field(
        None,
        ge=1,
        le=MAX_TEXT_CHARS,
        description="split longer texts into equal chunks of at most this many "
        "characters, each its own document (a remedy for the length bias); off by default",
    )
    max_chars: int | None = Field(
        1_000_000,
        ge=1,
        le=MAX_TEXT_CHARS,
        description="skip longer texts (counted as too_long): gzip sees only 32 KiB at a time, so a huge text's "
        f"score means little; at most {MAX_TEXT_CHARS:,}; null keeps every text, and needs chunk_chars",
    )

    @model_validator(mode="after")
    def _bounded_texts(self) -> DatasetSpec:
        if self.max_chars is None and self.chunk_chars is None:
            raise ValueError(
                f"{self.name}: max_chars: null keeps texts of any length, and no stage can hold one of "
                f"more than {MAX_TEXT_CHARS:,} characters at once; set chunk_chars too (long texts are then cut "
                f"into documents), or a max_chars of at most {MAX_TEXT_CHARS:,}"
            )
        return self

    @field_validator("template")
    @classmethod
    def _plain_fields(cls, template: str | None) -> str | None:
        if template is not None:
            template_fields(template)
        return template


class TargetSpec(DatasetSpec):
    """A target task: rows [start, end) of its input are the alignment set, others the held-out test split."""

    alignment_rows: tuple[int, int]
    test_rows: tuple[int, int]
    clip_rows: bool = Field(
        False,
        description="a row range past the end of the file fails the target's ingestion, naming the file and its row "
        "count; true uses the rows there are (logged)",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> TargetSpec:
        if self.chunk_chars is not None:
            raise ValueError(f"target {self.name}: chunk_chars applies to sources only (targets are selected by row)")
        (a0, a1), (t0, t1) = self.alignment_rows, self.test_rows
        if a0 >= a1 or t0 >= t1:
            raise ValueError(f"target {self.name}: row ranges must be non-empty [start, end)")
        if a0 < t1 and t0 < a1:
            raise ValueError(f"target {self.name}: alignment_rows and test_rows overlap")
        return self


class IncomingSettings(Settings):
    """A folder where dropping a file adds a source dataset, named after the file (`incoming_sources` sensor).

    Symbolic links in it are ignored: a link would let whoever can write the folder make the pipeline read (and
    show in the UI) any file the process can read."""

    path: str = "data/incoming"
    stable_seconds: float = Field(
        10.0,
        ge=0,
        description="a file is ingested once it has not changed for this long "
        "(a copy still in progress is not read half-written)",
    )
    text_field: str = "text"
    template: str | None = None
    id_field: str | None = None


INCOMING_SUFFIXES = tuple(suffix for suffix in FILE_FORMATS if suffix != ".gz")


def incoming_name(file: Path) -> str | None:
    """The source name a dropped file gets (`My File.jsonl` -> `my_file`), or None if it is not a dataset file."""
    if file.suffix.lower() not in INCOMING_SUFFIXES or file.name.startswith("."):
        return None
    name = re.sub(r"[^a-z0-9_-]+", "_", file.stem.lower()).strip("_-")
    return name if re.match(NAME_PATTERN, name) else None
