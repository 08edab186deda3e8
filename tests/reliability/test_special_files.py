"""Inputs are regular files or folders of them, read whole and unchanged, within bounds: a FIFO, a device, a socket or
a system file is refused with one line naming it (never read: a FIFO would block forever); a row range past the end
of a target's file fails its ingestion; no text is longer than any stage can hold; the CLI reads as the pipeline does
and never echoes a file's content in an error (its reading files being written: `test_file_changes.py`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from projects import SmallProject, failure_message

from zipfit_pipeline.engine.core import input_files
from zipfit_pipeline.engine.core.input_files import MAX_TEXT_CHARS, InputError
from zipfit_pipeline.engine.ingest import DatasetSpec, RecordReader
from zipfit_pipeline.engine.ingest.records import chunk_records

ZIPFIT = [sys.executable, "-m", "zipfit_pipeline.cli"]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_a_fifo_given_as_a_source_fails_its_ingestion_at_once(small_project: SmallProject) -> None:
    small_project.source_file.unlink()
    _fifo(small_project.source_file)  # nothing ever writes to it: reading it would block forever
    message = failure_message(small_project.ingest_source())
    assert f"{small_project.source_file} is a FIFO, not a file; give a file or a folder of files" in message


@pytest.mark.parametrize("kind", ["fifo", "link to a fifo", "character device", "socket", "system file"])
def test_the_cli_refuses_anything_but_a_regular_file_in_one_line(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target.jsonl"
    target.write_text(json.dumps({"text": "def f(): pass"}) + "\n")
    source = {
        "fifo": lambda: _fifo(tmp_path / "pipe.jsonl"),
        "link to a fifo": lambda: _link(tmp_path / "link.jsonl", _fifo(tmp_path / "pipe.jsonl")),
        "character device": lambda: Path("/dev/zero"),
        "socket": lambda: _socket(tmp_path / "sock.jsonl"),
        "system file": lambda: Path("/proc/self/environ"),
    }[kind]()
    done = subprocess.run(
        [*ZIPFIT, "score", str(source), str(target), "--output", str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = {"system file": "a system folder; inputs are data files", "socket": "is a socket, not a file"}
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert expected.get(kind, "is a character device" if kind == "character device" else "is a FIFO") in done.stderr


def _link(link: Path, to: Path) -> Path:
    link.symlink_to(to)
    return link


def _socket(path: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return path


def test_a_folder_source_holds_regular_files_only_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "texts"
    (folder / "a" / "b" / "c").mkdir(parents=True)
    (folder / "one.txt").write_text("first text")
    (folder / "a" / "b" / "c" / "deep.txt").write_text("deep text")
    (folder / "linked").symlink_to(Path("/usr"))  # a link to a folder is never followed
    assert [r.text for r in RecordReader(str(folder), format="text_folder")] == ["deep text", "first text"]
    monkeypatch.setattr(input_files, "MAX_FOLDER_DEPTH", 2)
    with pytest.raises(InputError, match=f"folders nest more than 2 levels deep under {folder}"):
        list(RecordReader(str(folder), format="text_folder"))
    monkeypatch.undo()
    _fifo(folder / "a" / "pipe.txt")
    with pytest.raises(InputError, match=f"{folder / 'a' / 'pipe.txt'} is a FIFO, not a file; a folder input holds"):
        list(RecordReader(str(folder), format="text_folder"))


def test_a_test_range_past_the_end_of_the_file_fails_naming_it(small_project: SmallProject) -> None:
    rows = len(small_project.target_file.read_text(encoding="utf-8").splitlines())
    targets = [{**_target(small_project), "test_rows": [8, rows + 10]}]
    small_project.edit_config(targets=targets)
    message = failure_message(small_project.ingest_target())
    assert (
        f"{small_project.target_file}: test_rows [8, {rows + 10}) of target task go past the end of the file, which "
        f"has {rows} rows; fix the range, or set clip_rows: true to use rows [8, {rows})"
    ) in message
    assert small_project.stored("targets") == []
    small_project.edit_config(targets=[{**targets[0], "clip_rows": True}])
    assert small_project.ingest_target().success
    assert len([r for r in small_project.stored("targets") if r["split"] == "test"]) == rows - 8


def _target(project: SmallProject) -> dict:
    return yaml.safe_load(project.config_file.read_text())["targets"][0]


def test_no_text_is_longer_than_a_stage_can_hold() -> None:
    with pytest.raises(ValueError, match="max_chars: null keeps texts of any length.*set chunk_chars too"):
        DatasetSpec(name="s", path="s.jsonl", max_chars=None)
    with pytest.raises(ValueError, match="less than or equal to 4000000"):
        DatasetSpec(name="s", path="s.jsonl", max_chars=MAX_TEXT_CHARS + 1)
    DatasetSpec(name="s", path="s.jsonl", max_chars=None, chunk_chars=100_000)  # long texts become documents


def test_a_huge_text_with_max_chars_off_is_stored_as_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    path.write_text(json.dumps({"id": "book", "text": "word " * 1_200_000}) + "\n")  # 6 MB, one text
    spec = DatasetSpec(name="s", path=str(path), id_field="id", max_chars=None, chunk_chars=500_000)
    chunks = list(chunk_records(RecordReader(str(path), id_field="id", max_chars=spec.max_chars), spec.chunk_chars))
    assert len(chunks) == 12 and max(len(c.text) for c in chunks) <= 500_000
    assert list(RecordReader(str(path), id_field="id", max_chars=MAX_TEXT_CHARS)) == []  # skipped: too_long


def test_texts_are_tokenized_in_bounded_batches_with_the_same_ids(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zipfit_pipeline.engine.core import models

    tokenizer = models.load_tokenizer(str(tiny_model))
    texts = [f"def f{i}(x):\n    return x + {i}\n" * (i + 1) for i in range(20)]
    whole = tokenizer(texts, add_special_tokens=False)["input_ids"]
    batches: list[list[str]] = []

    def recording(batch: list[str], **options: object) -> dict:
        batches.append(batch)
        return tokenizer(batch, **options)

    monkeypatch.setattr(models, "TOKENIZE_CHARS", 300)
    assert list(models.encode_texts(recording, texts)) == whole  # the same ids as one call
    assert len(batches) > 5 and all(sum(map(len, b)) <= 300 or len(b) == 1 for b in batches)
    # Counting goes through the fast tokenizer's backend, in the same batches, to the same counts.
    assert models.text_token_lengths(tokenizer, texts) == [len(ids) for ids in whole]


def test_an_error_never_echoes_the_files_content(tmp_path: Path) -> None:
    secret = tmp_path / "credentials.csv"
    secret.write_text("sk-live-4242abcdefghijklmnop\n")
    scores = tmp_path / "scores.csv"
    scores.write_text("row_index,score\n0,0.5\nrow three holds a secret token\n")
    done = subprocess.run(
        [*ZIPFIT, "score", str(secret), str(secret), "--output", str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
    )
    assert "field 'text' not found (columns: 1 not shown)" in done.stderr and "sk-live" not in done.stderr
    source = tmp_path / "source.jsonl"
    source.write_text(json.dumps({"text": "a"}) + "\n")
    done = subprocess.run(
        [
            *ZIPFIT,
            "select",
            str(scores),
            "--source",
            str(source),
            "--top-k",
            "1",
            "--output",
            str(tmp_path / "s.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert "Expected 2 columns, got 1" in done.stderr and "secret" not in done.stderr.replace(str(tmp_path), "")
