"""Train stage: fine-tune each model on each selection once per seed (one epoch, exact token budget), GPU or CPU.

The work is the engine's `finetune_selection`: texts read by the content hashes the selection recorded, shuffled
with the seed, a checkpoint per run recorded before the previous one is removed. A partition whose current run
trained on the same texts with the same settings is not trained again (`retrain: true` in the Launchpad forces
it). `<model>.base` stands for the model before fine-tuning.
"""

import math

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.train import FinetuneResult, finetune_selection
from zipfit_pipeline.orchestration.asset_keys import FINETUNED_MODEL, SELECTIONS
from zipfit_pipeline.orchestration.assets.checks import partition_check
from zipfit_pipeline.orchestration.assets.versions import code_version
from zipfit_pipeline.orchestration.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.orchestration.partitions import (
    ProjectPartitions,
    configured_runs,
    run_key,
    selection_of_finetune,
)
from zipfit_pipeline.orchestration.resources import StoreResource
from zipfit_pipeline.orchestration.store_state import record_partition_run

GROUP = "train"
FINITE_TRAINING_LOSS = "finite_training_loss"


class FinetuneConfig(dg.Config):
    """Launchpad options of a fine-tune."""

    retrain: bool = False  # train again even when the current run trained on these texts with these settings


def finite_loss_check(result: FinetuneResult) -> dg.AssetCheckResult:
    """A diverged fine-tune (NaN or infinite loss) is not evaluated; the base model trains on nothing."""
    finite = result.key.is_base or math.isfinite(result.final_train_loss)
    return dg.AssetCheckResult(
        check_name=FINITE_TRAINING_LOSS,
        passed=finite,
        metadata={"final_train_loss": result.final_train_loss},
        description=None if finite else "the training loss is not finite: lower the learning rate",
    )


def build_training_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    project = config  # `config` in the asset is its Launchpad config (Dagster's name for it)

    @dg.asset(
        name=FINETUNED_MODEL,
        partitions_def=partitions.finetune_target,
        # The selection it trains on; the base model reads none. The pretrained model is a declared input (by
        # content), and the test split its curve points measure is recorded with them (`curve_test_hash`).
        deps=[dg.AssetDep(SELECTIONS, partition_mapping=selection_of_finetune(partitions))],
        group_name=GROUP,
        # Each partition trains with its own seed: adding a seed adds partitions, it does not retrain the others. Where
        # a step runs and whether its weights are kept after its evals change no result.
        code_version=code_version(FINETUNED_MODEL, config),
        kinds={"pytorch"},
        pool="accelerator",
        automation_condition=ON_NEW_DATA_OR_CODE,
        tags={"zipfit/stage": "train"},
        check_specs=[
            partition_check(
                FINITE_TRAINING_LOSS,
                FINETUNED_MODEL,
                partitions.finetune_target,
                blocking=True,
                description="The final training loss is finite (a diverged model is not evaluated).",
            )
        ],
        description="A causal LM fine-tuned for one epoch on a selection with one seed (texts by content hash, in "
        "seeded order; checkpoint via save_pretrained), with its training-loss curve and test loss at intervals; "
        "`<model>.base` is the untouched model.",
    )
    def finetuned_model(
        context: dg.AssetExecutionContext, store: StoreResource, config: FinetuneConfig
    ) -> dg.MaterializeResult:
        key = run_key(context.partition_key)
        pretrained = project.model_path(project.model(key.model))
        db = store.open()
        sweep = [
            run
            for target in project.targets
            for run in configured_runs(project, key.model, target.name, with_base=False)
        ]
        result = finetune_selection(
            db,
            key,
            pretrained,
            project.training,
            project.models_dir(),
            context.run.run_id,
            log=context.log.info,
            sweep=sweep,
            reuse=not config.retrain,
            all_max_tokens=project.selection.all_max_tokens,
        )
        return dg.MaterializeResult(
            metadata={
                "checkpoint": dg.MetadataValue.path(result.checkpoint),
                "seed": key.seed,
                "selection_version": result.selection_version or "none (base model)",
                "documents": result.documents,
                "train_tokens": result.train_tokens,
                "steps": result.steps,
                "final_train_loss": result.final_train_loss,
                "tokens_per_second": round(result.train_tokens / result.seconds, 1) if result.seconds else 0.0,
                "device": result.device,
                "reused": result.reused,
                "test_loss_curve": dg.MetadataValue.json([{"tokens": t, "test_loss": v} for t, v in result.test_curve]),
                **record_partition_run(context, db, project),
            },
            # Each run saves a checkpoint of its own, and evals record which one they measured: a new run is new data.
            data_version=dg.DataVersion(result.run_id),
            check_results=[finite_loss_check(result)],
        )

    return [finetuned_model]
