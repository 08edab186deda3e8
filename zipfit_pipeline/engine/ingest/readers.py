"""Rows of each file format, read one row at a time so that one broken row never costs the whole file.

Every reader returns (rows, columns). A row is a dict, or a `BadRow` with the reason it could not be parsed;
the position in the stream is its row index. `columns` is None for schema-less formats (JSON), whose fields
are checked row by row. Text files are UTF-8 unless a byte-order mark names UTF-16 or UTF-32 (as Excel and
PowerShell exports do); the mark itself is never part of the first row. Bytes that cannot be decoded are kept as
surrogate escapes, so the caller can skip just the rows whose fields contain them.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from zipfit_pipeline.engine.core.input_files import InputError

BATCH_ROWS = 1024
# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
CSV_DELIMITERS = ",;\t|"


@dataclass(frozen=True)
class BadRow:
    reason: str


Row = dict[str, Any] | BadRow
Rows = tuple[Iterator[Row], set[str] | None]


def json_rows(path: Path, start_byte: int = 0) -> Rows:
    """JSON lines (optionally gzipped), or in a `.json` (`.json.gz`) file one JSON array of objects; blank lines are
    not rows. A `.jsonl` file is read a line at a time, never whole; from `start_byte` on, if given (a plain UTF-8
    file's row boundary: the rows appended since it was last read)."""
    if _content_suffix(path) == ".json" and _first_char(path) == "[":
        return _json_array_rows(path), None

    def rows() -> Iterator[Row]:
        with _open_text(path, newline="\n", start_byte=start_byte) as file:
            try:
                for line in file:
                    if line.strip():
                        yield _parse_object(line)
            except (OSError, EOFError) as error:  # a truncated or corrupt .gz
                raise InputError(f"{path}: cannot be read: {error}") from error

    return rows(), None


def _open_text(path: Path, newline: str, start_byte: int = 0) -> io.TextIOWrapper:
    """A text file (gunzipped for `.gz`) in the encoding its byte-order mark names, UTF-8 without one, mark skipped;
    or a plain UTF-8 file from `start_byte` on."""
    if start_byte:
        plain = path.open("rb")
        plain.seek(start_byte)
        return io.TextIOWrapper(plain, encoding="utf-8", errors="surrogateescape", newline=newline)
    binary = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")
    try:
        head = binary.peek(4)[:4]
    except (OSError, EOFError) as error:
        binary.close()
        raise InputError(f"{path}: cannot be read: {error}") from error
    mark, encoding = next(((m, e) for m, e in BYTE_ORDER_MARKS if head.startswith(m)), (b"", "utf-8"))
    binary.read(len(mark))
    return io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline=newline)


def _content_suffix(path: Path) -> str:
    """The extension that says what the bytes are: `.csv` for `d.csv.gz`."""
    suffix = path.suffix.lower()
    return Path(path.stem).suffix.lower() if suffix == ".gz" else suffix


def _first_char(path: Path) -> str:
    with _open_text(path, newline="\n") as file:
        while (char := file.read(1)) and char.isspace():
            pass
    return char


def _parse_object(text: str) -> Row:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return BadRow("malformed_json")
    return value if isinstance(value, dict) else BadRow("not_an_object")


def _json_array_rows(path: Path) -> Iterator[Row]:
    with _open_text(path, newline="\n") as file:
        text = file.read()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from error
    for value in values:
        yield value if isinstance(value, dict) else BadRow("not_an_object")


