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

    def counting(self: IngestTables, dataset: str, skipped: dict[str, int]) -> None:
        written.append(
            self.query("SELECT count(*) AS n FROM staged_documents WHERE text IS NOT NULL").to_pylist()[0]["n"]
        )
        commit(self, dataset, skipped)

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
