"""SIGKILL half-way through ingestion, scoring and fine-tuning: the rerun completes with the result of a run
never interrupted, with no duplicate rows, and no half-written checkpoint is ever taken as complete."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
from projects import SmallProject
from stores import score

from zipfit_pipeline.demo.models import build_tiny_gpt2
from zipfit_pipeline.engine.core.models import load_model_and_tokenizer, save_checkpoint
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record, RecordReader
from zipfit_pipeline.engine.train import TrainTables
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.dagster_internals import runs_holding_slots
from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.recovery import recover_killed_runs

CHUNK = 16


def _prepare(store: Store, demo_files: dict) -> list[str]:
    rows = [json.loads(line) for line in demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()]
    IngestTables(store).replace_documents("code", [Record(i, r["id"], r["text"]) for i, r in enumerate(rows)], {})
    problems = [json.loads(line) for line in demo_files["humaneval"].read_text(encoding="utf-8").splitlines()[:20]]
    return [p["prompt"] + p["canonical_solution"] for p in problems]


def test_sigkill_mid_scoring_then_rerun_gives_uninterrupted_result(demo_files: dict, tmp_path: Path) -> None:
    killed_db, clean_db = Store(tmp_path / "killed.duckdb"), Store(tmp_path / "clean.duckdb")
    targets = _prepare(killed_db, demo_files)
    _prepare(clean_db, demo_files)
    (tmp_path / "targets.json").write_text(json.dumps(targets))

    script = textwrap.dedent(f"""
        import json, time
        from zipfit_pipeline.engine.core.compute import ComputeSettings
        from zipfit_pipeline.engine.core.store import Store
        from zipfit_pipeline.engine.score import ScoreTables, ScoringSettings, score_dataset, score_sets
        targets = json.load(open({str(tmp_path / "targets.json")!r}))
        insert_scores = ScoreTables.insert
        def paced(self, *args):  # a line per commit, paced, so that the parent's kill lands half-way
            insert_scores(self, *args)
            print("committed", flush=True)
            time.sleep(0.05)
        ScoreTables.insert = paced
        settings = ScoringSettings(chunk_size={CHUNK})
        score_dataset(Store({str(killed_db.path)!r}), "code", score_sets(targets, settings)[0], settings,
                      progress=lambda _: None, commit_seconds=0, compute=ComputeSettings(workers=1))
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for _ in range(3):  # three chunks committed, then kill in the middle of the next ones
        assert child.stdout.readline(), "the scoring subprocess ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    committed = killed_db.query("SELECT count(*) AS n FROM scores").to_pylist()[0]["n"]
    distinct = killed_db.query("SELECT count(DISTINCT content_hash) AS n FROM documents").to_pylist()[0]["n"]
    assert 3 * CHUNK <= committed < distinct
    assert committed % CHUNK == 0  # whole chunks only

    resumed = score(killed_db, "code", targets, "gzip", 9, chunk_size=CHUNK, workers=1)
    assert resumed.reused == committed
    assert resumed.reused + resumed.scored == resumed.distinct_texts
    score(clean_db, "code", targets, "gzip", 9, chunk_size=CHUNK, workers=2)

    query = "SELECT content_hash, score FROM scores ORDER BY content_hash"
    assert killed_db.query(query).to_pylist() == clean_db.query(query).to_pylist()
    duplicates = killed_db.query(
        "SELECT count(*) - count(DISTINCT (content_hash, target_hash, compressor, level, engine_version)) AS n "
        "FROM scores"
    )
    assert duplicates.to_pylist()[0]["n"] == 0


def _complete(run: subprocess.Popen[str]) -> None:
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output[-3000:]


