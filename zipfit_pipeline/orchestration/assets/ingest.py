"""Ingest stage: source datasets and target tasks read through the engine's loaders into the store."""

from typing import Any

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.ingest import IngestResult, ingest_source, ingest_target
from zipfit_pipeline.orchestration.asset_keys import SOURCE_DOCUMENTS, TARGET_DOCUMENTS
from zipfit_pipeline.orchestration.assets.versions import code_version
from zipfit_pipeline.orchestration.partitions import ProjectPartitions
from zipfit_pipeline.orchestration.resources import StoreResource
from zipfit_pipeline.orchestration.store_state import record_partition_run

GROUP = "ingest"
PREVIEW_CHARS = 160


def preview(texts: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- `{t[:PREVIEW_CHARS]!r}`" for t in texts))


def input_metadata(context: dg.AssetExecutionContext, name: str, result: IngestResult) -> dict[str, Any]:
    """Skipped rows, by reason and first row (logged as a warning so that the run's log says what was left out), and
    the input file's state as it was read."""
    if result.skipped:
        context.log.warning(f"{name}: skipped rows of {result.path}: {result.skip_summary}")
    state = result.input_state
    # The incoming-folder sensor compares `input_signature` with the file now, to re-ingest a file that changed.
    return {
        "skipped": result.skipped,
        "first_skipped_row": result.first_skipped,
        "input_signature": state.signature() if state else "none (not a local file)",
        "input_content_hash": state.content if state else "none",
    }


def build_ingest_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=SOURCE_DOCUMENTS,
        partitions_def=partitions.source,
        group_name=GROUP,
        code_version=code_version(SOURCE_DOCUMENTS, config),
        kinds={"duckdb"},
        pool="duckdb_writer",
        description="One row per usable example of a source dataset: id, text, content hash, bytes. "
        "Rows without a usable text are skipped and counted by reason.",
    )
    def source_documents(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        spec = config.source(context.partition_key)
        db = store.open()
        result = ingest_source(db, spec, config.reader(spec), log=context.log.warning)
        return dg.MaterializeResult(
            metadata={
                "rows": result.rows,
                "documents": result.documents,
                "chunk_chars": spec.chunk_chars or 0,
                "distinct_texts": result.distinct_texts,
                "bytes": result.bytes,
                **input_metadata(context, spec.name, result),
                "preview": preview(result.preview),
                **record_partition_run(context, db, config),
            },
            data_version=dg.DataVersion(result.digest),
        )

    @dg.asset(
        name=TARGET_DOCUMENTS,
        partitions_def=partitions.target,
        group_name=GROUP,
        code_version=code_version(TARGET_DOCUMENTS, config),
        kinds={"duckdb"},
        pool="duckdb_writer",
        description="A target task's alignment set (what sources are scored against) and its held-out test split. "
        "A text in both splits fails the run.",
    )
    def target_documents(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        spec = config.target(context.partition_key)
        db = store.open()
        result = ingest_target(db, spec, config.reader(spec), log=context.log.warning)
        return dg.MaterializeResult(
            metadata={
                "alignment_rows": result.split_sizes["alignment"],
                "test_rows": result.split_sizes["test"],
                "target_set_hash": result.split_hashes["alignment"],
                **input_metadata(context, spec.name, result),
                "preview": preview(result.preview),
                **record_partition_run(context, db, config),
            },
            data_version=dg.DataVersion(result.digest),
        )

    return [source_documents, target_documents]
