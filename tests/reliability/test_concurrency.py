"""Two writers on one DuckDB file at once: both succeed and the store stays consistent.

DuckDB takes one writing process per file. Through Dagster, the `duckdb_writer` pool (limit 1, from the
project's dagster.yaml) normally queues the second scoring step until the first has finished. Under load,
Dagster's SQLite storage once let both steps start within 60 ms, neither blocked, so correctness
rests on the store: a writer waits for the other process's lock (up to five minutes) instead of failing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from projects import materialize_command

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.evaluate import EvalTables, Measured
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record
from zipfit_pipeline.engine.train import TrainTables
from zipfit_pipeline.orchestration.asset_keys import ALIGNMENT_SCORES, SOURCE_DOCUMENTS, TARGET_DOCUMENTS
from zipfit_pipeline.orchestration.dagster_internals import pool_slots
from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.instance import INSTANCE_SETTINGS
from zipfit_pipeline.orchestration.materialize_all import materialize_all

pytestmark = pytest.mark.slow

PARTITIONS = ("python_stdlib|humaneval", "english_prose|humaneval")


def test_two_score_partitions_launched_at_once_both_succeed(project_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_SETTINGS, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialize_all(
            build_definitions(str(project_file)),
            instance,
            log=lambda _: None,
            stages=(SOURCE_DOCUMENTS, TARGET_DOCUMENTS),
        )

    env = {**os.environ, "DAGSTER_HOME": str(home), "ZIPFIT_CONFIG": str(project_file)}
    launched = [
        subprocess.Popen(
            materialize_command(ALIGNMENT_SCORES, partition),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for partition in PARTITIONS
    ]
    outputs = [p.communicate(timeout=600)[0] for p in launched]
    for process, output in zip(launched, outputs):
        assert process.returncode == 0, output[-3000:]

    config = load_project(project_file)
    store = Store(config.resolve(config.store))
    counts = store.query(
        """SELECT count(DISTINCT d.content_hash) AS texts, count(DISTINCT s.content_hash) AS scored
           FROM documents d LEFT JOIN scores s USING (content_hash)
           WHERE d.dataset IN ('python_stdlib', 'english_prose')"""
    ).to_pylist()[0]
    assert counts["texts"] == counts["scored"] > 0

    scoring_runs = store.query("SELECT dataset, count(*) AS n FROM scoring_runs GROUP BY dataset ORDER BY dataset")
    assert scoring_runs.to_pylist() == [{"dataset": "english_prose", "n": 1}, {"dataset": "python_stdlib", "n": 1}]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition") in PARTITIONS]
        assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(PARTITIONS)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert pool_slots(instance, "duckdb_writer") == 1


WRITER = """
import sys
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables, Record
store, name = Store(sys.argv[1]), sys.argv[2]
for version in range(40):
    records = [Record(i, f"{name}-{i}", f"{name} v{version} text {i}") for i in range(500)]
    IngestTables(store).replace_documents(name, records, {"empty_text": version})
print("done", flush=True)
"""


def test_two_processes_writing_the_same_store_at_once_both_succeed_and_the_store_stays_consistent(
    tmp_path: Path,
) -> None:
    """Without Dagster's pools: each write waits for the other process's transaction, none is lost or mixed."""
    path = tmp_path / "zipfit.duckdb"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name in ("left", "right")
    ]
    outputs = [w.communicate(timeout=600)[0] for w in writers]
    for writer, output in zip(writers, outputs):
        assert writer.returncode == 0 and output.strip().endswith("done"), output[-3000:]
    store = Store(path)
    rows = store.query(
        "SELECT dataset, count(*) AS n, count(DISTINCT row_index) AS distinct_rows, "
        "min(text LIKE '%v39 text%') AS all_last FROM documents GROUP BY dataset ORDER BY dataset"
    )
    assert rows.to_pylist() == [
        {"dataset": name, "n": 500, "distinct_rows": 500, "all_last": True} for name in ("left", "right")
    ]
    skips = store.query("SELECT dataset, n FROM ingest_skips ORDER BY dataset").to_pylist()
    assert skips == [{"dataset": "left", "n": 39}, {"dataset": "right", "n": 39}]


# A scoring run made long: each chunk of 8 texts takes 0.25 s more; it prints one line when under way.
SLOW_SCORING = """
import json, sys, time
from zipfit_pipeline.engine.core.compute import ComputeSettings
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.score import ScoringSettings, score_dataset, score_sets, scorer
score_many = scorer.AlignmentScorer.score_many
def slow(self, texts):
    time.sleep(0.25)
    return score_many(self, texts)
