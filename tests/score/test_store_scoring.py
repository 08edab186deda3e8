"""Scores in DuckDB: computed once per distinct text, reused on rerun, only new texts scored after additions."""

import zlib
from pathlib import Path

import duckdb
import numpy as np
import pytest
from stores import score, zipfit_set

from zipfit_pipeline.engine import ENGINE_VERSION
from zipfit_pipeline.engine.core.store import Store, StoreError
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record
from zipfit_pipeline.engine.score import ScoreTables, pool_scores, target_set_hash
from zipfit_pipeline.engine.score.alignment import alignment_scores, golden_mismatches
from zipfit_pipeline.engine.score.compression import compressor_build
from zipfit_pipeline.engine.score.native import score_build
from zipfit_pipeline.engine.score.scorer import AlignmentScorer
from zipfit_pipeline.engine.select import SelectTables

TARGETS = ["def add(a, b):\n    return a + b\n", "The quick brown fox jumps over the lazy dog."]


def _records(texts: list[str]) -> list[Record]:
    return [Record(i, str(i), t) for i, t in enumerate(texts)]


def _stored_scores(store: Store) -> dict[str, float]:
    rows = store.query("SELECT content_hash, score FROM scores").to_pylist()
    return {r["content_hash"]: r["score"] for r in rows}


def test_incremental_scoring_pays_only_for_new_texts(tmp_path: Path) -> None:
    store = Store(tmp_path / "z.duckdb")
    texts = [f"def f{i}(x):\n    return x + {i}\n" for i in range(40)]
    texts += texts[:5]  # duplicates in the pool are scored once
    IngestTables(store).replace_documents("code", _records(texts), {})

    first = score(store, "code", TARGETS, "gzip", 9, chunk_size=7, workers=1)
    assert (first.distinct_texts, first.reused, first.scored) == (40, 0, 40)
    assert store.query("SELECT count(*) AS n FROM scores").to_pylist()[0]["n"] == 40

    again = score(store, "code", TARGETS, "gzip", 9, chunk_size=7, workers=1)
    assert (again.reused, again.scored) == (40, 0)

    IngestTables(store).replace_documents("code", _records(texts + ["print('new')", "x = 1"]), {})
    grown = score(store, "code", TARGETS, "gzip", 9, chunk_size=7, workers=2)
    assert (grown.reused, grown.scored) == (40, 2)

    pool = pool_scores(store, ["code"], zipfit_set(TARGETS))  # each text once, first document first
    assert pool.column("row_index").to_pylist() == list(range(40)) + [45, 46]
    expected = alignment_scores(
        IngestTables(store).texts_of(pool.column("content_hash").combine_chunks()), TARGETS, "gzip", 9
    )
    np.testing.assert_array_equal(np.asarray(pool.column("score").to_pylist()), expected)


def test_other_compressor_is_a_separate_score_set(tmp_path: Path) -> None:
    store = Store(tmp_path / "z.duckdb")
    IngestTables(store).replace_documents("code", _records(["a = 1", "b = 2"]), {})
    score(store, "code", TARGETS, "gzip", 9)
    report = score(store, "code", TARGETS, "lz4", 0)
    assert report.scored == 2
    sets = store.query("SELECT compressor, level, build FROM score_sets ORDER BY compressor").to_pylist()
    assert [(s["compressor"], s["level"], s["build"]) for s in sets] == [
        ("gzip", 9, score_build("gzip", 9)),  # the build and, where the extension computed them, its own
        ("lz4", 0, score_build("lz4", 0)),
    ]
    assert [s["build"].split("+")[0] for s in sets] == [
        f"zlib-{zlib.ZLIB_RUNTIME_VERSION}",
        compressor_build("lz4"),
    ]


