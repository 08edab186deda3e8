"""Report stage: ZIP-FIT against the baselines for one model and target, as a table and two plots."""


import base64
from pathlib import Path

import dagster as dg

from zipfit_pipeline.assets._versions import code_version
from zipfit_pipeline.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.report import comparison_table, load_results, plot_alignment_vs_loss, plot_loss_vs_tokens
from zipfit_pipeline.engine.scoring import target_set_hash
from zipfit_pipeline.partitions import ProjectPartitions, finetunes_of_model, model_and_target
from zipfit_pipeline.resources import ProjectResource, StoreResource

GROUP = "report"


def report_dir(config: ProjectConfig, model: str, target: str) -> Path:
    return config.resolve(config.artifacts) / "reports" / model / target


def inline_png(path: Path) -> str:
    """Markdown that shows a PNG inside the Dagster UI's metadata panel."""
    return f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def build_report_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.model_target,
        deps=[dg.AssetDep("eval_loss", partition_mapping=finetunes_of_model(partitions)), "selections"],
        group_name=GROUP,
        code_version=code_version("comparison_report"),
        kinds={"duckdb"},
        automation_condition=ON_NEW_DATA_OR_CODE,
        description="Test CE of each selection method and budget against the base model and the best baseline, "
        "test CE against training tokens, and test CE against the training set's alignment (with R²); "
        "as metadata and as files under <artifacts>/reports/<model>/<target>/.",
    )
    def comparison_report(context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource) -> dg.MaterializeResult:
        model, target = model_and_target(context.partition_key)
        config = project.load()
        db = store.open()
        scoring = config.scoring
        scoring_seconds = db.scoring_seconds([s.name for s in config.all_sources()], target_set_hash(db.target_texts(target, "alignment")),
                                             scoring.compressor, scoring.level)
        results = load_results(db, model, target, scoring_seconds)
        rows, table = comparison_table(results)
        folder = report_dir(config, model, target)
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{model} on {target}"
        curves = plot_loss_vs_tokens(results, title, folder / "loss_vs_tokens.png")
        fit, r2 = plot_alignment_vs_loss(results, title, folder / "alignment_vs_loss.png")
        (folder / "report.md").write_text(f"# {title}\n\n{table}\n\n![]({curves.name})\n\n![]({fit.name})\n", encoding="utf-8")
        context.log.info(f"{title}:\n{table}")
        return dg.MaterializeResult(
            metadata={
                "table": dg.MetadataValue.md(table),
                "rows": dg.MetadataValue.json(rows),
                "alignment_vs_loss_r2": r2,
                "loss_vs_tokens": dg.MetadataValue.md(inline_png(curves)),
                "alignment_vs_loss": dg.MetadataValue.md(inline_png(fit)),
                "report": dg.MetadataValue.path(str(folder / "report.md")),
            }
        )

    return [comparison_report]