scorer.AlignmentScorer.score_many = slow
store = Store(sys.argv[1])
targets = json.loads(sys.argv[2])
print("scoring", flush=True)
settings = ScoringSettings(chunk_size=8)
one_core = ComputeSettings(workers=1)
report = score_dataset(store, "code", score_sets(targets, settings)[0], settings, lambda _: None, compute=one_core)
print("scored", report.scored, flush=True)
"""


def test_a_fine_tune_and_an_eval_record_their_results_while_a_long_scoring_run_goes_on(
    tmp_path: Path, demo_files: dict
) -> None:
    """Scoring holds the store only while it reads a batch of texts or commits scores: a fine-tune that ends during a
    multi-hour scoring run records its result at once instead of waiting for the run (and failing after 5 min)."""
    path = tmp_path / "zipfit.duckdb"
    store = Store(path, lock_wait=10.0)  # far less than the scoring run lasts
    rows = [json.loads(line) for line in demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()[:400]]
    IngestTables(store).replace_documents("code", [Record(i, r["id"], r["text"]) for i, r in enumerate(rows)], {})
    targets = [
        json.loads(line)["prompt"] for line in demo_files["humaneval"].read_text(encoding="utf-8").splitlines()[:10]
    ]
    scoring = subprocess.Popen(
        [sys.executable, "-c", SLOW_SCORING, str(path), json.dumps(targets)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert scoring.stdout is not None and scoring.stdout.readline().strip() == "scoring"
        time.sleep(3)  # well into the run (50 chunks of 0.25 s and more)
        waited = _record_a_fine_tune_and_its_eval(store)
        assert scoring.poll() is None, "the scoring run ended before the writes: make it longer"
        scored_meanwhile = store.query("SELECT count(*) AS n FROM scores").to_pylist()[0]["n"]
    finally:
        output = scoring.communicate(timeout=300)[0]
    assert scoring.returncode == 0, output[-3000:]
    assert waited < 5.0, f"the writes waited {waited:.1f} s for the scoring run"
    assert 0 < scored_meanwhile < 400  # committed in between, while it went on
    assert TrainTables(store).training_run(KEY)["run_id"] == "r1"
    assert store.query("SELECT test_loss FROM eval_losses").to_pylist() == [{"test_loss": 2.4}]
    distinct = store.query("SELECT count(DISTINCT content_hash) AS n FROM documents").to_pylist()[0]["n"]
    assert store.query("SELECT count(*) AS n FROM scores").to_pylist()[0]["n"] == distinct


KEY = RunKey("m", "t", "zipfit", 1000, 0)


def _record_a_fine_tune_and_its_eval(store: Store) -> float:
    """What a fine-tune and its eval write when they finish; returns the seconds the writes took."""
    started = time.monotonic()
    TrainTables(store).record_training(
        KEY,
        {
            "run_id": "r1",
            "selection_version": "v1",
            "checkpoint": "/c",
            "train_tokens": 1000,
            "steps": 4,
            "final_train_loss": 2.5,
            "seconds": 9.0,
            "device": "cpu",
        },
        {"train": [(1000, 2.5)]},
    )
    EvalTables(store).record_eval(KEY, "r1", "v1", 2.4, 500, Measured("test-split", "eval-settings"))
    return time.monotonic() - started


# An ingestion made long: a 3,000-row file read at 1 ms a row, staged 100 rows at a time.
SLOW_INGESTION = """
import sys, time
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import DatasetSpec, records, stage
rows = records.RecordReader.__iter__
def slow(self):
    for record in rows(self):
        time.sleep(0.001)
        yield record
records.RecordReader.__iter__ = slow
stage.STAGE_ROWS = 100
print("ingesting", flush=True)
spec = DatasetSpec(name="big", path=sys.argv[2], id_field="id")
result = stage.ingest_source(Store(sys.argv[1]), spec, records.RecordReader(sys.argv[2], id_field="id"))
print("ingested", result.documents, flush=True)
"""


def test_a_fine_tune_and_an_eval_record_their_results_while_a_big_file_is_ingested(tmp_path: Path) -> None:
    """Ingestion stages a big file in short transactions and swaps it in at the end: other writers go in between,
    and until the swap every reader sees the documents as they were."""
    path, source = tmp_path / "zipfit.duckdb", tmp_path / "big.jsonl"
    store = Store(path, lock_wait=10.0)
    IngestTables(store).replace_documents("big", [Record(i, f"old-{i}", f"old text {i}") for i in range(10)], {})
    source.write_text("".join(json.dumps({"id": f"new-{i}", "text": f"new text {i}"}) + "\n" for i in range(3000)))
    ingestion = subprocess.Popen(
        [sys.executable, "-c", SLOW_INGESTION, str(path), str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert ingestion.stdout is not None and ingestion.stdout.readline().strip() == "ingesting"
        time.sleep(2)  # well into the run (3 s of reading and more)
        waited = _record_a_fine_tune_and_its_eval(store)
        assert ingestion.poll() is None, "the ingestion ended before the writes: make it longer"
        meanwhile = store.query("SELECT min(doc_id) AS first, count(*) AS n FROM documents").to_pylist()[0]
        staged = store.query("SELECT count(*) AS n FROM staged_documents").to_pylist()[0]["n"]
    finally:
        output = ingestion.communicate(timeout=300)[0]
    assert ingestion.returncode == 0 and output.strip().endswith("ingested 3000"), output[-3000:]
    assert waited < 5.0, f"the writes waited {waited:.1f} s for the ingestion"
    assert meanwhile == {"first": "old-0", "n": 10}  # the old version until the whole file was read
    assert 0 < staged < 3000  # staged chunk by chunk, while it went on
    assert TrainTables(store).training_run(KEY)["run_id"] == "r1"
    rows = store.query("SELECT count(*) AS n, min(text) AS first FROM documents").to_pylist()[0]
    assert rows == {"n": 3000, "first": "new text 0"}
    assert store.query("SELECT count(*) AS n FROM staged_documents").to_pylist()[0]["n"] == 0