def test_scores_of_another_library_build_are_never_mixed_in(tmp_path: Path) -> None:
    """Sizes depend on the zlib build: scores stored by another build (an upgraded interpreter, zlib-ng) are kept
    apart; this build scores every text again and the pool reads only its own."""
    store = Store(tmp_path / "z.duckdb")
    IngestTables(store).replace_documents("code", _records(["a = 1", "b = 2"]), {})
    target_hash = target_set_hash(TARGETS)
    with ScoreTables(store).transaction() as connection:
        connection.execute(
            "INSERT INTO scores SELECT content_hash, ?, 'gzip', 9, ?, 'zlib-ng-2.2.1', 0.5 FROM documents",
            [target_hash, ENGINE_VERSION],
        )
    report = score(store, "code", TARGETS, "gzip", 9)
    assert (report.reused, report.scored) == (0, 2)
    pool = pool_scores(store, ["code"], zipfit_set(TARGETS))
    assert pool.column("score").to_pylist() == alignment_scores(["a = 1", "b = 2"], TARGETS, "gzip", 9).tolist()
    assert store.query("SELECT count(*) AS n FROM scores").to_pylist()[0]["n"] == 4


def test_a_worker_with_another_build_refuses_to_score() -> None:
    with pytest.raises(RuntimeError, match="this worker compresses with zlib-.*, not zlib-0.0.1"):
        AlignmentScorer(TARGETS, "gzip", 9, build="zlib-0.0.1")


def test_this_machines_compressors_reproduce_the_golden_values() -> None:
    assert golden_mismatches("gzip") == golden_mismatches("lz4") == golden_mismatches("zstd") == []


def test_a_store_of_an_older_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:  # the first schema: no store_info table
        connection.execute("CREATE TABLE documents (dataset VARCHAR, row_index BIGINT, text VARCHAR)")
    with pytest.raises(
        StoreError, match=r"old\.duckdb has schema version 1, this zipfit-pipeline reads version 2: move"
    ):
        Store(path).query("SELECT 1")


def test_reingest_replaces_a_dataset_atomically(tmp_path: Path) -> None:
    store = Store(tmp_path / "z.duckdb")
    IngestTables(store).replace_documents("a", _records(["one", "two"]), {"empty_text": 1})
    IngestTables(store).replace_documents("b", _records(["three"]), {})
    IngestTables(store).replace_documents("a", _records(["uno"]), {})
    rows = store.query("SELECT dataset, text FROM documents ORDER BY dataset, row_index").to_pylist()
    assert [(r["dataset"], r["text"]) for r in rows] == [("a", "uno"), ("b", "three")]
    assert store.query("SELECT count(*) AS n FROM ingest_skips").to_pylist()[0]["n"] == 0


def test_a_long_run_logs_a_bounded_number_of_progress_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many chunks or batches a run has, its log has at most 20 lines (scoring) or 10 and a summary (per-text
    work), each with the rate and the time left; the per-chunk record is in the store."""
    from zipfit_pipeline.engine.select import per_text

    store = Store(tmp_path / "z.duckdb")
    texts = [f"x{i} = {i} * {i}" for i in range(240)]  # 60 chunks and 48 batches: more than the lines allowed
    IngestTables(store).replace_documents("code", _records(texts), {})
    lines: list[str] = []
    score(store, "code", TARGETS, "gzip", 9, chunk_size=4, workers=1, progress=lines.append, commit_seconds=0)
    assert 5 <= len(lines) <= 20 and all("pairs/s, ETA" in line for line in lines)
    assert lines[-1].startswith("code: 240/240 texts (480 pairs) scored")

    monkeypatch.setattr(per_text, "READ_BATCH", 5)
    lines = []
    hashes = SelectTables(store).unstored(
        "token_counts", ["length"], store.query("SELECT content_hash FROM documents").column(0).combine_chunks()
    )
    per_text.fill_missing(
        store,
        "token_counts",
        ["length"],
        hashes,
        lambda batch: [len(t) for t in batch],
        lambda batch, n: SelectTables(store).insert_token_counts("length", batch, n),
        "lengths",
        lines.append,
    )
    assert 5 <= len(lines) <= 11 and all("texts/s, ETA" in line for line in lines[:-1])
    assert lines[-1] == "lengths: 0 stored, 240 computed now"