def _kill_group(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _wait_for_staged_rows(project: SmallProject, run: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Until the run has staged rows of the source (it reads in chunks, each staged in a short transaction)."""
    deadline = time.monotonic() + timeout
    store = project.store()
    while not store.query("SELECT count(*) AS n FROM staged_documents WHERE dataset = 'src'").column("n")[0].as_py():
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never staged a row"
        time.sleep(0.02)


def _recover_the_killed_run(project: SmallProject, through_sensor: bool = False) -> None:
    """Dagster still shows the killed run as started, holding its pool slot, until `zipfit recover` (or the
    `killed_runs` sensor) marks it failed and frees the slot; else the rerun would wait for the slot forever."""
    killed = project.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert len(killed) == 1
    assert runs_holding_slots(project.instance) == {killed[0].run_id}
    if through_sensor:
        sensor = build_definitions(str(project.config_file)).resolve_sensor_def("killed_runs")
        with dg.build_sensor_context(instance=project.instance) as context:
            report = sensor(context).skip_message
    else:
        report = project.recover()
    assert f"run {killed[0].run_id} was killed: marked failed" in report
    assert project.instance.get_run_by_id(killed[0].run_id).status == dg.DagsterRunStatus.FAILURE
    assert not runs_holding_slots(project.instance)


def test_sigkill_mid_ingestion_keeps_the_old_documents_and_the_rerun_stores_the_new(
    small_project: SmallProject,
) -> None:
    assert small_project.ingest_source().success
    before = small_project.stored("documents")
    new_rows = [json.loads(line) for line in small_project.source_file.read_text().splitlines()]
    new_rows = [{**row, "text": row["text"] + "\n# edited"} for row in new_rows] + [{"id": "extra", "text": "x = 1"}]
    new_file = small_project.root / "new.jsonl"
    new_file.write_text("".join(json.dumps(r) + "\n" for r in new_rows))

    # The run reads a 500,000-row file and is killed once it has staged its first chunk (10,000 rows), mid-read.
    rows = "".join(json.dumps({"id": f"r{i}", "text": f"x = {i}"}) + "\n" for i in range(500_000))
    small_project.source_file.write_text(rows)
    run = small_project.cli(SOURCE_DOCUMENTS, "src")
    _wait_for_staged_rows(small_project, run)
    _kill_group(run)
    assert small_project.stored("documents") == before
    _recover_the_killed_run(small_project)

    new_file.replace(small_project.source_file)
    _complete(small_project.cli(SOURCE_DOCUMENTS, "src"))
    stored = (
        small_project.store()
        .query("SELECT row_index, doc_id, text FROM documents WHERE dataset = 'src' ORDER BY row_index")
        .to_pylist()
    )
    expected = [
        {"row_index": r.row_index, "doc_id": r.doc_id, "text": r.text}
        for r in RecordReader(str(small_project.source_file), id_field="id")
    ]
    assert stored == expected and len(stored) == len(new_rows)


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_sigkill_mid_finetune_keeps_the_recorded_checkpoint_and_the_rerun_trains_the_same_model(
    small_project: SmallProject,
) -> None:
    small_project.edit_config(
        selection={"methods": ["all"], "budgets": [1200], "all_max_tokens": 1200},
        training={"block_size": 16, "batch_size": 1, "curve_points": 0, "eval_max_length": 64},
    )
    for asset, partition in [
        (SOURCE_DOCUMENTS, "src"),
        (TARGET_DOCUMENTS, "task"),
        (ALIGNMENT_SCORES, "src|task"),
        (SELECTIONS, "tiny-gpt2|task"),
    ]:
        assert small_project.materialize(asset, partition).success
    partition, key = "tiny-gpt2.all.s0|task", RunKey("tiny-gpt2", "task", "all", 0, 0)
    _complete(small_project.cli(FINETUNED_MODEL, partition))
    recorded = TrainTables(small_project.store()).training_run(key)
    assert recorded is not None and recorded["steps"] > 60
    checkpoint = Path(recorded["checkpoint"])
    digest = _digest(checkpoint)

    retrain = {"retrain": True}  # the same texts and settings: without it, the recorded run would be reused
    run = small_project.cli(FINETUNED_MODEL, partition, retrain)
    assert run.stdout is not None
    for line in run.stdout:  # killed at its first step of training, dozens of steps before its save
        if "step 1/" in line:
            break
    assert recover_killed_runs(small_project.instance) == []  # a run that is alive is left alone
    _kill_group(run)
    assert TrainTables(small_project.store()).training_run(key) == recorded
    assert [p.name for p in checkpoint.parent.iterdir()] == [checkpoint.name] and _digest(checkpoint) == digest
    _recover_the_killed_run(small_project, through_sensor=True)

    _complete(small_project.cli(FINETUNED_MODEL, partition, retrain))  # as a re-execution of the killed run
    retrained = TrainTables(small_project.store()).training_run(key)
    assert retrained is not None
    assert {k: v for k, v in retrained.items() if k not in ("checkpoint", "seconds", "run_id")} == {
        k: v for k, v in recorded.items() if k not in ("checkpoint", "seconds", "run_id")
    }
    new_checkpoint = Path(retrained["checkpoint"])
    assert [p.name for p in new_checkpoint.parent.iterdir()] == [new_checkpoint.name] != [checkpoint.name]
    assert _digest(new_checkpoint) == digest


def test_sigkill_mid_save_leaves_no_checkpoint_that_looks_complete(tmp_path: Path) -> None:
    """A kill while `save_pretrained` writes: nothing appears at the checkpoint's path; the next save replaces the
    debris."""
    output = tmp_path / "checkpoint"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from zipfit_pipeline.demo.models import build_tiny_gpt2
        build_tiny_gpt2(Path({str(output)!r}), n_layer=12, n_embd=768)  # ~0.5 GB to write
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    partial = output.with_name(output.name + ".partial")
    deadline = time.monotonic() + 300
    while not partial.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the save never started"
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert partial.exists() and not output.exists()

    save_checkpoint(*load_model_and_tokenizer(str(build_tiny_gpt2(tmp_path / "small"))), output)
    assert not partial.exists()
    model, _ = load_model_and_tokenizer(str(output))
    assert model.config.n_embd == 64
