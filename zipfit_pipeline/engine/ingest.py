"""Ingest stage: read a source dataset or a target task in full, then replace it in the store in one transaction.

A file is read completely before anything is written, so an unusable input leaves the store as it was. Rows
without a usable text are skipped and counted by reason (see `RecordReader`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zipfit_pipeline.engine.loaders import InputError, Record, RecordReader, chunk_records, content_hash, digest, set_hash
from zipfit_pipeline.engine.store import Store


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


def ingest_source(store: Store, dataset: str, reader: RecordReader, chunk_chars: int | None = None) -> IngestResult:
    """Replace `dataset`'s documents with the usable records of `reader` (long texts cut into chunks if asked)."""
    records = list(reader)
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
        digest=digest([r.row_index for r in records], hashes),
    )


def ingest_target(
    store: Store, task: str, reader: RecordReader, alignment_rows: tuple[int, int], test_rows: tuple[int, int]
) -> IngestResult:
    """Replace `task`'s alignment split (rows [start, end) scored against) and its held-out test split.

    A test text that is also in the alignment split would be scored against and then tested on: refused.
    """
    records = list(reader)
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
        split_hashes={split: set_hash(h) for split, h in hashes.items()},
    )


def _refuse_shared_texts(path: str, splits: dict[str, list[Record]], hashes: dict[str, list[str]]) -> None:
    alignment = {h: r.row_index for h, r in zip(hashes["alignment"], splits["alignment"])}
    shared = [(alignment[h], r.row_index) for h, r in zip(hashes["test"], splits["test"]) if h in alignment]
    if shared:
        pairs = ", ".join(f"{a} and {t}" for a, t in shared[:3])
        raise InputError(f"{path}: {len(shared)} test texts are also in the alignment split (rows {pairs}): the test "
                         "loss would measure texts the selection was aimed at; remove the duplicates or change the rows")

