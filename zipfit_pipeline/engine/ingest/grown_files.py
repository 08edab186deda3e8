"""Re-ingesting a source file that only grew: read only the rows appended since.

JSON-lines sources are often appended to (a crawl's new pages, a log of new examples). After each ingestion the
store records the file it read (`ingested_files`): its size, the content digest `read_unchanged` took of it, its
row count and skip counts, and the reader's settings. The next ingestion of a longer file hashes its first `size`
bytes: if they are what was read (and the reader's settings are the same), only the rows after them are read and
the stored documents stay as they are. Anything else (a change anywhere in the prefix, a shorter file, other
settings, a gzipped, UTF-16 or JSON-array file, texts cut into chunks) reads the whole input, as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zipfit_pipeline.engine.core.hashing import digest
from zipfit_pipeline.engine.ingest.file_state import FileState, prefix_digest, stat_signature
from zipfit_pipeline.engine.ingest.records import RecordReader, detect_format
from zipfit_pipeline.engine.ingest.tables import IngestTables

OTHER_ENCODINGS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16 and UTF-32 byte-order marks: not readable from an offset


@dataclass(frozen=True)
class GrownFrom:
    """The part of a grown file that an earlier ingestion read and stored."""

    size: int
    content: str  # `file_state(path).content` of those `size` bytes
    rows: int
    skipped: dict[str, int]
    first_skipped: dict[str, int]


def reader_identity(reader: RecordReader) -> str:
    """What decides the records read from the same bytes."""
    return digest(
        reader.text_field, reader.template, reader.id_field, reader.format, reader.require_id, reader.max_chars
    )


def grown_from(tables: IngestTables, dataset: str, reader: RecordReader, chunked: bool) -> GrownFrom | None:
    """The stored part of the input, if the input is that part with rows appended; else None (read it whole)."""
    path = Path(reader.path)
    if chunked or path.suffix.lower() != ".jsonl" or (reader.format or detect_format(reader.path)) != "json":
        return None
    stored = tables.ingested_file(dataset)
    if stored is None or stored["path"] != reader.path or stored["reader"] != reader_identity(reader):
        return None
    if not path.is_file() or path.stat().st_size <= stored["size"]:
        return None
    with path.open("rb") as file:
        if file.read(2) in OTHER_ENCODINGS:
            return None
    if prefix_digest(path, stored["size"]) != stored["content"]:
        return None
    skipped, first_skipped = json.loads(stored["skipped"]), json.loads(stored["first_skipped"])
    return GrownFrom(stored["size"], stored["content"], stored["rows"], skipped, first_skipped)


def still_grown_from(grown: GrownFrom, path: str, state: FileState | None) -> bool:
    """Whether the file read from `grown.size` on still begins with the stored bytes and has not changed since the
    read took `state`: so its new rows were read after those bytes, not after an edit made in between."""
    file = Path(path)
    return (
        state is not None
        and stat_signature(file) == state.signature()
        and prefix_digest(file, grown.size) == grown.content
    )


def file_record(reader: RecordReader, state: FileState | None, chunked: bool) -> dict[str, Any] | None:
    """What to record of the file just read, if a later ingestion may read only what is appended to it: a plain
    JSON-lines file that ends with a whole row."""
    path = Path(reader.path)
    if state is None or chunked or path.suffix.lower() != ".jsonl" or not path.is_file() or not state.size:
        return None
    with path.open("rb") as file:
        file.seek(state.size - 1)
        if file.read(1) != b"\n":
            return None
    return {
        "path": reader.path,
        "reader": reader_identity(reader),
        "size": state.size,
        "content": state.content,
        "rows": reader.rows_seen,
        "skipped": json.dumps(dict(reader.skipped)),
        "first_skipped": json.dumps(reader.first_skipped),
    }
