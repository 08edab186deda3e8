"""Ingest stage: read a source dataset or a target task, then replace it in the store at once.

A source is read in chunks of STAGE_ROWS records, each staged in one short transaction (other processes write
in between, and memory stays bounded by the chunk, not the file); once the whole file is read unchanged, one
short transaction swaps it in, touching only rows that changed. Until then the stored documents stay as they
were: an unusable input, or a file that changed while it was read (a copy still in progress), is read again or
refused, never stored in part. Targets are small and read whole. Rows without a usable text are skipped and
counted by reason (see `RecordReader`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from itertools import islice

from zipfit_pipeline.engine.core.hashing import content_hash, digest, set_hash
from zipfit_pipeline.engine.core.store import Store, StoreError
from zipfit_pipeline.engine.ingest.file_state import FileState, read_unchanged
from zipfit_pipeline.engine.ingest.grown_files import GrownFrom, file_record, grown_from, still_grown_from
from zipfit_pipeline.engine.ingest.records import InputError, Record, RecordReader, chunk_records
from zipfit_pipeline.engine.ingest.settings import DatasetSpec, TargetSpec
from zipfit_pipeline.engine.ingest.tables import IngestTables

STAGE_ROWS = 10_000  # documents read and staged at a time


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


def ingest_source(
    store: Store, spec: DatasetSpec, reader: RecordReader, log: Callable[[str], None] = print
) -> IngestResult:
    """Replace the source's documents with the usable records of `reader` (long texts cut into chunks if asked). A
    JSON-lines file that only grew since its last ingestion is read from where that one ended (`grown_files`)."""
    dataset, chunk_chars, tables, whole_reader = spec.name, spec.chunk_chars, IngestTables(store), reader
    grown = grown_from(tables, dataset, reader, bool(chunk_chars))
    if grown:
        reader = replace(reader, start_byte=grown.size, first_row=grown.rows)

    def stage(records: Iterator[Record]) -> tuple[int, list[str]]:
        tables.start_staging(dataset)
        if grown:
            tables.stage_stored(dataset)
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
        if grown and not still_grown_from(grown, reader.path, state):
            log(f"{reader.path} changed before its new rows were read: reading it whole")
            tables.forget_ingested_file(dataset)
            return ingest_source(store, spec, whole_reader, log)
        if grown:
            log(
                f"{reader.path} only grew since its {grown.size:,} bytes were stored: read only its "
                f"{reader.rows_seen - grown.rows:,} new rows"
            )
            repeated = tables.unstage_repeated_ids(dataset, grown.rows)
            rows += grown.rows - sum(grown.skipped.values()) - len(repeated)  # the stored part's usable rows
            _add_earlier_skips(reader, grown, repeated)
        if not preview and not grown:
            raise InputError(
                f"{reader.path}: no usable rows (skipped: {reader.skip_summary()}); the stored documents are kept"
            )
        tables.commit_staged(dataset, dict(reader.skipped), file_record(reader, state, bool(chunk_chars)))
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


def _add_earlier_skips(reader: RecordReader, grown: GrownFrom, repeated_ids: list[int]) -> None:
    """The reader's skip counts as a whole read would give them: the stored part's, the new rows', and the new rows
    whose id a stored row already has."""
    reader.skipped.update(grown.skipped)
    reader.skipped.update({"duplicate_id": len(repeated_ids)} if repeated_ids else {})
    firsts = [grown.first_skipped, {"duplicate_id": repeated_ids[0]} if repeated_ids else {}]
    for earlier in firsts:
        for reason, row in earlier.items():
            reader.first_skipped[reason] = min(row, reader.first_skipped.get(reason, row))


def ingest_target(
    store: Store, spec: TargetSpec, reader: RecordReader, log: Callable[[str], None] = print
) -> IngestResult:
    """Replace `task`'s alignment split (rows [start, end) scored against) and its held-out test split.

    A test text that is also in the alignment split would be scored against and then tested on: refused. So is a
    range past the end of the file, unless the target says `clip_rows: true`.
    """
    records, reader, state = read_unchanged(reader, list, log=log)
    ranges = _within_file(spec, reader, log)
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


def _within_file(spec: TargetSpec, reader: RecordReader, log: Callable[[str], None]) -> dict[str, tuple[int, int]]:
    """The target's row ranges, checked against the rows the file has (clipped to them if the project says so)."""
    ranges, total = {"alignment": spec.alignment_rows, "test": spec.test_rows}, reader.rows_seen
    for split, (start, end) in ranges.items():
        if end <= total:
            continue
        if not spec.clip_rows:
            raise InputError(
                f"{reader.path}: {split}_rows [{start}, {end}) of target {spec.name} go past the end of the file, "
                f"which has {total} rows; fix the range, or set clip_rows: true to use rows [{start}, {total})"
            )
        log(f"{reader.path}: {split}_rows [{start}, {end}) clipped to [{start}, {total}) (clip_rows: true)")
        ranges[split] = (start, total)
    return ranges


def _refuse_shared_texts(path: str, splits: dict[str, list[Record]], hashes: dict[str, list[str]]) -> None:
    alignment = {h: r.row_index for h, r in zip(hashes["alignment"], splits["alignment"])}
    shared = [(alignment[h], r.row_index) for h, r in zip(hashes["test"], splits["test"]) if h in alignment]
    if shared:
        pairs = ", ".join(f"{a} and {t}" for a, t in shared[:3])
        raise InputError(
            f"{path}: {len(shared)} test texts are also in the alignment split (rows {pairs}): the test "
            "loss would measure texts the selection was aimed at; remove the duplicates or change the rows"
        )
