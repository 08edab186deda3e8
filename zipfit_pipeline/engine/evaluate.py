"""Eval stage: the test cross-entropy of the current checkpoint of a fine-tune (or of the base model).

Each eval row records the training run whose checkpoint it measured and the selection version that run trained
on, so that a report can tell a current result from one whose checkpoint or selection has been replaced since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zipfit_pipeline.engine.models import load_model_and_tokenizer
from zipfit_pipeline.engine.runs import RunKey
from zipfit_pipeline.engine.store import Store


@dataclass(frozen=True)
class EvalResult:
    key: RunKey
    run_id: str
    selection_version: str | None
    test_loss: float
    test_tokens: int
    test_documents: int
    train_tokens: int


def checkpoint_to_load(key: RunKey, recorded: str, base_model: str, models_dir: Path) -> str:
    """The base model as configured; a fine-tune only from the project's checkpoint folder, so that a store copied
    from elsewhere (or edited) cannot make eval load a model from an arbitrary path."""
    if key.is_base:
        return base_model
    checkpoint = Path(recorded).resolve()
    if models_dir.resolve() not in checkpoint.parents:
        raise RuntimeError(f"refusing to load {checkpoint}: fine-tuned checkpoints are loaded only from {models_dir}")
    if not checkpoint.is_dir():
        raise RuntimeError(f"the checkpoint {checkpoint} is gone: materialize finetuned_model again")
    return str(checkpoint)


def evaluate_run(
    store: Store, key: RunKey, base_model: str, models_dir: Path, max_length: int, batch_size: int,
    log: Callable[[str], None] = print,
) -> EvalResult:
    """Measure the recorded checkpoint of `key` on its target's test split, and record it with its run."""
    run = store.training_run(key)
    if run is None:
        raise LookupError(f"no training run of {key}: materialize finetuned_model first")
    from zipfit_pipeline.engine.evaluation import device_for_run, heldout_loss  # torch only where a model runs

    model, tokenizer = load_model_and_tokenizer(checkpoint_to_load(key, run["checkpoint"], base_model, models_dir))
    model.to(device_for_run())
    texts = store.target_texts(key.target, "test")
    loss, tokens = heldout_loss(model, tokenizer, texts, max_length, batch_size)
    store.record_eval(key, run["run_id"], run["selection_version"], loss, tokens)
    log(f"{key}: test loss {loss:.4f} over {tokens} tokens")
    return EvalResult(key, run["run_id"], run["selection_version"], loss, tokens, len(texts), run["train_tokens"])
