"""Read examples from JSONL, JSON, CSV, Parquet, a folder of text files, a Hugging Face dataset
(hub id or `save_to_disk` folder) or a DuckDB query, as (row index, id, text) records.

A row that cannot give a text is skipped and counted by reason; an input that cannot be used at all
(missing file, unknown field, unreadable format) raises `InputError` naming the file and field.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zipfit_pipeline.engine.core.input_files import column_names, input_files
from zipfit_pipeline.engine.ingest.readers import (
    BadRow,
    InputError,
    Rows,
    csv_rows,
    duckdb_rows,
    hf_rows,
    json_rows,
    parquet_rows,
    text_folder_rows,
)

# By extension, whatever its case (`.JSONL` is JSON lines too).
FILE_FORMATS = {
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".gz": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
}
LOCAL_FORMATS = {"json", "csv", "parquet", "text_folder", "duckdb", "hf_disk"}


@dataclass(frozen=True)
class Record:
    row_index: int
    doc_id: str | None
    text: str


def equal_chunks(text: str, max_chars: int) -> list[str]:
    """`text` cut into the fewest equal-size pieces (±1 character) of at most `max_chars` characters."""
    pieces = max(1, math.ceil(len(text) / max_chars))
    bounds = [round(i * len(text) / pieces) for i in range(pieces + 1)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def chunk_records(records: Iterable[Record], max_chars: int) -> Iterator[Record]:
    """Split long texts into equal chunks, each a document of its own (`<id>#<k>`), numbered in order.

    A remedy for ZIP-FIT's length bias: short texts compress together better and score highest, so long
    sources compete with short ones only once they are cut to comparable sizes.
    """
    index = 0
    for record in records:
        for k, piece in enumerate(equal_chunks(record.text, max_chars)):
            doc_id = f"{record.doc_id if record.doc_id is not None else record.row_index}#{k}"
            yield Record(index, doc_id, piece)
            index += 1


def template_fields(template: str) -> list[str]:
    """The fields a template reads. Only plain names: `{a.b}` or `{a[0]}` would reach into the values."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    bad = [name for name in names if not name or name.isdigit() or any(c in name for c in ".[]")]
    if bad:
        raise InputError(f"template {template!r}: {{{bad[0]}}} is not a field name (use {{field}})")
    return names


