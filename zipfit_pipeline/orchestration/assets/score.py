"""Score stage: ZIP-FIT alignment of every source document against a target's alignment set, in DuckDB.

The ablations are more score sets of the same partition: each compressor variant against the whole alignment set,
each target subset with the main compressor. Scores are stored per (text, target set, compressor, level), so
adding a variant scores only that variant; the other sets find their scores stored.
"""

from typing import Any

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.core.hashing import digest
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.score import (
    ScoreSet,
    ScoreTables,
    ScoringReport,
    compressor_build,
    golden_mismatches,
    score_dataset,
    score_sets,
    summarize_scores,
)
from zipfit_pipeline.orchestration.asset_keys import ALIGNMENT_SCORES, SOURCE_DOCUMENTS, TARGET_DOCUMENTS
from zipfit_pipeline.orchestration.assets.checks import partition_check
from zipfit_pipeline.orchestration.assets.versions import code_version
from zipfit_pipeline.orchestration.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.orchestration.partitions import ProjectPartitions
from zipfit_pipeline.orchestration.resources import StoreResource
from zipfit_pipeline.orchestration.store_state import record_partition_run

GROUP = "score"
QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)
GOLDEN = "compressor_reproduces_golden_sizes"


def top_table(texts: list[str], scores: list[float], n: int = 5) -> str:
    """Markdown preview of the best-scored texts."""
    lines = ["| rank | score | text |", "|---:|---:|---|"]
    for rank, (text, score) in enumerate(zip(texts[:n], scores[:n]), start=1):
        snippet = text[:120].replace("|", "\\|").replace("\n", "⏎")
        lines.append(f"| {rank} | {score:.4f} | `{snippet}` |")
    return "\n".join(lines)


def golden_check(store: Store, score_set: ScoreSet) -> dg.AssetCheckResult:
    """The build that scored reproduces SPEC.md's golden values; builds are part of the score key, so another
    build's scores (an upgraded interpreter, zlib-ng) are kept apart and never mixed in."""
    mismatches = golden_mismatches(score_set.compressor)
    build = compressor_build(score_set.compressor)
    return dg.AssetCheckResult(
        check_name=GOLDEN,
        passed=not mismatches,
        metadata={
            "build": build,
            "mismatches": dg.MetadataValue.json(mismatches),
            "builds_that_scored_this_target_set": dg.MetadataValue.json(ScoreTables(store).builds(score_set)),
        },
        description=None
        if not mismatches
        else f"{build} does not reproduce the reference's sizes: scores will differ from "
        "zip-fit's on stock zlib (use the interpreter's stock zlib, or another compressor)",
    )


def build_scoring_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    scoring = config.scoring

    @dg.asset(
        name=ALIGNMENT_SCORES,
        partitions_def=partitions.source_target,
        deps=[SOURCE_DOCUMENTS, TARGET_DOCUMENTS],
        group_name=GROUP,
        code_version=code_version(ALIGNMENT_SCORES, config),
        kinds={"duckdb"},
        pool="duckdb_writer",
        automation_condition=ON_NEW_DATA_OR_CODE,
        check_specs=[
            partition_check(
                GOLDEN,
                ALIGNMENT_SCORES,
                partitions.source_target,
                "The compressor build reproduces SPEC.md's golden sizes (stock zlib for gzip).",
            )
        ],
        description="Alignment of each source text with the target's alignment set: mean over targets of "
        "1 - NCD with gzip/lz4/zstd, one row per (content hash, target-set hash, compressor, level, library build). "
        "Only texts without a stored score are computed; finished chunks are committed every few seconds.",
    )
    def alignment_scores(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        source, target = keys["source"], keys["target"]
        db = store.open()
        reports: dict[str, ScoringReport] = {}
        summaries: dict[str, dict[str, Any]] = {}
        targets = IngestTables(db).target_texts(target, "alignment")
        selection = config.selection
        sets = score_sets(targets, scoring, selection.target_subsets, selection.target_subset_seed)
        for score_set in sets:
            if reports:
                context.log.info(score_set.describe())
            reports[score_set.method] = score_dataset(
                db, source, score_set, scoring, progress=context.log.info, compute=config.compute
            )
            summaries[score_set.method] = summarize_scores(
                db, source, score_set, QUANTILES, top_n=0 if summaries else 5
            )
        report, summary = next(iter(reports.values())), next(iter(summaries.values()))
        ablations = {
            method: {
                "texts_scored": r.scored,
                "pairs_scored": r.pairs_scored,
                "seconds": round(r.seconds, 2),
                "targets": r.n_targets,
                "mean_score": summaries[method]["mean"],
            }
            for method, r in list(reports.items())[1:]
        }
        return dg.MaterializeResult(
            metadata={
                "documents": summary["documents"],
                "distinct_texts": report.distinct_texts,
                "texts_scored": report.scored,
                "texts_reused_from_store": report.reused,
                "pairs_scored": report.pairs_scored,
                "code_path": report.code_path,
                "pairs_per_second": round(report.pairs_per_second, 1),
                "targets": report.n_targets,
                "compressor": f"{scoring.compressor}-{scoring.level}",
                "build": compressor_build(scoring.compressor),
                "target_set_hash": report.target_hash,
                "score_quantiles": {f"q{int(q * 100)}": round(v, 6) for q, v in zip(QUANTILES, summary["quantiles"])},
                "mean_score": summary["mean"],
                "top": dg.MetadataValue.md(top_table(summary["top_texts"], summary["top_scores"])),
                **({"ablations": dg.MetadataValue.json(ablations)} if ablations else {}),
                **record_partition_run(context, db, config),
            },
            data_version=dg.DataVersion(
                digest(
                    report.target_hash,
                    scoring.compressor,
                    scoring.level,
                    *(each["digest"] for each in summaries.values()),
                )
            ),
            check_results=[golden_check(db, sets[0])],
        )

    return [alignment_scores]
