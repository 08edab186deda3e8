"""Read examples from JSONL, JSON, CSV, Parquet, a folder of text files, a Hugging Face dataset
(hub id or `save_to_disk` folder) or a DuckDB query, as (row index, id, text) records.

A row that cannot give a text is skipped and counted by reason; an input that cannot be used at all
(missing file, unknown field, unreadable format) raises `InputError` naming the file and field.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".gz": "json", ".csv": "csv", ".parquet": "parquet"}


class InputError(ValueError):
    """An input that cannot be used at all; the message names the file, row and field."""


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


def content_hash(text: str) -> str:
    """Key of a text everywhere in the store: equal texts share scores whatever dataset they come from."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def set_hash(hashes: list[str]) -> str:
    """Key of an ordered set of texts (a target set): changes when any member or the order changes."""
    return hashlib.blake2b("\n".join(hashes).encode("ascii"), digest_size=16).hexdigest()


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@dataclass
class RecordReader:
    """Iterates the usable records of one input; `skipped` counts the rows left out, by reason."""

    path: str
    text_field: str = "text"
    template: str | None = None
    id_field: str | None = None
    format: str | None = None
    query: str | None = None
    split: str = "train"
    cache_dir: str | None = None
    require_id: bool = True  # False: an absent id field gives records without ids instead of an error
    skipped: Counter[str] = field(default_factory=Counter)

    def __iter__(self) -> Iterator[Record]:
        rows, columns = self._open()
        needed = template_fields(self.template) if self.template else [self.text_field]
        id_field = self.id_field if self.id_field in columns or self.require_id else None
        if id_field:
            needed.append(id_field)
        absent = [name for name in needed if name not in columns]
        if absent:
            raise InputError(f"{self.path}: field {absent[0]!r} not found (columns: {', '.join(sorted(columns))})")
        for row_index, row in enumerate(rows):
            text, skip_reason = self._text(row)
            if text is None:
                self.skipped[skip_reason] += 1
            else:
                yield Record(row_index, _as_id(row.get(id_field)) if id_field else None, text)

    def _text(self, row: Mapping[str, Any]) -> tuple[str | None, str]:
        """The row's text, or None and the reason it has none."""
        values = {name: row.get(name) for name in (template_fields(self.template) if self.template else [self.text_field])}
        if any(v is None for v in values.values()):
            return None, "missing_text"
        if any(not isinstance(v, str) for v in values.values()):
            return None, "non_string_text"
        text = self.template.format_map(values) if self.template else values[self.text_field]
        if not text.strip():
            return None, "empty_text"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None, "unencodable_text"
        return text, ""

    def _open(self) -> tuple[Iterator[Mapping[str, Any]], set[str]]:
        fmt = self.format or detect_format(self.path)
        if fmt == "duckdb":
            return _duckdb_rows(self.path, self.query)
        if fmt == "text_folder":
            return _text_folder_rows(Path(self.path))
        dataset = _hf_dataset(self.path, fmt, self.split, self.cache_dir)
        return _batched_rows(dataset), set(dataset.column_names)


def _as_id(value: Any) -> str | None:
    return None if value is None else str(value)


def detect_format(path: str) -> str:
    """Format from the path: a file's extension, a folder's contents, or else a hub dataset id."""
    p = Path(path)
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists() or (p / "dataset_dict.json").exists():
            return "hf_disk"
        return "text_folder"
    if p.suffix in (".duckdb", ".db"):
        return "duckdb"
    if p.suffix in FILE_FORMATS:
        if not p.exists():
            raise InputError(f"{path}: file not found")
        return FILE_FORMATS[p.suffix]
    if p.exists():
        raise InputError(f"{path}: cannot tell the format from the extension; set `format`")
    if "/" in path and not path.startswith((".", "/")) and path.count("/") == 1:
        return "hub"
    raise InputError(f"{path}: file not found")


def _hf_dataset(path: str, fmt: str, split: str, cache_dir: str | None) -> Any:
    import datasets

    datasets.disable_progress_bars()
    try:
        if fmt == "hf_disk":
            loaded = datasets.load_from_disk(path)
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        if fmt == "hub":
            return datasets.load_dataset(path, split=split, cache_dir=cache_dir)
        return datasets.load_dataset(fmt, data_files=path, split="train", cache_dir=cache_dir)
    except (ValueError, OSError, datasets.exceptions.DatasetGenerationError) as error:
        cause = error.__cause__ or error
        raise InputError(f"{path}: cannot be read as {fmt}: {cause}") from error


def _batched_rows(dataset: Any, batch_size: int = 1024) -> Iterator[Mapping[str, Any]]:
    """Rows of a Hugging Face dataset, decoded a batch at a time (row-by-row indexing is far slower)."""
    for batch in dataset.iter(batch_size=batch_size):
        names = list(batch)
        for values in zip(*batch.values()):
            yield dict(zip(names, values))


def _text_folder_rows(folder: Path) -> tuple[Iterator[Mapping[str, Any]], set[str]]:
    """One example per file, its id the path relative to the folder; bytes that are not UTF-8 are replaced."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    rows = ({"id": str(p.relative_to(folder)), "text": p.read_bytes().decode("utf-8", errors="replace")} for p in files)
    return rows, {"id", "text"}


def _duckdb_rows(path: str, query: str | None) -> tuple[Iterator[Mapping[str, Any]], set[str]]:
    import duckdb

    if not query:
        raise InputError(f"{path}: a DuckDB input needs a `query`")
    if not Path(path).exists():
        raise InputError(f"{path}: file not found")
    connection = duckdb.connect(path, read_only=True)
    cursor = connection.execute(query)
    columns = [d[0] for d in cursor.description]

    def rows() -> Iterator[Mapping[str, Any]]:
        try:
            while batch := cursor.fetchmany(1024):
                yield from (dict(zip(columns, values)) for values in batch)
        finally:
            connection.close()

    return rows(), set(columns)
