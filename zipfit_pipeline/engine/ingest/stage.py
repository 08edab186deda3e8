"""Ingest stage: read a source dataset or a target task, then replace it in the store at once.

A source is read in chunks of STAGE_ROWS records, each staged in one short transaction (other processes write
in between, and memory stays bounded by the chunk, not the file); once the whole file is read unchanged, one
short transaction swaps it in, touching only rows that changed. Until then the stored documents stay as they
were: an unusable input, or a file that changed while it was read (a copy still in progress), is read again or
refused, never stored in part. Targets are small and read whole. Rows without a usable text are skipped and
counted by reason (see `RecordReader`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import TypeVar

from zipfit_pipeline.engine.core.hashing import content_hash, digest, set_hash
from zipfit_pipeline.engine.core.store import Store, StoreError
from zipfit_pipeline.engine.ingest.file_state import FileState, file_state
from zipfit_pipeline.engine.ingest.records import InputError, Record, RecordReader, chunk_records
from zipfit_pipeline.engine.ingest.settings import DatasetSpec, TargetSpec
from zipfit_pipeline.engine.ingest.tables import IngestTables

STAGE_ROWS = 10_000  # documents read and staged at a time
READ_ATTEMPTS = 3
SECONDS_BETWEEN_ATTEMPTS = 2.0
Read = TypeVar("Read")


@dataclass(frozen=True)
class IngestResult:
    """What one ingestion stored; `digest` changes exactly when the stored rows or texts do."""

    path: str
    rows: int  # usable rows read
    documents: int  # documents stored (more than rows when long texts are chunked)
    distinct_texts: int
    bytes: int
    skipped: dict[str, int]
    first_skipped: dict[str, int]
    skip_summary: str  # `1 invalid_utf8 (first at row 42), …` or `none`
    preview: list[str]
    digest: str
    split_sizes: dict[str, int] = field(default_factory=dict)  # targets: the texts of each split
    split_hashes: dict[str, str] = field(default_factory=dict)  # targets: the set hash of each split
    input_state: FileState | None = None  # the local input as it was read; None for a hub dataset


def read_unchanged(
    reader: RecordReader,
    consume: Callable[[Iterator[Record]], Read],
    attempts: int = READ_ATTEMPTS,
    wait: float = SECONDS_BETWEEN_ATTEMPTS,
    log: Callable[[str], None] = print,
) -> tuple[Read, RecordReader, FileState | None]:
    """`consume` of every record of the input (`list` keeps them all), read while the input's size,
    modification time and content hash stayed the same.

    Returns what `consume` returned, the reader that read them (its skip counts) and the input's state. A file that
    keeps changing fails naming it, and nothing is stored."""
    path = Path(reader.path)
    for attempt in range(1, attempts + 1):
        reader = replace(reader, skipped=Counter(), first_skipped={})
        before = file_state(path)
        result = consume(iter(reader))
        after = file_state(path)
        if before == after:
            return result, reader, before
        log(f"{reader.path} changed while it was read (attempt {attempt} of {attempts}): reading it again")
        time.sleep(wait)
    raise InputError(
        f"{reader.path}: changed while it was read, {attempts} times in a row (is a copy or an editor still "
        "writing it?); nothing was stored, ingest it again once it is complete"
    )


def ingest_source(
    store: Store, spec: DatasetSpec, reader: RecordReader, log: Callable[[str], None] = print
) -> IngestResult:
    """Replace the source's documents with the usable records of `reader` (long texts cut into chunks if asked)."""
    dataset, chunk_chars, tables = spec.name, spec.chunk_chars, IngestTables(store)

    def stage(records: Iterator[Record]) -> tuple[int, list[str]]:
        tables.start_staging(dataset)
        rows = 0

        def counted() -> Iterator[Record]:
            nonlocal rows
            for record in records:
                rows += 1
                yield record

        documents = chunk_records(counted(), chunk_chars) if chunk_chars else counted()
        preview: list[str] = []
        while chunk := list(islice(documents, STAGE_ROWS)):
            preview = preview or [r.text for r in chunk[:3]]
            tables.stage_documents(dataset, chunk)
        return rows, preview

    try:
        (rows, preview), reader, state = read_unchanged(reader, stage, log=log)
        if not preview:
            raise InputError(
                f"{reader.path}: no usable rows (skipped: {reader.skip_summary()}); the stored documents are kept"
            )
        tables.commit_staged(dataset, dict(reader.skipped))
    except BaseException:
        with suppress(StoreError):
            tables.start_staging(dataset)  # leave nothing staged behind (the next ingestion would clear it anyway)
        raise
    stored = tables.dataset_summary(dataset)
    return IngestResult(
        path=reader.path,
        rows=rows,
        documents=stored["documents"],
        distinct_texts=stored["distinct_texts"],
        bytes=stored["bytes"],
        skipped=dict(reader.skipped),
        first_skipped=dict(reader.first_skipped),
        skip_summary=reader.skip_summary(),
        preview=preview,
        digest=stored["digest"],
        input_state=state,
    )


def ingest_target(
    store: Store, spec: TargetSpec, reader: RecordReader, log: Callable[[str], None] = print
) -> IngestResult:
    """Replace `task`'s alignment split (rows [start, end) scored against) and its held-out test split.

    A test text that is also in the alignment split would be scored against and then tested on: refused.
    """
    records, reader, state = read_unchanged(reader, list, log=log)
    ranges = {"alignment": spec.alignment_rows, "test": spec.test_rows}
    splits = {split: [r for r in records if start <= r.row_index < end] for split, (start, end) in ranges.items()}
    for split, rows in splits.items():
        if not rows:
            raise InputError(
                f"{reader.path}: the {split} split (rows {ranges[split]}) has no usable rows "
                f"(skipped: {reader.skip_summary()}); the stored target is kept"
            )
    hashes = {split: [content_hash(r.text) for r in rows] for split, rows in splits.items()}
    _refuse_shared_texts(reader.path, splits, hashes)
    IngestTables(store).replace_targets(spec.name, splits)
    return IngestResult(
        path=reader.path,
        rows=len(records),
        documents=sum(len(rows) for rows in splits.values()),
        distinct_texts=len({h for split in hashes.values() for h in split}),
        bytes=sum(len(r.text.encode("utf-8")) for rows in splits.values() for r in rows),
        skipped=dict(reader.skipped),
        first_skipped=dict(reader.first_skipped),
        skip_summary=reader.skip_summary(),
        preview=[r.text for r in splits["alignment"][:1]],
        # What scores read: the alignment split. The test split is a declared input of the stages that read it
        # (decontamination, evals, Pass@k), so that a new test split re-measures without rescoring anything.
        digest=digest(hashes["alignment"]),
        split_sizes={split: len(rows) for split, rows in splits.items()},
        split_hashes={split: set_hash(h) for split, h in hashes.items()},
        input_state=state,
    )


def _refuse_shared_texts(path: str, splits: dict[str, list[Record]], hashes: dict[str, list[str]]) -> None:
    alignment = {h: r.row_index for h, r in zip(hashes["alignment"], splits["alignment"])}
    shared = [(alignment[h], r.row_index) for h, r in zip(hashes["test"], splits["test"]) if h in alignment]
    if shared:
        pairs = ", ".join(f"{a} and {t}" for a, t in shared[:3])
        raise InputError(
            f"{path}: {len(shared)} test texts are also in the alignment split (rows {pairs}): the test "
            "loss would measure texts the selection was aimed at; remove the duplicates or change the rows"
        )
