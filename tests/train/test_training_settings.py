"""How fine-tunes run: LoRA, gradient accumulation and checkpointing, dtypes, checkpoints on disk, devices.

All on the CPU with the tiny GPT-2; where a behaviour needs CUDA (QLoRA) the test checks the clear refusal, and the
GPU assignment is checked with a simulated GPU count (`ZIPFIT_GPU_COUNT`), the lock files being the real ones.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from zipfit_pipeline.engine.core.models import is_adapter
from zipfit_pipeline.engine.train.checkpoints import check_disk
from zipfit_pipeline.engine.train.heldout import heldout_loss
from zipfit_pipeline.engine.train.loop import finetune
from zipfit_pipeline.engine.train.settings import TrainingSettings
from zipfit_pipeline.engine.train.trainable import checkpoint_bytes, load_trained, save_trained, trainable_model

TEXTS = [f"def add_{i}(a, b):\n    return a + b * {i}\n" for i in range(30)]
CPU = torch.device("cpu")


def _train(tiny_model: Path, budget: int = 400, **settings: object) -> tuple[object, object, list[float]]:
    train = TrainingSettings(
        **{"block_size": 32, "batch_size": 2, "learning_rate": 3e-3, "curve_points": 0, **settings}
    )
    model, tokenizer = trainable_model(str(tiny_model), train, CPU)
    result = finetune(model, tokenizer, TEXTS, budget, train, 0, CPU, log=lambda _: None)
    return model, tokenizer, [loss for _, loss in result.train_curve]


def _weights(model: object) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}  # type: ignore[attr-defined]


def test_lora_trains_only_the_adapter_and_eval_measures_base_plus_adapter(tiny_model: Path, tmp_path: Path) -> None:
    lora = {"rank": 4, "alpha": 8.0}
    model, tokenizer = trainable_model(str(tiny_model), TrainingSettings(lora=lora), CPU)
    before = _weights(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    train = TrainingSettings(block_size=32, batch_size=2, learning_rate=3e-3, curve_points=0, lora=lora)
    finetune(model, tokenizer, TEXTS, 400, train, 0, CPU, log=lambda _: None)
    after = _weights(model)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == trainable  # every adapter weight moved, no base weight did

    saved = save_trained(model, tokenizer, tmp_path / "adapter", train, CPU)
    assert is_adapter(saved) and not (saved / "model.safetensors").exists()
    assert (saved / "adapter_model.safetensors").stat().st_size < 0.2 * (
        tiny_model / "model.safetensors"
    ).stat().st_size
    assert checkpoint_bytes(model, train, CPU) == sum(
        p.numel() * 4 for n, p in model.named_parameters() if n in trainable
    )
    reloaded, _ = load_trained(str(saved), str(tiny_model), CPU)
    texts = TEXTS[:4]
    trained_loss = heldout_loss(model, tokenizer, texts, 64)[0]
    base, _ = trainable_model(str(tiny_model), TrainingSettings(), CPU)
    assert heldout_loss(reloaded, tokenizer, texts, 64)[0] == pytest.approx(trained_loss, abs=1e-6)
    assert abs(heldout_loss(base, tokenizer, texts, 64)[0] - trained_loss) > 0.05  # the adapter is on it


def test_an_adapter_is_not_evaluated_on_other_weights_than_it_trained_on(tiny_model: Path, tmp_path: Path) -> None:
    """New weights in the base model's folder: the adapter trained on the old ones is refused, not measured."""
    from zipfit_pipeline.engine.core.runs import RunKey
    from zipfit_pipeline.engine.core.store import Store
    from zipfit_pipeline.engine.evaluate import evaluate_run
    from zipfit_pipeline.engine.train import TrainTables, training_version

    settings = TrainingSettings(lora={"rank": 4}, curve_points=0)
    models_dir = tmp_path / "artifacts" / "models"
    model, tokenizer = trainable_model(str(tiny_model), settings, CPU)
    checkpoint = save_trained(model, tokenizer, models_dir / "run-1", settings, CPU)
    store, key = Store(tmp_path / "store.duckdb"), RunKey("tiny", "task", "zipfit", 100, 0)
    row = {"run_id": "run-1", "selection_version": "v", "checkpoint": str(checkpoint), "train_tokens": 100}
    row |= {"steps": 1, "final_train_loss": 1.0, "seconds": 1.0, "device": "cpu"}
    TrainTables(store).record_training(key, {**row, "settings_version": "trained-on-other-weights"}, {})
    with pytest.raises(RuntimeError, match="its adapter was trained on another base model"):
        evaluate_run(store, key, str(tiny_model), models_dir, settings, log=lambda _: None)
    TrainTables(store).record_training(
        key, {**row, "settings_version": training_version(settings, str(tiny_model))}, {}
    )
    with pytest.raises(ValueError, match="the test split is empty"):  # past the check: no target in this store
        evaluate_run(store, key, str(tiny_model), models_dir, settings, log=lambda _: None)


