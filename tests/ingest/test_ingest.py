"""Sources are staged in chunks and swapped in at once, writing only rows that changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zipfit_pipeline.engine.core.store import Store, StoreError
from zipfit_pipeline.engine.ingest import DatasetSpec, IngestTables, RecordReader, ingest_source, stage

SOURCE = DatasetSpec(name="src", path="src.jsonl")


def _write(path: Path, texts: list[str]) -> RecordReader:
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return RecordReader(str(path), id_field="id")


def _stored(store: Store) -> list[tuple[int, str, str]]:
    rows = store.query(
        "SELECT row_index, doc_id, text FROM documents WHERE dataset = 'src' ORDER BY row_index"
    ).to_pylist()
    return [(r["row_index"], r["doc_id"], r["text"]) for r in rows]


def test_a_grown_or_edited_file_writes_only_its_new_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "STAGE_ROWS", 7)  # several chunks
    store = Store(tmp_path / "store.duckdb")
    written: list[int] = []
    commit = IngestTables.commit_staged

    def counting(self: IngestTables, dataset: str, skipped: dict[str, int], file: object = None) -> None:
        written.append(
            self.query("SELECT count(*) AS n FROM staged_documents WHERE text IS NOT NULL").to_pylist()[0]["n"]
        )
        commit(self, dataset, skipped, file)  # type: ignore[arg-type]

    monkeypatch.setattr(IngestTables, "commit_staged", counting)
    texts = [f"def f{i}(): return {i}" for i in range(30)]
    first = ingest_source(store, SOURCE, _write(tmp_path / "src.jsonl", texts), log=lambda _: None)
    assert (written, first.rows, first.documents, first.distinct_texts) == ([30], 30, 30, 30)
    assert _stored(store) == [(i, f"d{i}", t) for i, t in enumerate(texts)]
    assert first.preview == texts[:3]

    again = ingest_source(store, SOURCE, _write(tmp_path / "src.jsonl", texts), log=lambda _: None)
    assert (written[-1], again.digest) == (0, first.digest)  # nothing new: nothing written, same version

    grown = texts + ["print('new')", "x = 1"]
    grown[4] = "def edited(): pass"
    result = ingest_source(store, SOURCE, _write(tmp_path / "src.jsonl", grown), log=lambda _: None)
    assert written[-1] == 3  # the edited row and the two new ones
    assert _stored(store) == [(i, f"d{i}", t) for i, t in enumerate(grown)]
    assert result.documents == 32 and result.digest != first.digest

    ingest_source(store, SOURCE, _write(tmp_path / "src.jsonl", grown[10:]), log=lambda _: None)  # rows move up
    assert _stored(store) == [(i, f"d{i}", t) for i, t in enumerate(grown[10:])]
    assert store.query("SELECT count(*) AS n FROM staged_documents").to_pylist()[0]["n"] == 0


def test_a_file_that_only_grew_is_read_from_where_the_last_ingestion_ended(tmp_path: Path) -> None:
    """Only the appended rows are read; what is stored (rows, skip counts and their first rows, the version) is
    what a whole read gives. A change anywhere before the end reads the whole file again."""
    path = tmp_path / "src.jsonl"
    rows = [json.dumps({"id": f"d{i}", "text": f"def f{i}(): return {i}"}) for i in range(30)]
    rows[7] = '{"id": "d7", "text": '  # malformed
    path.write_text("\n".join(rows) + "\n")
    store, lines = Store(tmp_path / "store.duckdb"), []
    ingest_source(store, SOURCE, RecordReader(str(path), id_field="id"), log=lines.append)

    appended = ['{"id": "d3", "text": "a repeated id"}', "{broken", "", '{"id": "n1", "text": "new one"}']
    with path.open("a") as file:
        file.write("\n".join(appended) + "\n")
    grown = ingest_source(store, SOURCE, RecordReader(str(path), id_field="id"), log=lines.append)
    whole_store = Store(tmp_path / "whole.duckdb")
    whole = ingest_source(whole_store, SOURCE, RecordReader(str(path), id_field="id"), log=lambda _: None)

    assert lines[-1].endswith("read only its 3 new rows")  # the blank line is not a row
    assert _stored(store) == _stored(whole_store) and len(_stored(store)) == 30
    for field in ("rows", "documents", "skipped", "first_skipped", "skip_summary", "digest"):
        assert getattr(grown, field) == getattr(whole, field), field
    assert grown.skipped == {"malformed_json": 2, "duplicate_id": 1}

    path.write_text(path.read_text().replace("return 5", "return 55"))  # an edit in the stored part
    with path.open("a") as file:
        file.write('{"id": "n2", "text": "newer"}\n')
    edited = ingest_source(store, SOURCE, RecordReader(str(path), id_field="id"), log=lines.append)
    assert sum("new rows" in line for line in lines) == 1  # read whole this time
    assert edited.documents == 31 and (5, "d5", "def f5(): return 55") in _stored(store)


def test_an_edit_between_the_prefix_check_and_the_read_makes_a_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored part was checked, then edited before the new rows were read: the edit is not missed."""
    path = tmp_path / "src.jsonl"
    texts = [f"def f{i}(): return {i}" for i in range(10)]
    reader = _write(path, texts)
    store, lines = Store(tmp_path / "store.duckdb"), []
    ingest_source(store, SOURCE, reader, log=lines.append)
    with path.open("a") as file:
        file.write(json.dumps({"id": "d10", "text": "new"}) + "\n")
    checked = stage.grown_from

    def then_edited(*args: object) -> object:
        found = checked(*args)  # type: ignore[arg-type]
        path.write_text(path.read_text().replace('return 3"', 'return 33"'))  # once: the whole read checks again
        return found

    monkeypatch.setattr(stage, "grown_from", then_edited)
    ingest_source(store, SOURCE, RecordReader(str(path), id_field="id"), log=lines.append)
    assert any("changed before its new rows were read: reading it whole" in line for line in lines)
    assert (3, "d3", "def f3(): return 33") in _stored(store) and len(_stored(store)) == 11


def test_a_failure_midway_leaves_the_stored_documents_and_no_staged_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage, "STAGE_ROWS", 5)
    store = Store(tmp_path / "store.duckdb")
    ingest_source(store, SOURCE, _write(tmp_path / "src.jsonl", ["kept 1", "kept 2"]), log=lambda _: None)
    stage_documents, chunks = IngestTables.stage_documents, []

    def failing_third(self: IngestTables, dataset: str, records: list) -> None:
        chunks.append(len(records))
        if len(chunks) == 3:
            raise StoreError("disk full")
        stage_documents(self, dataset, records)

    monkeypatch.setattr(IngestTables, "stage_documents", failing_third)
    with pytest.raises(StoreError, match="disk full"):
        ingest_source(
            store, SOURCE, _write(tmp_path / "src.jsonl", [f"new {i}" for i in range(20)]), log=lambda _: None
        )
    assert [t for _, _, t in _stored(store)] == ["kept 1", "kept 2"]
    assert store.query("SELECT count(*) AS n FROM staged_documents").to_pylist()[0]["n"] == 0
