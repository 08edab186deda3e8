"""Eval stage: the test cross-entropy of the current checkpoint of a fine-tune (or of the base model).

Each eval row records the training run whose checkpoint it measured and the selection version that run trained
on, so that a report can tell a current result from one whose checkpoint or selection has been replaced since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zipfit_pipeline.engine.core.models import is_adapter
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.evaluate.tables import EvalTables, Measured
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.train import TrainingSettings, TrainTables, release_checkpoint, training_version


@dataclass(frozen=True)
class EvalResult:
    key: RunKey
    run_id: str
    selection_version: str | None
    test_loss: float
    test_tokens: int
    test_documents: int
    train_tokens: int
    measured_with: Measured


def checkpoint_to_load(key: RunKey, run: dict[str, Any], base_model: str, models_dir: Path) -> str:
    """The base model as configured; a fine-tune only from the project's checkpoint folder, so that a store copied
    from elsewhere (or edited) cannot make eval load a model from an arbitrary path."""
    if key.is_base:
        return base_model
    if run["released"]:
        raise RuntimeError(
            f"the checkpoint of {key} was deleted after its evals (training.keep_checkpoints: false): "
            "materialize finetuned_model again to measure it anew"
        )
    checkpoint = Path(run["checkpoint"]).resolve()
    if models_dir.resolve() not in checkpoint.parents:
        raise RuntimeError(f"refusing to load {checkpoint}: fine-tuned checkpoints are loaded only from {models_dir}")
    if not checkpoint.is_dir():
        raise RuntimeError(f"the checkpoint {checkpoint} is gone: materialize finetuned_model again")
    return str(checkpoint)


def current_run(store: Store, key: RunKey) -> dict[str, Any]:
    run = TrainTables(store).training_run(key)
    if run is None:
        raise LookupError(f"no training run of {key}: materialize finetuned_model first")
    return run


@contextmanager
def measured_model(
    key: RunKey,
    run: dict[str, Any],
    settings: TrainingSettings,
    base_model: str,
    models_dir: Path,
    log: Callable[[str], None],
) -> Iterator[tuple[Any, Any]]:
    """The model of `key`'s recorded run (base + adapter for LoRA) and its tokenizer, on a device this step holds."""
    from zipfit_pipeline.engine.core.devices import claimed_device  # torch only where a model runs
    from zipfit_pipeline.engine.train import load_trained

    checkpoint = checkpoint_to_load(key, run, base_model, models_dir)
    if (
        not key.is_base
        and is_adapter(checkpoint)
        and run.get("settings_version") != training_version(settings, base_model)
    ):
        # An adapter is a difference from the weights it trained on: on other weights it measures nothing.
        raise RuntimeError(
            f"{key}: its adapter was trained on another base model (or with other settings) than {base_model} holds "
            "now: materialize finetuned_model to train it on this one"
        )
    with claimed_device(settings.device, models_dir.parent / "devices", log) as device:
        yield load_trained(checkpoint, base_model, device)


def evaluate_run(
    store: Store,
    key: RunKey,
    base_model: str,
    models_dir: Path,
    settings: TrainingSettings,
    log: Callable[[str], None] = print,
    with_pass_at_k: bool = False,
    settings_version: str = "",
) -> EvalResult:
    """Measure the recorded checkpoint of `key` on its target's test split, and record it with its run, the split's
    key and `settings_version` (the digest of the settings this stage reads); with `keep_checkpoints: false`, drop
    the checkpoint once every eval of it is recorded."""
    run = current_run(store, key)
    from zipfit_pipeline.engine.train import heldout_loss

    texts = IngestTables(store).target_texts(key.target, "test")
    with measured_model(key, run, settings, base_model, models_dir, log) as (model, tokenizer):
        loss, tokens = heldout_loss(model, tokenizer, texts, settings.eval_max_length, settings.eval_batch_size)
    measured_with = measured_now(store, key, settings_version)
    EvalTables(store).record_eval(key, run["run_id"], run["selection_version"], loss, tokens, measured_with)
    log(f"{key}: test loss {loss:.4f} over {tokens} tokens")
    if not settings.keep_checkpoints:
        release_if_measured(store, key, with_pass_at_k, log)
    return EvalResult(
        key, run["run_id"], run["selection_version"], loss, tokens, len(texts), run["train_tokens"], measured_with
    )


def measured_now(store: Store, key: RunKey, settings_version: str) -> Measured:
    """What a measurement of `key` made now reads besides its checkpoint: the test split as stored, the settings."""
    return Measured(IngestTables(store).split_hash(key.target, "test"), settings_version)


def release_if_measured(store: Store, key: RunKey, with_pass_at_k: bool, log: Callable[[str], None]) -> None:
    """Delete the current checkpoint of `key` once its test loss (and its Pass@k, when configured) are recorded for
    it (`keep_checkpoints: false`); the store keeps its figures and marks it released."""
    run = TrainTables(store).training_run(key)
    if run is None or key.is_base or run["released"]:
        return
    if EvalTables(store).is_measured(key, run["run_id"], with_pass_at_k):
        release_checkpoint(store, key, run, log)