def csv_rows(path: Path) -> Rows:
    """CSV (or TSV) with a header row; every value is a string, and a short row lacks its last fields.

    The delimiter is the one of `,;<tab>|` that the header line uses most (`,` if none): European spreadsheet
    exports separate with `;`, "Unicode text" exports with tabs."""
    csv.field_size_limit(2**31 - 1)  # the default (128 KiB) would fail a whole file over one long text
    with _open_text(path, newline="") as file:
        header = file.readline()
    delimiter = max(CSV_DELIMITERS, key=header.count) if any(d in header for d in CSV_DELIMITERS) else ","
    file = _open_text(path, newline="")
    reader = csv.DictReader(file, delimiter=delimiter)
    columns = set(reader.fieldnames or [])

    def rows() -> Iterator[Row]:
        with file:
            try:
                yield from reader
            except csv.Error as error:
                raise InputError(f"{path}: row {reader.line_num}: {error}") from error

    return rows(), columns


def parquet_rows(path: Path, fields: list[str]) -> Rows:
    """Parquet, read in batches of the needed columns only.

    A text field may be any of Arrow's string encodings (string, large, view, dictionary-encoded) or binary that
    holds UTF-8 (writers that drop the UTF8 annotation); binary values that are not UTF-8 are kept as surrogate
    escapes, so only their rows are skipped."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot be read as parquet: {error}") from error
    schema = parquet.schema_arrow
    for name in fields:
        if name in schema.names and not _holds_text(schema.field(name).type):
            raise InputError(f"{path}: field {name!r} is {schema.field(name).type}, not a string column")
    columns = [name for name in fields if name in schema.names]
    binary = [name for name in columns if _is_binary(schema.field(name).type)]

    def rows() -> Iterator[Row]:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            for row in batch.to_pylist():
                for name in binary:
                    if isinstance(row[name], bytes):
                        row[name] = row[name].decode("utf-8", errors="surrogateescape")
                yield row

    return rows(), set(schema.names)


def _holds_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _holds_text(kind.value_type)
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind) or _is_binary(kind)
    )


def _is_binary(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_binary(kind.value_type)
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind)


def text_folder_rows(folder: Path, files: list[Path]) -> Rows:
    """One example per file of `files` (the folder's, as `input_files` lists them: regular files only, within its
    bounds), its id the path relative to the folder; bytes that are not UTF-8 are replaced."""
    rows = ({"id": str(p.relative_to(folder)), "text": p.read_bytes().decode("utf-8", errors="replace")} for p in files)
    return rows, {"id", "text"}


def duckdb_rows(path: Path, query: str | None) -> Rows:
    """The rows of the project's own `query` over a DuckDB file, opened read-only without access to other files."""
    import duckdb

    if not query:
        raise InputError(f"{path}: a DuckDB input needs a `query`")
    # The project's own SQL, but still: read-only, and no other file, extension or URL can be reached from it.
    connection = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
    try:
        cursor = connection.execute(query)
    except duckdb.Error as error:
        connection.close()
        raise InputError(f"{path}: the query failed: {error}") from error
    columns = [d[0] for d in cursor.description]

    def rows() -> Iterator[Row]:
        try:
            while batch := cursor.fetchmany(BATCH_ROWS):
                yield from (dict(zip(columns, values)) for values in batch)
        finally:
            connection.close()

    return rows(), set(columns)


def hf_rows(path: str, fmt: str, split: str, cache_dir: str | None) -> Rows:
    """A Hugging Face dataset: a `save_to_disk` folder or a hub id (the hub only when not offline)."""
    import datasets

    datasets.disable_progress_bars()
    try:
        if fmt == "hf_disk":
            loaded = datasets.load_from_disk(path)
            dataset = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            dataset = datasets.load_dataset(path, split=split, cache_dir=cache_dir)
    except (ValueError, OSError, datasets.exceptions.DatasetGenerationError) as error:
        cause = error.__cause__ or error
        raise InputError(f"{path}: cannot be read as {fmt}: {cause}") from error

    def rows() -> Iterator[Row]:  # a batch at a time: row-by-row indexing is far slower
        for batch in dataset.iter(batch_size=BATCH_ROWS):
            names = list(batch)
            for values in zip(*batch.values()):
                yield dict(zip(names, values))

    return rows(), set(dataset.column_names)
