"""`zipfit score` and `zipfit select` as a user runs them, in a subprocess, on real files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from zipfit_pipeline.engine.core.models import count_tokens, load_model_and_tokenizer, load_tokenizer
from zipfit_pipeline.engine.score.alignment import alignment_scores
from zipfit_pipeline.engine.select.bm25 import bm25_scores
from zipfit_pipeline.engine.select.settings import Bm25Settings
from zipfit_pipeline.engine.train.heldout import heldout_loss
from zipfit_pipeline.engine.train.loop import finetune
from zipfit_pipeline.engine.train.settings import TrainingSettings


def zipfit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zipfit_pipeline.cli", *args], capture_output=True, text=True, check=True
    )


def _targets(demo_files: dict, tmp_path: Path) -> Path:
    problems = [json.loads(line) for line in demo_files["humaneval"].read_text(encoding="utf-8").splitlines()[:8]]
    path = tmp_path / "targets.jsonl"
    path.write_text("".join(json.dumps({"text": p["prompt"] + p["canonical_solution"]}) + "\n" for p in problems))
    return path


def test_score_then_select_by_top_k_and_budget(demo_files: dict, tmp_path: Path, tiny_model: Path) -> None:
    source = demo_files["python_stdlib"]
    targets = _targets(demo_files, tmp_path)
    scores_file = tmp_path / "scores.parquet"
    zipfit(
        "score",
        str(source),
        str(targets),
        "--output",
        str(scores_file),
        "--compressor",
        "lz4",
        "--level",
        "0",
        "--workers",
        "2",
    )

    table = pq.read_table(scores_file)
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    assert table.column("row_index").to_pylist() == list(range(len(rows)))
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    target_texts = [json.loads(line)["text"] for line in targets.read_text().splitlines()]
    expected = alignment_scores([r["text"] for r in rows], target_texts, "lz4", 0)
    np.testing.assert_array_equal(np.asarray(table.column("score").to_pylist()), expected)

    top = tmp_path / "top.jsonl"
    zipfit("select", str(scores_file), "--top-k", "5", "--output", str(top))
    chosen = [json.loads(line) for line in top.read_text().splitlines()]
    assert [c["row_index"] for c in chosen] == np.argsort(-expected, kind="stable")[:5].tolist()

    budget = tmp_path / "budget.jsonl"
    zipfit(
        "select",
        str(scores_file),
        "--budget-tokens",
        "2000",
        "--tokenizer",
        str(tiny_model),
        "--source",
        str(source),
        "--output",
        str(budget),
    )
    picked = [json.loads(line) for line in budget.read_text().splitlines()]
    tokens = count_tokens(load_tokenizer(str(tiny_model)), [rows[p["row_index"]]["text"] for p in picked])
    assert [p["tokens"] for p in picked] == tokens
    assert picked[-1]["cumulative_tokens"] >= 2000 > picked[-2]["cumulative_tokens"]
    assert [p["text"] for p in picked] == [rows[p["row_index"]]["text"] for p in picked]  # `zipfit train` reads them


def test_baselines_score_files_and_d4_leaves_out_the_near_duplicates_it_drops(demo_files: dict, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()[:40]]
    rows += [{"id": f"copy-{r['id']}", "text": r["text"] + "\n"} for r in rows[:3]]  # near-duplicates of rows 0-2
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    targets = _targets(demo_files, tmp_path)
    target_texts = [json.loads(line)["text"] for line in targets.read_text().splitlines()]

    d4 = tmp_path / "d4.jsonl"
    said = zipfit("score", str(source), str(targets), "--method", "d4", "--clusters", "4", "--output", str(d4)).stderr
    kept = [json.loads(line) for line in d4.read_text().splitlines()]
    assert "3 near-duplicates dropped" in said and len(kept) == len(rows) - 3
    written = {r["row_index"] for r in kept}
    assert all(len(written & {i, 40 + i}) == 1 for i in range(3))  # one of each pair

    bm25 = tmp_path / "bm25.parquet"
    zipfit("score", str(source), str(targets), "--method", "bm25", "--output", str(bm25))
    np.testing.assert_allclose(
        pq.read_table(bm25).column("score").to_numpy(),
        bm25_scores([r["text"] for r in rows], target_texts, Bm25Settings()),
    )
    top = tmp_path / "top.jsonl"
    zipfit("select", str(d4), "--top-k", "5", "--output", str(top))
    assert len(top.read_text().splitlines()) == 5


def test_train_then_eval_on_files_without_dagster(demo_files: dict, tmp_path: Path, tiny_model: Path) -> None:
    """`zipfit train` on a selection file and `zipfit eval` of the result: the engine's loop and loss, as a user
    runs them."""
    selected = tmp_path / "selected.jsonl"
    texts = [
        json.loads(line)["text"] for line in demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()[:30]
    ]
    selected.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    test = _targets(demo_files, tmp_path)
    training = zipfit(
        "train",
        str(selected),
        "--model",
        str(tiny_model),
        "--output",
        str(tmp_path / "ckpt"),
        "--budget-tokens",
        "1500",
        "--seed",
        "3",
        "--block-size",
        "64",
        "--batch-size",
        "2",
        "--learning-rate",
        "3e-3",
    )
    trained = json.loads(training.stdout)
    assert (trained["train_tokens"], trained["documents"], trained["seed"]) == (1500, 30, 3)

    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    settings = TrainingSettings(block_size=64, batch_size=2, learning_rate=3e-3)
    same = finetune(model, tokenizer, texts, 1500, settings, 3, torch.device("cpu"), log=lambda _: None)
    assert trained["final_train_loss"] == same.final_train_loss

    measured = [zipfit("eval", str(m), str(test), "--max-length", "128") for m in (tiny_model, tmp_path / "ckpt")]
    before, after = (json.loads(done.stdout) for done in measured)
    for done in (training, *measured):  # the commands' own output only: no progress bars or notices of transformers'
        assert not any(noise in done.stderr for noise in ("Loading weights", "Writing model shards", "loss_type="))
    assert after["test_tokens"] == before["test_tokens"] and after["test_documents"] == 8
    assert (
        after["test_loss"]
        == heldout_loss(
            model, tokenizer, [json.loads(line)["text"] for line in test.read_text().splitlines()], max_length=128
        )[0]
    )
    assert after["test_loss"] < before["test_loss"] - 1.0


def test_train_a_lora_adapter_and_eval_it_on_its_base(demo_files: dict, tmp_path: Path, tiny_model: Path) -> None:
    selected = tmp_path / "selected.jsonl"
    lines = demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()[:30]
    selected.write_text("".join(json.dumps({"text": json.loads(line)["text"]}) + "\n" for line in lines))
    test = _targets(demo_files, tmp_path)
    zipfit(
        "train",
        str(selected),
        "--model",
        str(tiny_model),
        "--output",
        str(tmp_path / "adapter"),
        "--budget-tokens",
        "1500",
        "--block-size",
        "64",
        "--batch-size",
        "2",
        "--gradient-accumulation-steps",
        "2",
        "--learning-rate",
        "3e-3",
        "--lora-rank",
        "8",
        "--gradient-checkpointing",
    )
    assert (tmp_path / "adapter" / "adapter_config.json").is_file() and not (
        tmp_path / "adapter" / "model.safetensors"
    ).exists()
    alone = subprocess.run(
        [sys.executable, "-m", "zipfit_pipeline.cli", "eval", str(tmp_path / "adapter"), str(test)],
        capture_output=True,
        text=True,
    )
    assert alone.returncode == 1 and "is a LoRA adapter: give the model it was trained on with --base" in alone.stderr
    base = json.loads(zipfit("eval", str(tiny_model), str(test), "--max-length", "128").stdout)
    adapted = json.loads(
        zipfit("eval", str(tmp_path / "adapter"), str(test), "--max-length", "128", "--base", str(tiny_model)).stdout
    )
    assert adapted["test_tokens"] == base["test_tokens"] and adapted["test_loss"] < base["test_loss"] - 0.05


def test_score_jsonl_output_without_ids(tmp_path: Path) -> None:
    source = tmp_path / "s.jsonl"
    source.write_text('{"body": "x = 1"}\n{"body": ""}\n{"body": "y = 2"}\n')
    target = tmp_path / "t.jsonl"
    target.write_text('{"body": "x = 2"}\n')
    out = tmp_path / "out.jsonl"
    result = zipfit("score", str(source), str(target), "--output", str(out), "--text-field", "body", "--workers", "1")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row_index"] for r in rows] == [0, 2]
    assert "id" not in rows[0]
    assert "1 empty_text (first at row 1)" in result.stderr