def test_a_lora_run_repeats_exactly_with_its_seed(tiny_model: Path) -> None:
    """The adapter's random initialisation is part of the run: drawn from the seed, not from whatever came before."""
    lora = TrainingSettings(lora={"rank": 4})

    def adapter(seed: int) -> dict[str, torch.Tensor]:
        model, _ = trainable_model(str(tiny_model), lora, CPU, seed)
        return {name: w for name, w in _weights(model).items() if "lora_A" in name}

    first, again, other = adapter(0), adapter(0), adapter(1)
    assert first and all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_accumulating_micro_batches_gives_the_update_of_one_larger_batch(tiny_model: Path) -> None:
    """4 micro-batches of one block per step = 1 batch of four blocks; the budget leaves a short last block, so the
    per-token normalisation over the whole step matters, not only the division by 4."""
    budget = 32 * 9 + 7
    big, _, big_losses = _train(tiny_model, budget, batch_size=4)
    small, _, small_losses = _train(tiny_model, budget, batch_size=1, gradient_accumulation_steps=4)
    assert len(big_losses) == len(small_losses) == 3
    assert small_losses == pytest.approx(big_losses, abs=1e-5)
    for name, weight in _weights(big).items():
        assert torch.allclose(weight, _weights(small)[name], atol=1e-5), name


def test_gradient_checkpointing_gives_the_same_losses(tiny_model: Path) -> None:
    _, _, plain = _train(tiny_model)
    train = TrainingSettings(
        block_size=32, batch_size=2, learning_rate=3e-3, curve_points=1, gradient_checkpointing=True
    )
    model, tokenizer = trainable_model(str(tiny_model), train, CPU)
    during = []
    result = finetune(
        model,
        tokenizer,
        TEXTS,
        400,
        train,
        0,
        CPU,
        log=lambda _: None,
        evaluate=lambda m: during.append(m.is_activation_checkpointing) or 0.0,
    )
    assert during == [True] and not model.is_activation_checkpointing  # on while training, off afterwards
    assert [loss for _, loss in result.train_curve] == pytest.approx(plain, abs=1e-5)


def test_a_bf16_checkpoint_is_half_the_size_and_reloads(tiny_model: Path, tmp_path: Path) -> None:
    model, tokenizer, _ = _train(tiny_model, dtype="bf16")
    trained = {name: w.to(torch.bfloat16).float() for name, w in _weights(model).items()}
    train = TrainingSettings(dtype="bf16")
    saved = save_trained(model, tokenizer, tmp_path / "bf16", train, CPU)
    with safe_open(str(saved / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.bfloat16}
    assert json.loads((saved / "zipfit_training.json").read_text())["dtype"] == "torch.bfloat16"
    reloaded, _ = load_trained(str(saved), str(tiny_model), CPU)
    assert next(reloaded.parameters()).dtype == torch.float32  # measured in float32
    for name, weight in reloaded.named_parameters():
        assert torch.equal(weight, trained[name]), name
    size = (saved / "model.safetensors").stat().st_size
    assert size < 0.55 * (tiny_model / "model.safetensors").stat().st_size


def test_the_disk_estimate_refuses_a_sweep_that_cannot_fit(tmp_path: Path) -> None:
    check_disk(tmp_path, checkpoint_bytes=1_000_000, to_write=12, keep=True)  # 13 MB: fits
    with pytest.raises(RuntimeError, match=r"not enough disk.*12 fine-tunes still to save.*keep_checkpoints: false"):
        check_disk(tmp_path, checkpoint_bytes=10**14, to_write=12, keep=True)
    with pytest.raises(RuntimeError, match="1 at a time, dropped after their evals"):
        check_disk(tmp_path, checkpoint_bytes=10**15, to_write=12, keep=False)


def test_a_block_longer_than_the_model_context_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="training.block_size is 1024 tokens, longer than the model's context of 512"):
        _train(tiny_model, block_size=1024)


def test_fp16_needs_a_gpu_and_says_so(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="dtype fp16 needs a GPU"):
        TrainingSettings(dtype="fp16", device="cpu")
    with pytest.raises(ValueError, match="dtype fp16 needs a GPU and this step runs on cpu"):
        _train(tiny_model, dtype="fp16")  # device auto, on a machine without one


def test_qlora_needs_cuda_and_says_so(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="qlora trains a LoRA adapter"):
        TrainingSettings(qlora=True)
    with pytest.raises(RuntimeError, match="qlora needs a CUDA GPU.*set training.qlora: false"):
        trainable_model(str(tiny_model), TrainingSettings(qlora=True, lora={"rank": 4}), CPU)


CLAIM = """
import sys, time
from pathlib import Path
from zipfit_pipeline.engine.core.devices import claimed_device
with claimed_device("auto", Path(sys.argv[1]), log=lambda m: print(m, flush=True), poll_seconds=0.2) as device:
    print("holding", device, flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_concurrent_steps_get_different_gpus_and_a_third_waits(tmp_path: Path) -> None:
    env = {**os.environ, "ZIPFIT_GPU_COUNT": "2"}
    locks = tmp_path / "devices"

    def claim(seconds: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(locks), str(seconds)], env=env, text=True, stdout=subprocess.PIPE
        )

    first, second = claim(4), claim(4)
    held = sorted(p.stdout.readline().strip() for p in (first, second))  # type: ignore[union-attr]
    assert held == ["holding cuda:0", "holding cuda:1"]
    started = time.monotonic()
    third = claim(0)
    output, _ = third.communicate(timeout=30)
    assert "all 2 GPUs are held by other steps: waiting for one" in output
    assert output.strip().endswith(("holding cuda:0", "holding cuda:1"))
    assert time.monotonic() - started > 1.0  # it got a GPU only once one was given back
    first.wait(), second.wait()


def test_without_gpus_steps_run_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zipfit_pipeline.engine.core.devices import claimed_device

    monkeypatch.setenv("ZIPFIT_GPU_COUNT", "0")
    with claimed_device("auto", tmp_path) as first, claimed_device("auto", tmp_path) as second:
        assert first == second == CPU
