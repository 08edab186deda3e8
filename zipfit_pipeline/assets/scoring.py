"""Score stage: ZIP-FIT alignment of every source document against a target's alignment set, in DuckDB."""


import dagster as dg

from zipfit_pipeline.assets._versions import code_version, data_version
from zipfit_pipeline.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.scoring import score_dataset
from zipfit_pipeline.partitions import ProjectPartitions
from zipfit_pipeline.resources import ProjectResource, StoreResource

GROUP = "score"
QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)


def top_table(texts: list[str], scores: list[float], n: int = 5) -> str:
    """Markdown preview of the best-scored texts."""
    lines = ["| rank | score | text |", "|---:|---:|---|"]
    for rank, (text, score) in enumerate(zip(texts[:n], scores[:n]), start=1):
        snippet = text[:120].replace("|", "\\|").replace("\n", "⏎")
        lines.append(f"| {rank} | {score:.4f} | `{snippet}` |")
    return "\n".join(lines)


def build_scoring_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    scoring = config.scoring

    @dg.asset(
        partitions_def=partitions.source_target,
        deps=["source_documents", "target_documents"],
        group_name=GROUP,
        code_version=code_version("alignment_scores", scoring.compressor, scoring.level),
        kinds={"duckdb"},
        pool="duckdb_writer",
        automation_condition=ON_NEW_DATA_OR_CODE,
        description="Alignment of each source text with the target's alignment set: mean over targets of "
        "1 - NCD with gzip/lz4/zstd, one row per (content hash, target-set hash, compressor, level). "
        "Only texts without a stored score are computed; each chunk is committed on its own.",
    )
    def alignment_scores(
        context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource
    ) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        source, target = keys["source"], keys["target"]
        settings = project.load().scoring
        db = store.open()
        targets = db.target_texts(target, "alignment")
        report = score_dataset(
            db, source, targets, settings.compressor, settings.level, settings.chunk_size,
            settings.worker_count(), progress=context.log.info, backend=settings.backend, ray_address=settings.ray_address,
        )
        summary = db.score_summary(source, report.target_hash, settings.compressor, settings.level, QUANTILES, top_n=5)
        return dg.MaterializeResult(
            metadata={
                "documents": summary["documents"],
                "distinct_texts": report.distinct_texts,
                "texts_scored": report.scored,
                "texts_reused_from_store": report.reused,
                "pairs_scored": report.pairs_scored,
                "pairs_per_second": round(report.pairs_per_second, 1),
                "targets": report.n_targets,
                "compressor": f"{settings.compressor}-{settings.level}",
                "target_set_hash": report.target_hash,
                "score_quantiles": {f"q{int(q * 100)}": round(v, 6) for q, v in zip(QUANTILES, summary["quantiles"])},
                "mean_score": summary["mean"],
                "top": dg.MetadataValue.md(top_table(summary["top_texts"], summary["top_scores"])),
            },
            data_version=dg.DataVersion(data_version(report.target_hash, settings.compressor, settings.level, summary["digest"])),
        )

    return [alignment_scores]
