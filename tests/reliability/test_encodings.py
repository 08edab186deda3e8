"""The encodings and schemas real exports have: byte-order marks, UTF-16/32 text, `;` and tab separated values,
upper-case extensions, and every Arrow string encoding a Parquet file can carry. Each reads as the same rows."""

from __future__ import annotations

import codecs
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zipfit_pipeline.engine.ingest.records import RecordReader

ROWS = [{"id": "a", "text": "def f():\n    return 'é'\n"}, {"id": "b", "text": 'naïve, "quoted"; text\twith tabs'}]
EXPECTED = [(0, "a", ROWS[0]["text"]), (1, "b", ROWS[1]["text"])]


def _jsonl() -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS)


def _csv(delimiter: str, line_end: str = "\n") -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", "text"], delimiter=delimiter, lineterminator=line_end)
    writer.writeheader()
    writer.writerows(ROWS)
    return out.getvalue()


def _text_file(name: str, text: str, encoding: str, mark: bytes = b"") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        data = mark + text.encode(encoding)
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    return write


def _parquet(column: pa.Array) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "d.parquet"
        pq.write_table(pa.table({"id": pa.array([r["id"] for r in ROWS]), "text": column}), path)
        return path

    return write


TEXTS = [r["text"] for r in ROWS]
CASES: dict[str, Callable[[Path], Path]] = {
    "JSONL": _text_file("d.jsonl", _jsonl(), "utf-8"),
    "JSONL with a UTF-8 byte-order mark": _text_file("d.jsonl", _jsonl(), "utf-8", codecs.BOM_UTF8),
    "JSONL in UTF-16 LE (PowerShell `>`)": _text_file("d.jsonl", _jsonl(), "utf-16-le", codecs.BOM_UTF16_LE),
    "JSONL in UTF-16 BE": _text_file("d.jsonl", _jsonl(), "utf-16-be", codecs.BOM_UTF16_BE),
    "JSONL in UTF-32 LE": _text_file("d.jsonl", _jsonl(), "utf-32-le", codecs.BOM_UTF32_LE),
    "JSONL with CRLF line ends": _text_file("d.jsonl", _jsonl().replace("\n", "\r\n"), "utf-8"),
    "gzipped JSONL with a byte-order mark": _text_file("d.jsonl.gz", _jsonl(), "utf-8", codecs.BOM_UTF8),
    "NDJSON, upper-case extension": _text_file("D.NDJSON", _jsonl(), "utf-8"),
    "JSON array with a UTF-8 byte-order mark": _text_file("d.json", json.dumps(ROWS), "utf-8", codecs.BOM_UTF8),
    "JSON array in UTF-16": _text_file("d.json", json.dumps(ROWS), "utf-16-le", codecs.BOM_UTF16_LE),
    "CSV with a UTF-8 byte-order mark (Excel)": _text_file("d.csv", _csv(","), "utf-8", codecs.BOM_UTF8),
    "CSV with CRLF line ends": _text_file("d.csv", _csv(",", "\r\n"), "utf-8"),
    "CSV separated by semicolons": _text_file("d.csv", _csv(";"), "utf-8"),
    "TSV in UTF-16 (Excel unicode text)": _text_file("d.tsv", _csv("\t"), "utf-16-le", codecs.BOM_UTF16_LE),
    "CSV, upper-case extension": _text_file("D.CSV", _csv(","), "utf-8"),
    "gzipped CSV with a byte-order mark": _text_file("d.csv.gz", _csv(","), "utf-8", codecs.BOM_UTF8),
    "gzipped JSON array": _text_file("d.json.gz", json.dumps(ROWS), "utf-8"),
    "Parquet string": _parquet(pa.array(TEXTS, pa.string())),
    "Parquet large_string": _parquet(pa.array(TEXTS, pa.large_string())),
    "Parquet string_view": _parquet(pa.array(TEXTS, pa.string_view())),
    "Parquet dictionary-encoded string": _parquet(pa.array(TEXTS, pa.string()).dictionary_encode()),
    "Parquet dictionary of large_string": _parquet(pa.array(TEXTS, pa.large_string()).dictionary_encode()),
    "Parquet binary holding UTF-8": _parquet(pa.array([t.encode() for t in TEXTS], pa.binary())),
    "Parquet large_binary holding UTF-8": _parquet(pa.array([t.encode() for t in TEXTS], pa.large_binary())),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_encoding_reads_as_the_same_rows(case: str, tmp_path: Path) -> None:
    path = CASES[case](tmp_path)
    reader = RecordReader(str(path), id_field="id")
    assert [(r.row_index, r.doc_id, r.text) for r in reader] == EXPECTED
    assert not reader.skipped


def test_binary_parquet_text_that_is_not_utf8_skips_only_its_row(tmp_path: Path) -> None:
    path = _parquet(pa.array([TEXTS[0].encode(), b"caf\xe9"], pa.binary()))(tmp_path)
    reader = RecordReader(str(path), id_field="id")
    assert [r.doc_id for r in reader] == ["a"]
    assert dict(reader.skipped) == {"invalid_utf8": 1}


def test_a_parquet_column_of_numbers_is_still_refused_as_text(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["a"], "text": pa.array([1], pa.int64())}), path)
    with pytest.raises(ValueError, match=r"field 'text' is int64, not a string column"):
        list(RecordReader(str(path), id_field="id"))
