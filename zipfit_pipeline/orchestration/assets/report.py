"""Report stage: ZIP-FIT against the baselines for one model and target, over seeds, as tables and three plots."""

import base64
from pathlib import Path

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.report import build_report, render_markdown
from zipfit_pipeline.orchestration.asset_keys import COMPARISON_REPORT, EVAL_LOSS, PASS_AT_K
from zipfit_pipeline.orchestration.assets.versions import code_version, current_inputs
from zipfit_pipeline.orchestration.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.orchestration.partitions import (
    ProjectPartitions,
    configured_runs,
    finetunes_of_model,
    model_and_target,
)
from zipfit_pipeline.orchestration.resources import StoreResource
from zipfit_pipeline.orchestration.store_state import record_partition_run

GROUP = "report"


def report_dir(config: ProjectConfig, model: str, target: str) -> Path:
    return config.artifacts_dir() / "reports" / model / target


def inline_png(path: Path) -> str:
    """Markdown that shows a PNG inside the Dagster UI's metadata panel."""
    return f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def build_report_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=COMPARISON_REPORT,
        partitions_def=partitions.model_target,
        deps=[
            dg.AssetDep(name, partition_mapping=finetunes_of_model(partitions))
            for name in (EVAL_LOSS, *([PASS_AT_K] if config.pass_at_k.enabled else []))
        ],
        group_name=GROUP,
        code_version=code_version(COMPARISON_REPORT, config),
        kinds={"duckdb"},
        automation_condition=ON_NEW_DATA_OR_CODE,
        description="Mean test CE over seeds with 95% intervals per selection method and budget, ZIP-FIT paired with "
        "each baseline, test CE against training tokens, against the budget and against the training set's alignment "
        "(R² per budget), each selection's sources and text lengths; only current evals of configured runs; as "
        "metadata and as files under <artifacts>/reports/<model>/<target>/.",
    )
    def comparison_report(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        model, target = model_and_target(context.partition_key)
        db = store.open()
        report, plots = build_report(
            db,
            model,
            target,
            configured_runs(config, model, target),
            report_dir(config, model, target),
            config.selection,
            current_inputs(config, model),
        )
        table = render_markdown(report)
        context.log.info(f"{report.title}:\n{table}")
        if report.excluded:
            context.log.warning(f"{report.title}: left out: {'; '.join(report.excluded)}")
        figures = report.as_metadata()
        return dg.MaterializeResult(
            metadata={
                "table": dg.MetadataValue.md(table),
                **{name: dg.MetadataValue.json(value) for name, value in figures.items()},
                "alignment_vs_loss_r2": report.alignment_r2(),
                **{name: dg.MetadataValue.md(inline_png(path)) for name, path in plots.items()},
                "report": dg.MetadataValue.path(str(plots["loss_vs_tokens"].parent / "report.md")),
                **record_partition_run(context, db, config),
            }
        )

    return [comparison_report]
