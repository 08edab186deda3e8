"""Train stage: fine-tune each model on each selection (one epoch, exact token budget), GPU or CPU.

Each run saves its checkpoint into a folder of its own (written as `.partial`, renamed when complete) and
records it in the store before the previous run's folder is removed. Wherever a run is killed, the store
points at one complete checkpoint whose recorded figures are its own. The `<model>.base` finetune stands
for the model before fine-tuning.
"""


import shutil
from pathlib import Path

import dagster as dg

from zipfit_pipeline.assets._versions import code_version
from zipfit_pipeline.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.evaluation import device_for_run, heldout_loss
from zipfit_pipeline.engine.models import load_model_and_tokenizer, save_checkpoint
from zipfit_pipeline.engine.selection import THRESHOLD
from zipfit_pipeline.engine.training import finetune
from zipfit_pipeline.partitions import BASE, ProjectPartitions, model_and_selection, selection_of_finetune, target_of_finetune
from zipfit_pipeline.resources import ProjectResource, StoreResource

GROUP = "train"


def checkpoint_dir(config: ProjectConfig, model: str, selection: str) -> Path:
    """The folder of a fine-tune's checkpoints: one subfolder per run, the recorded one kept."""
    return config.resolve(config.artifacts) / "models" / model / selection


def remove_other_checkpoints(folder: Path, keep: Path) -> None:
    """Older runs' checkpoints and a killed run's partial one, once the store points at `keep`."""
    for path in folder.iterdir():
        if path != keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def build_training_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.finetune_target,
        deps=[
            dg.AssetDep("selections", partition_mapping=selection_of_finetune(partitions)),
            dg.AssetDep("target_documents", partition_mapping=target_of_finetune()),
        ],
        group_name=GROUP,
        code_version=code_version("finetuned_model", config.training.model_dump()),
        kinds={"pytorch"},
        pool="accelerator",
        automation_condition=ON_NEW_DATA_OR_CODE,
        tags={"zipfit/stage": "train"},
        description="A causal LM fine-tuned for one epoch on a selection (checkpoint via save_pretrained), "
        "with its training-loss curve and test loss at intervals; `<model>.base` is the untouched model.",
    )
    def finetuned_model(context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource) -> dg.MaterializeResult:
        model_name, selection, key = model_and_selection(context.partition_key)
        config = project.load()
        db = store.open()
        pretrained = config.model_path(config.model(model_name))
        if key.method == BASE:
            db.record_training(model_name, selection, _run_row(pretrained, 0, 0, float("nan"), 0.0, "none"), {})
            return dg.MaterializeResult(metadata={"checkpoint": dg.MetadataValue.path(pretrained), "train_tokens": 0})
        assert key.budget is not None
        texts = db.selected_texts(model_name, key.target, key.method, key.budget)
        if not texts:
            raise RuntimeError(f"the selection {selection} is empty: lower the threshold or add sources")
        # A budget is a token count; a threshold selection trains on everything it kept.
        budget = db.selection_tokens(model_name, key.target, key.method, key.budget) if key.method == THRESHOLD else key.budget
        test_texts = db.target_texts(key.target, "test")
        device = device_for_run()
        model, tokenizer = load_model_and_tokenizer(pretrained)
        settings = config.training

        def evaluate(m: object) -> float:
            return heldout_loss(m, tokenizer, test_texts, settings.eval_max_length, settings.eval_batch_size)[0]

        context.log.info(f"fine-tuning {model_name} on {selection}: {len(texts)} documents, {budget} tokens, {device}")
        result = finetune(model, tokenizer, texts, budget, settings, device, evaluate, context.log.info)
        folder = checkpoint_dir(config, model_name, selection)
        output = save_checkpoint(model, tokenizer, folder / context.run_id)
        row = _run_row(str(output), result.train_tokens, result.steps, result.final_train_loss, result.seconds, result.device)
        db.record_training(model_name, selection, row, {"train": result.train_curve, "test": result.test_curve})
        remove_other_checkpoints(folder, keep=output)
        return dg.MaterializeResult(
            metadata={
                "checkpoint": dg.MetadataValue.path(str(output)),
                "documents": len(texts),
                "train_tokens": result.train_tokens,
                "steps": result.steps,
                "final_train_loss": result.final_train_loss,
                "tokens_per_second": round(result.train_tokens / result.seconds, 1) if result.seconds else 0.0,
                "device": result.device,
                "test_loss_curve": dg.MetadataValue.json([{"tokens": t, "test_loss": v} for t, v in result.test_curve]),
            }
        )

    return [finetuned_model]


def _run_row(checkpoint: str, tokens: int, steps: int, loss: float, seconds: float, device: str) -> dict[str, object]:
    return {"checkpoint": checkpoint, "train_tokens": tokens, "steps": steps, "final_train_loss": loss,
            "seconds": seconds, "device": device}
