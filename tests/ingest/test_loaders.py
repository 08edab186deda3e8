"""Every input kind through the same reader (bad rows and unusable inputs: tests/reliability/test_bad_inputs.py)."""

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from zipfit_pipeline.engine.ingest.records import Record, RecordReader, chunk_records, equal_chunks

ROWS = [
    {"id": "a", "text": "first text", "title": "T1"},
    {"id": "b", "text": "", "title": "T2"},
    {"id": "c", "text": None, "title": "T3"},
    {"id": "d", "text": "   \n", "title": "T4"},
    {"id": "e", "text": "fifth text", "title": "T5"},
]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_skips_bad_rows_by_reason(tmp_path: Path) -> None:
    reader = RecordReader(str(_jsonl(tmp_path / "d.jsonl", ROWS)), id_field="id")
    records = list(reader)
    assert [(r.row_index, r.doc_id, r.text) for r in records] == [(0, "a", "first text"), (4, "e", "fifth text")]
    assert dict(reader.skipped) == {"empty_text": 2, "missing_text": 1}


def test_template_over_fields(tmp_path: Path) -> None:
    reader = RecordReader(str(_jsonl(tmp_path / "d.jsonl", ROWS[:1])), template="{title}: {text}")
    assert [r.text for r in reader] == ["T1: first text"]


def test_parquet_and_csv(tmp_path: Path) -> None:
    table = pa.table({"id": ["x", "y"], "body": ["alpha", "beta"]})
    pq.write_table(table, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("id,body\nx,alpha\ny,beta\n", encoding="utf-8")
    for name in ("d.parquet", "d.csv"):
        records = list(RecordReader(str(tmp_path / name), text_field="body", id_field="id"))
        assert [(r.doc_id, r.text) for r in records] == [("x", "alpha"), ("y", "beta")]


def test_text_folder_one_document_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("one", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("two", encoding="utf-8")
    records = list(RecordReader(str(folder), id_field="id"))
    assert [(r.doc_id, r.text) for r in records] == [("a.txt", "one"), ("sub/b.txt", "two")]


def test_hugging_face_save_to_disk_folder(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"text": ["hello", "world"]}).save_to_disk(str(tmp_path / "hf"))
    assert [r.text for r in RecordReader(str(tmp_path / "hf"))] == ["hello", "world"]


def test_duckdb_query(tmp_path: Path) -> None:
    db = tmp_path / "corpus.duckdb"
    with duckdb.connect(str(db)) as connection:
        connection.execute("CREATE TABLE docs AS SELECT * FROM (VALUES ('p', 'ab'), ('q', 'cd')) t(id, text)")
    records = list(RecordReader(str(db), query="SELECT id, text FROM docs ORDER BY id", id_field="id"))
    assert [(r.doc_id, r.text) for r in records] == [("p", "ab"), ("q", "cd")]


def test_long_texts_split_into_equal_chunks_numbered_in_order() -> None:
    assert equal_chunks("abcdefghij", 4) == ["abc", "defg", "hij"]  # 3 pieces of 3-4, never more than 4
    assert equal_chunks("short", 10) == ["short"]
    chunks = list(chunk_records([Record(0, "a", "x" * 25), Record(1, None, "yy")], 10))
    assert [(c.row_index, c.doc_id, len(c.text)) for c in chunks] == [
        (0, "a#0", 8),
        (1, "a#1", 9),
        (2, "a#2", 8),
        (3, "1#0", 2),
    ]
    assert "".join(c.text for c in chunks[:3]) == "x" * 25
