"""Files that change under the pipeline: a source rewritten while it is read is read again or refused, never
stored in part; the incoming folder waits for a dropped file to be still, and re-ingests it when it changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from projects import SmallProject

from zipfit_pipeline.cli import main
from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import DatasetSpec, file_state, ingest_source
from zipfit_pipeline.engine.ingest.file_state import read_unchanged
from zipfit_pipeline.engine.ingest.records import InputError, RecordReader
from zipfit_pipeline.orchestration.asset_keys import SOURCE_DOCUMENTS
from zipfit_pipeline.orchestration.definitions import build_definitions

ROWS = 60_000
# Rewrites the file from scratch, flushing every row, then (unless told to go on) exits: a copy in progress.
WRITER = """
import json, sys, time
path, rows, forever = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "forever"
while True:
    with open(path, "w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": str(i), "text": f"def f{i}(): return {i}"}) + "\\n")
            f.flush()
    if not forever:
        break
"""


def _writer(path: Path, forever: bool) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ROWS), "forever" if forever else "once"])
    while not path.exists() or path.stat().st_size < 100_000:  # the copy is under way
        time.sleep(0.01)
    return process


def test_a_source_rewritten_while_it_is_read_is_read_again_once_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "copying.jsonl"
    writer = _writer(path, forever=False)
    messages: list[str] = []
    try:
        records, _, state = read_unchanged(
            RecordReader(str(path), id_field="id"), list, attempts=20, wait=0.5, log=messages.append
        )
    finally:
        writer.wait()
    assert messages and "changed while it was read" in messages[0]
    assert len(records) == ROWS  # all of it, not the part that was there when reading began
    assert state is not None and state.size == path.stat().st_size


def test_a_source_that_keeps_changing_fails_and_the_stored_documents_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "src.jsonl"
    path.write_text(json.dumps({"id": "kept", "text": "the stored version"}) + "\n")
    store = Store(tmp_path / "store.duckdb")
    ingest_source(store, DatasetSpec(name="src", path=str(path)), RecordReader(str(path), id_field="id"))
    monkeypatch.setattr(file_state, "SECONDS_BETWEEN_ATTEMPTS", 0.05)
    writer = _writer(path, forever=True)
    try:
        with pytest.raises(
            InputError, match=r"src\.jsonl: changed while it was read, 3 times in a row.*nothing was stored"
        ):
            ingest_source(
                store,
                DatasetSpec(name="src", path=str(path)),
                RecordReader(str(path), id_field="id"),
                log=lambda _: None,
            )
    finally:
        writer.kill()
        writer.wait()
    assert store.query("SELECT doc_id, text FROM documents").to_pylist() == [
        {"doc_id": "kept", "text": "the stored version"}
    ]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_incoming_folder_waits_for_a_still_file_and_reingests_it_when_it_changes(
    small_project: SmallProject,
) -> None:
    small_project.edit_config(incoming={"path": "incoming", "id_field": "id", "stable_seconds": 30})
    incoming = small_project.root / "incoming"
    incoming.mkdir()
    dropped = incoming / "more.jsonl"
    dropped.write_text(small_project.source_file.read_text())
    defs = build_definitions(str(small_project.config_file))
    sensor = defs.resolve_sensor_def("incoming_sources")
    instance = small_project.instance

    def tick() -> list[str]:
        return [r.run_key for r in sensor(dg.build_sensor_context(instance=instance)).run_requests]

    assert tick() == [] and "more" not in instance.get_dynamic_partitions("sources")  # still being written, perhaps
    _age(dropped, 31)
    first = tick()
    assert instance.get_dynamic_partitions("sources") == ["src", "more"] and len(first) == 1
    assert first[0].startswith("more|") and first[0].endswith("|none")
    assert small_project.materialize(SOURCE_DOCUMENTS, "more").success
    assert tick() == []  # what is stored is the file as it is

    dropped.write_text(dropped.read_text() + json.dumps({"id": "new", "text": "def added(): pass"}) + "\n")
    assert tick() == []  # changed, but not still yet
    _age(dropped, 31)
    second = tick()
    assert len(second) == 1 and second[0] != first[0]
    assert small_project.materialize(SOURCE_DOCUMENTS, "more").success
    assert tick() == []
    assert small_project.store().query("SELECT count(*) AS n FROM documents WHERE dataset = 'more'").to_pylist() == [
        {"n": 41}
    ]


def test_a_symbolic_link_in_the_incoming_folder_is_never_read(small_project: SmallProject, tmp_path: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"id": "s", "text": "a file the pipeline must not read"}) + "\n")
    small_project.edit_config(incoming={"path": "incoming", "id_field": "id", "stable_seconds": 0})
    incoming = small_project.root / "incoming"
    incoming.mkdir()
    (incoming / "leak.jsonl").symlink_to(secret)
    sensor = build_definitions(str(small_project.config_file)).resolve_sensor_def("incoming_sources")
    assert sensor(dg.build_sensor_context(instance=small_project.instance)).run_requests == []
    assert small_project.instance.get_dynamic_partitions("sources") == ["src"]
    with pytest.raises(KeyError, match="no source dataset named 'leak'"):
        load_project(small_project.config_file).source("leak")


def test_the_cli_refuses_a_file_that_keeps_changing_as_the_pipeline_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zipfit score` reads with the pipeline's changed-while-read check: a file still being written is read again,
    and one that never stops changing fails (it used to score a torn prefix and exit 0)."""
    source, target = tmp_path / "copying.jsonl", tmp_path / "target.jsonl"
    target.write_text(json.dumps({"text": "def f(): pass"}) + "\n")
    monkeypatch.setattr(file_state, "SECONDS_BETWEEN_ATTEMPTS", 0.05)
    writer = _writer(source, forever=True)
    try:
        code = main(["score", str(source), str(target), "--output", str(tmp_path / "out.jsonl")])
    finally:
        writer.kill()
    error = capsys.readouterr().err
    assert code == 1 and "copying.jsonl changed while it was read (attempt 1 of 3)" in error
    assert "copying.jsonl: changed while it was read, 3 times in a row" in error
    assert not (tmp_path / "out.jsonl").exists()
