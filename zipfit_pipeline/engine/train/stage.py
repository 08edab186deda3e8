"""Train stage: fine-tune a model on one stored selection with one seed, and record the run and its checkpoint.

The texts are read by the content hashes the selection recorded, so a fine-tune trains on exactly what was
selected, whatever happened to the source rows since. Each run saves into a checkpoint folder of its own
(written as `.partial`, renamed when complete) and records it in the store before the previous run's folder is
removed: wherever a run is killed, the store points at one complete checkpoint whose figures are its own. The step
holds a GPU of its own while it trains (`devices.claimed_device`).

A fine-tune is addressed by content too: when the store's current run of a key trained on the same selected texts
with the same settings and model, and its checkpoint is on disk, asking again reuses it instead of training the
same model twice (adding a method or an ablation changes the model × target selection partition, not the texts of
the other selections).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zipfit_pipeline.engine import ENGINE_VERSION
from zipfit_pipeline.engine.core.artifacts import artifact_identity
from zipfit_pipeline.engine.core.hashing import content_hash, digest, set_hash
from zipfit_pipeline.engine.core.runs import WHOLE_POOL, RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.select import SelectTables, is_budgeted
from zipfit_pipeline.engine.train.checkpoints import (
    check_disk,
    checkpoint_dir,
    checkpoints_to_write,
    remove_other_checkpoints,
)
from zipfit_pipeline.engine.train.settings import TrainingSettings
from zipfit_pipeline.engine.train.tables import TrainTables


@dataclass(frozen=True)
class FinetuneResult:
    key: RunKey
    run_id: str
    checkpoint: str
    selection_version: str | None  # None for the base model, which trains on nothing
    documents: int
    train_tokens: int
    steps: int
    final_train_loss: float
    seconds: float
    device: str
    test_curve: list[tuple[int, float]] = field(default_factory=list)
    reused: bool = False  # the store's current run was already this fine-tune


def training_version(settings: TrainingSettings, pretrained: str, base: bool = False) -> str:
    """What decides a fine-tune's weights besides its texts and seed: the engine, the pretrained model by content
    (weights and tokenizer files, not the path that names them) and the settings that change the result (not the
    seeds list, where it runs, or whether weights are kept). The base model's is its content alone."""
    settings_read = None if base else settings.result_settings()
    return digest(ENGINE_VERSION, artifact_identity(pretrained), settings_read)[:16]


def finetune_selection(
    store: Store,
    key: RunKey,
    pretrained: str,
    settings: TrainingSettings,
    models_dir: Path,
    run_id: str,
    log: Callable[[str], None] = print,
    sweep: Sequence[RunKey] = (),
    reuse: bool = True,
    all_max_tokens: int | None = None,
) -> FinetuneResult:
    """Fine-tune `pretrained` on the selection of `key` with its seed; `base` records the model as it is.

    `sweep` is every fine-tune of this model the project asks for: before training, the disk their checkpoints still
    need is checked against what is free. With `reuse`, a current run on the same texts and settings is returned.
    `all_max_tokens` (the selection settings' cap of `all`) cuts `all` exactly there, as a budget cuts the others."""
    runs = TrainTables(store)
    if key.is_base:
        return _record_base(runs, key, run_id, training_version(settings, pretrained, base=True), pretrained, reuse)
    selection = SelectTables(store).selection_set(key)
    if selection is None:
        raise LookupError(
            f"there is no selection {key.selection} (seed {key.seed}) of {key.model} on {key.target}: "
            "materialize selections first (an empty threshold keeps nothing: lower it or add sources)"
        )
    version = training_version(settings, pretrained)
    # A budget is a token count; a threshold trains on everything it kept, `all` on all of it up to its cap.
    budget = key.budget if is_budgeted(key.method) else selection["tokens"]
    if key.method == WHOLE_POOL and all_max_tokens is not None:
        budget = min(budget, all_max_tokens)
    reusable = _reusable_run(runs, key, selection, version, budget) if reuse else None
    if reusable is not None:
        log(f"{key}: the current fine-tune {reusable.run_id} trained on this selection with these settings; reusing it")
        return reusable
    texts = selected_texts(store, key)
    ingested = IngestTables(store)
    test_texts, test_hash = ingested.target_texts(key.target, "test"), ingested.split_hash(key.target, "test")
    # torch is imported where a model runs: loading the definitions, ingestion and scoring never pay for it (~250 MB).
    from zipfit_pipeline.engine.core.devices import claimed_device, gpu_count
    from zipfit_pipeline.engine.train.heldout import heldout_loss
    from zipfit_pipeline.engine.train.loop import finetune
    from zipfit_pipeline.engine.train.trainable import checkpoint_bytes, save_trained, trainable_model

    with claimed_device(settings.device, models_dir.parent / "devices", log) as device:
        model, tokenizer = trainable_model(pretrained, settings, device, key.seed)
        check_disk(
            models_dir,
            checkpoint_bytes(model, settings, device),
            checkpoints_to_write(store, sweep or [key]),
            settings.keep_checkpoints,
            at_once=max(1, gpu_count()),
        )

        def evaluate(m: Any) -> float:
            return heldout_loss(m, tokenizer, test_texts, settings.eval_max_length, settings.eval_batch_size)[0]

        log(
            f"fine-tuning {key.model} on {key.target} / {key.label()}: {len(texts)} documents, "
            f"{budget} tokens, {device}"
        )
        trained = finetune(model, tokenizer, texts, budget, settings, key.seed, device, evaluate, log)
        folder = checkpoint_dir(models_dir, key)
        runs.own_checkpoint_folder(key, run_id)
        output = save_trained(model, tokenizer, folder / run_id, settings, device)
    result = FinetuneResult(
        key,
        run_id,
        str(output),
        set_hash([content_hash(t) for t in texts]),
        len(texts),
        trained.train_tokens,
        trained.steps,
        trained.final_train_loss,
        trained.seconds,
        trained.device,
        trained.test_curve,
    )
    runs.record_training(
        key,
        {**_row(result), "settings_version": version, "curve_test_hash": test_hash, "token_budget": budget},
        {"train": trained.train_curve, "test": trained.test_curve},
    )
    remove_other_checkpoints(runs, folder, keep=output)
    return result


