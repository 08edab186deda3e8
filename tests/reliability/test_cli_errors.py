"""Every CLI option given a bad value: one line on stderr that names the option, file, row or field, a non-zero
exit, no traceback (unless --debug), and no input ever overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from zipfit_pipeline.cli import error_line, main

SOURCE = [{"id": f"s{i}", "text": f"def f{i}(x):\n    return x + {i}\n"} for i in range(20)]


@pytest.fixture
def files(tmp_path: Path, tiny_model: Path) -> dict[str, Path]:
    def jsonl(name: str, rows: list[dict]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    paths = {
        "source": jsonl("source.jsonl", SOURCE),
        "target": jsonl("target.jsonl", [{"text": "def g(x): return x"}]),
        "other": jsonl("other.jsonl", [{"id": f"o{i}", "text": f"x = {i}"} for i in range(20)]),
        "short": jsonl("short.jsonl", SOURCE[:1]),
        "empty": tmp_path / "empty.jsonl",
        "no_score": jsonl("no_score.jsonl", [{"row_index": 0, "value": 1.0}]),
        "null_score": jsonl("null_score.jsonl", [{"row_index": 0, "score": 0.5}, {"row_index": 1, "score": None}]),
        "model": tiny_model,
        "folder": tmp_path / "folder",
        "scores": tmp_path / "scores.jsonl",
    }
    paths["empty"].write_text("")
    paths["folder"].mkdir()
    (paths["folder"] / "thesis.tex").write_text("years of work")
    (tmp_path / "dir.jsonl").mkdir()
    assert (
        main(["score", str(paths["source"]), str(paths["target"]), "--output", str(paths["scores"]), "--workers", "1"])
        == 0
    )
    return paths


# (arguments with {placeholders} for the files above, exit code, words the one line must hold)
CASES = {
    "score: output over the source": ("score {source} {target} --output {source}", 1, "is the input {source}"),
    "score: output over the target": ("score {source} {target} --output {target}", 1, "is the input {target}"),
    "score: unknown output extension": ("score {source} {target} --output {tmp}/s.txt", 1, "extension must be one of"),
    "score: output without extension": ("score {source} {target} --output {tmp}/s", 1, "got none"),
    "score: output is a folder": ("score {source} {target} --output {tmp}/dir.jsonl", 1, "dir.jsonl is a folder"),
    "score: level out of range": (
        "score {source} {target} --output {tmp}/s.jsonl --level 12",
        1,
        "level must be in [0, 9], got 12",
    ),
    "score: level not a number": (
        "score {source} {target} --output {tmp}/s.jsonl --level high",
        2,
        "--level: invalid int value",
    ),
    "score: negative workers": (
        "score {source} {target} --output {tmp}/s.jsonl --workers -1",
        2,
        "--workers: must be at least 0",
    ),
    "score: zero chunk size": (
        "score {source} {target} --output {tmp}/s.jsonl --chunk-size 0",
        2,
        "--chunk-size: must be at least 1",
    ),
    "score: unknown compressor": (
        "score {source} {target} --output {tmp}/s.jsonl --compressor brotli",
        2,
        "invalid choice: 'brotli'",
    ),
    "score: missing source": (
        "score {tmp}/nope.jsonl {target} --output {tmp}/s.jsonl",
        1,
        "nope.jsonl: file not found",
    ),
    "score: unknown text field": (
        "score {source} {target} --output {tmp}/s.jsonl --text-field body",
        1,
        "field 'body' is in none of the 20 rows",
    ),
    "score: template reaching into values": (
        "score {source} {target} --output {tmp}/s.jsonl --template {{text.upper}}",
        1,
        "is not a field name",
    ),
    "score: empty source": ("score {empty} {target} --output {tmp}/s.jsonl", 1, "empty.jsonl: no usable rows"),
    "score: unknown method": (
        "score {source} {target} --output {tmp}/s.jsonl --method tfidf",
        2,
        "invalid choice: 'tfidf'",
    ),
    "score: zero clusters": (
        "score {source} {target} --output {tmp}/s.jsonl --method d4 --clusters 0",
        2,
        "--clusters: must be at least 1, got 0",
    ),
    "score: similarity above 1": (
        "score {source} {target} --output {tmp}/s.jsonl --method d4 --duplicate-similarity 2",
        2,
        "--duplicate-similarity: must be in (0, 1], got 2.0",
    ),
    "score: missing embedder": (
        "score {source} {target} --output {tmp}/s.jsonl --method embedding --embedding-model {tmp}/no-model",
        1,
        "no-model: no such folder",
    ),
    "select: output over the scores": ("select {scores} --top-k 3 --output {scores}", 1, "is the input {scores}"),
    "select: output over the source": (
        "select {scores} --top-k 3 --source {source} --output {source}",
        1,
        "is the input {source}",
    ),
    "select: negative top-k": (
        "select {scores} --top-k -3 --output {tmp}/o.jsonl",
        2,
        "--top-k: must be at least 1, got -3",
    ),
    "select: zero top-k": ("select {scores} --top-k 0 --output {tmp}/o.jsonl", 2, "--top-k: must be at least 1, got 0"),
    "select: zero budget": (
        "select {scores} --budget-tokens 0 --output {tmp}/o.jsonl",
        2,
        "--budget-tokens: must be at least 1",
    ),
    "select: budget without tokenizer": (
        "select {scores} --budget-tokens 100 --output {tmp}/o.jsonl",
        1,
        "--budget-tokens needs --tokenizer and --source",
    ),
    "select: tokenizer path that does not exist": (
        "select {scores} --budget-tokens 100 --tokenizer ./no/such/tokenizer --source {source} --output {tmp}/o.jsonl",
        1,
        "no/such/tokenizer: no such folder",
    ),
    "select: scores of another file": (
        "select {scores} --top-k 3 --source {other} --output {tmp}/o.jsonl",
        1,
        "scores.jsonl row 0: id 's0', but row 0 of {other} has id 'o0'",
    ),
    "select: scores with rows the source lacks": (
        "select {scores} --top-k 3 --source {short} --output {tmp}/o.jsonl",
        1,
        "scores.jsonl row 1: row_index 1 is not a usable row of {short}",
    ),
    "select: empty scores file": (
        "select {empty} --top-k 3 --output {tmp}/o.jsonl",
        1,
        "empty.jsonl: the file is empty",
    ),
    "select: scores file without scores": (
        "select {no_score} --top-k 3 --output {tmp}/o.jsonl",
        1,
        "field 'score' not found",
    ),
    "select: a score missing": (
        "select {null_score} --top-k 3 --output {tmp}/o.jsonl",
        1,
        "null_score.jsonl row 1: field 'score' is empty",
    ),
    "select: scores file missing": (
        "select {tmp}/none.jsonl --top-k 3 --output {tmp}/o.jsonl",
        1,
        "none.jsonl: file not found",
    ),
    "train: negative learning rate": (
        "train {source} --model {model} --output {tmp}/ck --learning-rate -1",
        1,
        "--learning-rate: Input should be greater than 0",
    ),
    "train: zero block size": (
        "train {source} --model {model} --output {tmp}/ck --block-size 0",
        1,
        "--block-size: Input should be",
    ),
    "train: negative seed": (
        "train {source} --model {model} --output {tmp}/ck --seed -1",
        2,
        "--seed: must be at least 0",
    ),
    "train: zero budget": (
        "train {source} --model {model} --output {tmp}/ck --budget-tokens 0",
        2,
        "--budget-tokens: must be at least 1",
    ),
    "train: CUDA that is not there": (
        "train {source} --model {model} --output {tmp}/ck --device cuda:3",
        1,
        "--device cuda:3: this machine has",
    ),
    "train: device that does not exist": (
        "train {source} --model {model} --output {tmp}/ck --device gpu",
        1,
        "--device gpu:",
    ),
    "train: model path that does not exist": (
        "train {source} --model ./models/none --output {tmp}/ck",
        1,
        "models/none: no such folder",
    ),
    "train: output over a folder of other files": (
        "train {source} --model {model} --output {folder}",
        1,
        "exists and is not a checkpoint folder",
    ),
    "train: output over the model": ("train {source} --model {model} --output {model}", 1, "is the input"),
    "train: output over the selection": (
        "train {source} --model {model} --output {source}",
        1,
        "is the input {source}",
    ),
    "eval: max length below 2": ("eval {model} {target} --max-length 1", 2, "--max-length: must be at least 2"),
    "eval: zero batch size": ("eval {model} {target} --batch-size 0", 2, "--batch-size: must be at least 1"),
    "eval: checkpoint that does not exist": ("eval {tmp}/none {target}", 1, "none: no such folder"),
    "materialize: project file that does not exist": ("materialize --config {tmp}/none.yaml", 1, "none.yaml not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_option_gives_one_line_and_a_non_zero_exit(
    case: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, code, words = CASES[case]
    names = {name: str(path) for name, path in files.items()} | {"tmp": str(tmp_path)}
    before = {name: path.read_bytes() for name, path in files.items() if path.is_file()}
    capsys.readouterr()
    try:
        rc = main([part.format(**names) for part in arguments.split()])
    except SystemExit as exit_:
        rc = exit_.code
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith(("source:", "selection:", "test:"))]
    assert rc == code and len(lines) == 1, err
    assert lines[0].startswith(f"zipfit {arguments.split()[0]}: error: ") and words.format(**names) in lines[0]
    assert "Traceback" not in err
    assert {name: path.read_bytes() for name, path in files.items() if path.is_file()} == before


def test_extensions_pick_the_format_whatever_their_case(files: dict[str, Path], tmp_path: Path) -> None:
    for name, read in (("s.PARQUET", pq.read_table), ("s.Csv", pa_csv.read_csv)):
        assert (
            main(
                [
                    "score",
                    str(files["source"]),
                    str(files["target"]),
                    "--output",
                    str(tmp_path / name),
                    "--workers",
                    "1",
                ]
            )
            == 0
        )
        assert read(tmp_path / name).column("id").to_pylist() == [r["id"] for r in SOURCE]
    assert (
        main(
            [
                "select",
                str(tmp_path / "s.Csv"),
                "--top-k",
                "2",
                "--source",
                str(files["source"]),
                "--output",
                str(tmp_path / "top.JSONL"),
            ]
        )
        == 0
    )
    assert len((tmp_path / "top.JSONL").read_text().splitlines()) == 2


def test_debug_shows_the_traceback_and_unexpected_errors_say_how_to_see_it(
    files: dict[str, Path], tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zipfit_pipeline.cli",
            "select",
            str(files["empty"]),
            "--top-k",
            "1",
            "--output",
            str(tmp_path / "o.jsonl"),
            "--debug",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" in done.stderr and "UsageError" in done.stderr
    assert error_line(KeyError(0)) == "KeyError: 0 (unexpected: run again with --debug for the traceback)"
    assert error_line(ValueError("a\n  b")) == "a b"