@dataclass
class RecordReader:
    """Iterates the usable records of one input; `skipped` counts the rows left out, by reason.

    A row is skipped when its text is missing, not a string, empty, longer than `max_chars`, not valid
    UTF-8 or not valid JSON, or when its id repeats an earlier row's. `first_skipped` keeps the first row
    index of each reason, so that a user can find the rows to fix.
    """

    path: str
    text_field: str = "text"
    template: str | None = None
    id_field: str | None = None
    format: str | None = None
    query: str | None = None
    split: str = "train"
    cache_dir: str | None = None
    require_id: bool = True  # False: an absent id field gives records without ids instead of an error
    max_chars: int | None = None
    start_byte: int = 0  # a plain JSON-lines file only: read from this row boundary on (its rows appended since)
    first_row: int = 0  # the row index of the first row read (the rows before start_byte)
    rows_seen: int = 0  # rows of the input read so far, bad ones included: after a whole read, its row count
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Record]:
        text_fields = template_fields(self.template) if self.template else [self.text_field]
        rows, columns = self._open(text_fields)
        id_field = self.id_field if columns is None or self.id_field in columns or self.require_id else None
        needed = text_fields + ([id_field] if id_field and self.require_id else [])
        if columns is not None:
            absent = [name for name in needed if name not in columns]
            if absent:
                raise InputError(f"{self.path}: field {absent[0]!r} not found (columns: {column_names(columns)})")
        found: Counter[str] = Counter()
        seen_ids: set[str] = set()
        objects, self.rows_seen = 0, self.first_row
        for row_index, row in enumerate(rows, start=self.first_row):
            self.rows_seen = row_index + 1
            if isinstance(row, BadRow):
                self._skip(row.reason, row_index)
                continue
            objects += 1
            found.update(name for name in needed if name in row)
            doc_id = _as_id(row.get(id_field)) if id_field else None
            text, reason = self._text(row, text_fields, doc_id, seen_ids)
            if text is None:
                self._skip(reason, row_index)
                continue
            if doc_id is not None:
                seen_ids.add(doc_id)
            yield Record(row_index, doc_id, text)
        if columns is None:
            self._check_fields_found(needed, found, objects)

    def skip_summary(self) -> str:
        """`3 malformed_json (first at row 7), 1 empty_text (first at row 2)`, or `none`."""
        parts = [
            f"{n} {reason} (first at row {self.first_skipped[reason]})" for reason, n in sorted(self.skipped.items())
        ]
        return ", ".join(parts) or "none"

    def _skip(self, reason: str, row_index: int) -> None:
        self.skipped[reason] += 1
        self.first_skipped.setdefault(reason, row_index)

    def _text(
        self, row: Mapping[str, Any], text_fields: list[str], doc_id: str | None, seen_ids: set[str]
    ) -> tuple[str | None, str]:
        """The row's text, or None and the reason it has none."""
        values = {name: row.get(name) for name in text_fields}
        if any(v is None for v in values.values()):
            return None, "missing_text"
        if any(not isinstance(v, str) for v in values.values()):
            return None, "non_string_text"
        text = self.template.format_map(values) if self.template else str(values[self.text_field])
        if not text.strip():
            return None, "empty_text"
        if self.require_id and self.id_field and doc_id is None:
            return None, "missing_id"
        if self.max_chars is not None and len(text) > self.max_chars:
            return None, "too_long"
        for value in (text, doc_id or ""):
            if reason := _encoding_problem(value):
                return None, reason
        if doc_id is not None and doc_id in seen_ids:
            return None, "duplicate_id"
        return text, ""

    def _check_fields_found(self, needed: list[str], found: Counter[str], objects: int) -> None:
        """Schema-less rows are checked as they come: a field that no row has is a mistake, not bad rows."""
        absent = [name for name in needed if not found[name]]
        if objects and absent:
            raise InputError(f"{self.path}: field {absent[0]!r} is in none of the {objects} rows")

    def _open(self, text_fields: list[str]) -> Rows:
        fmt = self.format or detect_format(self.path)
        path = Path(self.path)
        # A regular file, or a folder of them (never a FIFO, a device or a system file), checked before it is opened.
        files = input_files(path) if fmt in LOCAL_FORMATS else []
        if fmt == "json":
            return json_rows(path, self.start_byte)
        if fmt == "csv":
            return csv_rows(path)
        if fmt == "parquet":
            return parquet_rows(path, text_fields + ([self.id_field] if self.id_field else []))
        if fmt == "duckdb":
            return duckdb_rows(path, self.query)
        if fmt == "text_folder":
            return text_folder_rows(path, files)
        return hf_rows(self.path, fmt, self.split, self.cache_dir)


def _encoding_problem(value: str) -> str:
    """`invalid_utf8` for bytes the file could not decode (kept as surrogate escapes), `lone_surrogate` for
    a JSON escape such as \\ud800 that no UTF-8 text can hold, or '' if the value can be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid_utf8" if any("\udc80" <= c <= "\udcff" for c in value) else "lone_surrogate"
    return ""


def _as_id(value: Any) -> str | None:
    return None if value is None else str(value)


def detect_format(path: str) -> str:
    """Format from the path: a file's extension, a folder's contents, or else a hub dataset id."""
    p = Path(path)
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists() or (p / "dataset_dict.json").exists():
            return "hf_disk"
        return "text_folder"
    suffix = p.suffix.lower()
    if suffix == ".gz":  # `.jsonl.gz`, `.csv.gz`: what the file holds once gunzipped (JSON lines if unsaid)
        suffix = Path(p.stem).suffix.lower() if Path(p.stem).suffix.lower() in FILE_FORMATS else ".jsonl"
    if suffix in (".duckdb", ".db"):
        return "duckdb"
    if suffix in FILE_FORMATS:
        return FILE_FORMATS[suffix]  # a missing file is reported when it is opened, whoever chose the format
    if p.exists():
        raise InputError(f"{path}: cannot tell the format from the extension; set `format`")
    if "/" in path and not path.startswith((".", "/")) and path.count("/") == 1:
        return "hub"
    raise InputError(f"{path}: file not found")
