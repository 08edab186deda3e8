"""Eval stage: test cross-entropy per token on the target's held-out split, for the base model and every fine-tune,
and (when `pass_at_k.enabled`) pass@k of the code each one writes for the held-out problems."""

import math
from dataclasses import asdict

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.core.hashing import digest
from zipfit_pipeline.engine.evaluate import evaluate_run, measure_run, read_problems
from zipfit_pipeline.orchestration.asset_keys import EVAL_LOSS, FINETUNED_MODEL, PASS_AT_K
from zipfit_pipeline.orchestration.assets.checks import partition_check
from zipfit_pipeline.orchestration.assets.versions import code_version
from zipfit_pipeline.orchestration.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.orchestration.partitions import ProjectPartitions, run_key
from zipfit_pipeline.orchestration.resources import StoreResource
from zipfit_pipeline.orchestration.store_state import record_partition_run

GROUP = "evaluate"
FINITE_TEST_LOSS = "finite_test_loss"


def build_evaluation_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    settings = config.training

    @dg.asset(
        name=EVAL_LOSS,
        partitions_def=partitions.finetune_target,
        deps=[FINETUNED_MODEL],
        group_name=GROUP,
        code_version=code_version(EVAL_LOSS, config),
        kinds={"pytorch", "duckdb"},
        pool="accelerator",
        automation_condition=ON_NEW_DATA_OR_CODE,
        check_specs=[
            partition_check(
                FINITE_TEST_LOSS,
                EVAL_LOSS,
                partitions.finetune_target,
                blocking=True,
                description="The test loss is finite and positive (the report never reads a NaN).",
            )
        ],
        description="Mean token cross-entropy (float32) of the current checkpoint of a fine-tune, or of the base "
        "model, on the target's held-out test split; recorded with the training run and "
        "selection version it measured.",
    )
    def eval_loss(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        key = run_key(context.partition_key)
        db = store.open()
        result = evaluate_run(
            db,
            key,
            config.model_path(config.model(key.model)),
            config.models_dir(),
            settings,
            log=context.log.info,
            with_pass_at_k=config.pass_at_k.enabled,
            settings_version=code_version(EVAL_LOSS, config),
        )
        finite = math.isfinite(result.test_loss) and result.test_loss > 0
        return dg.MaterializeResult(
            metadata={
                "test_loss": result.test_loss,
                "test_tokens": result.test_tokens,
                "test_documents": result.test_documents,
                "train_tokens": result.train_tokens,
                "training_run": result.run_id,
                "selection_version": result.selection_version or "none (base model)",
                **record_partition_run(context, db, config),
            },
            # What the report reads: the figure and what it measured (a new test split is new data, even where the
            # checkpoint and the loss are unchanged).
            data_version=dg.DataVersion(digest(result.run_id, result.test_loss, asdict(result.measured_with))),
            check_results=[
                dg.AssetCheckResult(
                    check_name=FINITE_TEST_LOSS, passed=finite, metadata={"test_loss": result.test_loss}
                )
            ],
        )

    if not config.pass_at_k.enabled:
        return [eval_loss]
    pass_settings = config.pass_at_k

    @dg.asset(
        name=PASS_AT_K,
        partitions_def=partitions.finetune_target,
        deps=[FINETUNED_MODEL],
        group_name=GROUP,
        code_version=code_version(PASS_AT_K, config),
        kinds={"pytorch", "duckdb"},
        pool="accelerator",
        automation_condition=ON_NEW_DATA_OR_CODE,
        description="pass@k of the current checkpoint on the target's held-out problems: completions generated in "
        "batches, each run with the problem's tests in a sandbox (no network, limits, a process per sample).",
    )
    def pass_at_k(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        key = run_key(context.partition_key)
        target = config.target(key.target)
        problems = read_problems(config.reader(target), target.test_rows, pass_settings)
        db = store.open()
        result = measure_run(
            db,
            key,
            problems,
            pass_settings,
            settings,
            config.model_path(config.model(key.model)),
            config.models_dir(),
            log=context.log.info,
            settings_version=code_version(PASS_AT_K, config),
        )
        return dg.MaterializeResult(
            data_version=dg.DataVersion(
                digest(result.run_id, result.values, result.measured_with and asdict(result.measured_with))
            ),
            metadata={
                **{f"pass@{k}": value for k, value in result.values.items()},
                "samples": result.samples,
                "problems": len(problems),
                "problems_solved": sum(c > 0 for c in result.passed),
                **record_partition_run(context, db, config),
            },
        )

    return [eval_loss, pass_at_k]
