"""Eval stage: test cross-entropy per token on the target's held-out split, for the base model and every fine-tune."""


from pathlib import Path

import dagster as dg

from zipfit_pipeline.assets._versions import code_version
from zipfit_pipeline.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.evaluation import device_for_run, heldout_loss
from zipfit_pipeline.engine.models import load_model_and_tokenizer
from zipfit_pipeline.partitions import BASE, ProjectPartitions, model_and_selection
from zipfit_pipeline.resources import ProjectResource, StoreResource

GROUP = "eval"


def checkpoint_to_evaluate(config: ProjectConfig, model: str, method: str, recorded: str) -> str:
    """The base model from the project file; a fine-tune only from this project's checkpoint folder, so that a
    store copied from elsewhere (or edited) cannot make eval load a model from an arbitrary path."""
    if method == BASE:
        return config.model_path(config.model(model))
    checkpoint = Path(recorded).resolve()
    models = config.resolve(config.artifacts) / "models"
    if models not in checkpoint.parents:
        raise RuntimeError(f"refusing to load {checkpoint}: fine-tuned checkpoints are loaded only from {models}")
    if not checkpoint.is_dir():
        raise RuntimeError(f"the checkpoint {checkpoint} is gone: materialize finetuned_model again")
    return str(checkpoint)


def build_evaluation_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.finetune_target,
        deps=["finetuned_model"],
        group_name=GROUP,
        code_version=code_version("eval_loss", config.training.eval_max_length),
        kinds={"pytorch", "duckdb"},
        pool="accelerator",
        automation_condition=ON_NEW_DATA_OR_CODE,
        description="Mean token cross-entropy of the fine-tuned (or base) model on the target's held-out test split.",
    )
    def eval_loss(context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource) -> dg.MaterializeResult:
        model_name, selection, key = model_and_selection(context.partition_key)
        config = project.load()
        db = store.open()
        run = db.training_run(model_name, selection)
        if run is None:
            raise RuntimeError(f"no training run for {model_name} / {selection}: materialize finetuned_model first")
        model, tokenizer = load_model_and_tokenizer(checkpoint_to_evaluate(config, model_name, key.method, run["checkpoint"]))
        model.to(device_for_run())
        texts = db.target_texts(key.target, "test")
        loss, tokens = heldout_loss(model, tokenizer, texts, config.training.eval_max_length, config.training.eval_batch_size)
        db.record_eval(model_name, selection, key.target, loss, tokens)
        context.log.info(f"{model_name} / {selection}: test loss {loss:.4f} over {tokens} tokens")
        return dg.MaterializeResult(
            metadata={"test_loss": loss, "test_tokens": tokens, "test_documents": len(texts), "train_tokens": run["train_tokens"]}
        )

    return [eval_loss]