def _record_base(
    runs: TrainTables, key: RunKey, run_id: str, version: str, pretrained: str, reuse: bool
) -> FinetuneResult:
    """The base model trains on nothing: its run is the model's content. The same content keeps the same run (so its
    evals stay current); new weights in the same folder are a new run."""
    row = runs.training_run(key)
    if reuse and row is not None and row.get("settings_version") == version:
        return FinetuneResult(key, row["run_id"], pretrained, None, 0, 0, 0, float("nan"), 0.0, "none", reused=True)
    result = FinetuneResult(key, run_id, pretrained, None, 0, 0, 0, float("nan"), 0.0, "none")
    runs.record_training(key, {**_row(result), "settings_version": version}, {})
    return result


def _reusable_run(
    runs: TrainTables, key: RunKey, selection: dict[str, Any], version: str, budget: int
) -> FinetuneResult | None:
    """The store's current fine-tune of `key`, if it trained on these texts with these settings and token budget and
    its checkpoint is complete on disk (a released one is not: an eval that needs it again must retrain)."""
    row = runs.training_run(key)
    if (
        row is None
        or row["selection_version"] != selection["version"]
        or row.get("settings_version") != version
        or row.get("token_budget") != budget
        or row.get("released")
        or not Path(row["checkpoint"]).is_dir()
    ):
        return None
    return FinetuneResult(
        key,
        row["run_id"],
        row["checkpoint"],
        row["selection_version"],
        selection["documents"],
        row["train_tokens"],
        row["steps"],
        row["final_train_loss"],
        row["seconds"],
        row["device"],
        runs.loss_curve(row["run_id"], "test"),
        reused=True,
    )


def selected_texts(store: Store, key: RunKey) -> list[str]:
    """The texts a selection chose, found by content hash, in rank order.

    Rows move when a source is re-ingested, hashes do not: a fine-tune trains on exactly what was selected.
    A selected text that no document holds any more fails, rather than training on something else.
    """
    hashes = SelectTables(store).selected_hashes(key)
    texts = IngestTables(store).texts_or_none(hashes)
    gone = [h for h, text in zip(hashes.to_pylist(), texts) if text is None]
    if gone:
        raise LookupError(
            f"the selection {key} chose {len(gone)} texts that no stored document holds any more (a source "
            f"was re-ingested or removed since, e.g. text {gone[0]}): materialize selections again"
        )
    return [text for text in texts if text is not None]


def _row(result: FinetuneResult) -> dict[str, object]:
    return {
        "run_id": result.run_id,
        "selection_version": result.selection_version,
        "checkpoint": result.checkpoint,
        "train_tokens": result.train_tokens,
        "steps": result.steps,
        "final_train_loss": result.final_train_loss,
        "seconds": result.seconds,
        "device": result.device,
    }
