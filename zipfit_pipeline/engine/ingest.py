"""Ingest stage: read a source dataset or a target task in full, then replace it in the store in one transaction.

A file is read completely before anything is written, so an unusable input leaves the store as it was, and a
file that changed while it was read (a copy still in progress) is read again or refused, never stored in part.
Rows without a usable text are skipped and counted by reason (see `RecordReader`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from zipfit_pipeline.engine.file_state import FileState, file_state
from zipfit_pipeline.engine.loaders import InputError, Record, RecordReader, chunk_records, content_hash, digest, set_hash
from zipfit_pipeline.engine.store import Store

READ_ATTEMPTS = 3
SECONDS_BETWEEN_ATTEMPTS = 2.0


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
    reader: RecordReader, attempts: int = READ_ATTEMPTS, wait: float = SECONDS_BETWEEN_ATTEMPTS,
    log: Callable[[str], None] = print,
) -> tuple[list[Record], RecordReader, FileState | None]:
    """Every record of the input, read while its size, modification time and content hash stayed the same.

    Returns the records, the reader that read them (its skip counts) and the input's state. A file that keeps
    changing fails naming it, and nothing is stored."""
    path = Path(reader.path)
    for attempt in range(1, attempts + 1):
        reader = replace(reader, skipped=Counter(), first_skipped={})
        before = file_state(path)
        records = list(reader)
        after = file_state(path)
        if before == after:
            return records, reader, before
        log(f"{reader.path} changed while it was read (attempt {attempt} of {attempts}): reading it again")
        time.sleep(wait)
    raise InputError(f"{reader.path}: changed while it was read, {attempts} times in a row (is a copy or an editor still "
                     "writing it?); nothing was stored, ingest it again once it is complete")


def ingest_source(
    store: Store, dataset: str, reader: RecordReader, chunk_chars: int | None = None, log: Callable[[str], None] = print,
) -> IngestResult:
    """Replace `dataset`'s documents with the usable records of `reader` (long texts cut into chunks if asked)."""
    records, reader, state = read_unchanged(reader, log=log)
    rows = len(records)
    if chunk_chars:
        records = list(chunk_records(records, chunk_chars))
    if not records:
        raise InputError(f"{reader.path}: no usable rows (skipped: {reader.skip_summary()}); the stored documents are kept")
    store.replace_documents(dataset, records, dict(reader.skipped))
    hashes = [content_hash(r.text) for r in records]
    return IngestResult(
        path=reader.path, rows=rows, documents=len(records), distinct_texts=len(set(hashes)),
        bytes=sum(len(r.text.encode("utf-8")) for r in records), skipped=dict(reader.skipped),
        first_skipped=dict(reader.first_skipped), skip_summary=reader.skip_summary(), preview=[r.text for r in records[:3]],
        digest=digest([r.row_index for r in records], hashes), input_state=state,
    )


def ingest_target(
    store: Store, task: str, reader: RecordReader, alignment_rows: tuple[int, int], test_rows: tuple[int, int],
    log: Callable[[str], None] = print,
) -> IngestResult:
    """Replace `task`'s alignment split (rows [start, end) scored against) and its held-out test split.

    A test text that is also in the alignment split would be scored against and then tested on: refused.
    """
    records, reader, state = read_unchanged(reader, log=log)
    ranges = {"alignment": alignment_rows, "test": test_rows}
    splits = {split: [r for r in records if start <= r.row_index < end] for split, (start, end) in ranges.items()}
    for split, rows in splits.items():
        if not rows:
            raise InputError(f"{reader.path}: the {split} split (rows {ranges[split]}) has no usable rows "
                             f"(skipped: {reader.skip_summary()}); the stored target is kept")
    hashes = {split: [content_hash(r.text) for r in rows] for split, rows in splits.items()}
    _refuse_shared_texts(reader.path, splits, hashes)
    store.replace_targets(task, splits)
    return IngestResult(
        path=reader.path, rows=len(records), documents=sum(len(rows) for rows in splits.values()),
        distinct_texts=len({h for split in hashes.values() for h in split}),
        bytes=sum(len(r.text.encode("utf-8")) for rows in splits.values() for r in rows), skipped=dict(reader.skipped),
        first_skipped=dict(reader.first_skipped), skip_summary=reader.skip_summary(),
        preview=[r.text for r in splits["alignment"][:1]],
        digest=digest(hashes), split_sizes={split: len(rows) for split, rows in splits.items()},
        split_hashes={split: set_hash(h) for split, h in hashes.items()}, input_state=state,
    )


def _refuse_shared_texts(path: str, splits: dict[str, list[Record]], hashes: dict[str, list[str]]) -> None:
    alignment = {h: r.row_index for h, r in zip(hashes["alignment"], splits["alignment"])}
    shared = [(alignment[h], r.row_index) for h, r in zip(hashes["test"], splits["test"]) if h in alignment]
    if shared:
        pairs = ", ".join(f"{a} and {t}" for a, t in shared[:3])
        raise InputError(f"{path}: {len(shared)} test texts are also in the alignment split (rows {pairs}): the test "
                         "loss would measure texts the selection was aimed at; remove the duplicates or change the rows")

