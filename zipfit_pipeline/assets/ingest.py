"""Ingest stage: source datasets and target tasks read through the engine's loaders into the store."""


import dagster as dg

from zipfit_pipeline.assets._versions import code_version, data_version
from zipfit_pipeline.config import DatasetSpec, ProjectConfig
from zipfit_pipeline.engine.loaders import InputError, Record, RecordReader, chunk_records, content_hash, set_hash
from zipfit_pipeline.partitions import ProjectPartitions
from zipfit_pipeline.resources import ProjectResource, StoreResource

GROUP = "ingest"
PREVIEW_CHARS = 160


def read_records(context: dg.AssetExecutionContext, config: ProjectConfig, spec: DatasetSpec) -> tuple[list[Record], RecordReader]:
    """Every usable record, read in full before anything is written; skipped rows are logged by reason."""
    reader = RecordReader(
        path=config.input_path(spec), text_field=spec.text_field, template=spec.template, id_field=spec.id_field,
        format=spec.format, query=spec.query, split=spec.split, cache_dir=str(config.resolve(config.cache) / "datasets"),
        max_chars=spec.max_chars,
    )
    records = list(reader)
    if reader.skipped:
        context.log.warning(f"{spec.name}: skipped rows of {reader.path}: {reader.skip_summary()}")
    return records, reader


def skip_metadata(reader: RecordReader) -> dict[str, object]:
    return {"skipped": dict(reader.skipped), "first_skipped_row": dict(reader.first_skipped)}


def preview(texts: list[str], n: int = 3) -> str:
    return "\n".join(f"- `{t[:PREVIEW_CHARS]!r}`" for t in texts[:n])


def build_ingest_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.source,
        group_name=GROUP,
        code_version=code_version("source_documents"),
        kinds={"duckdb"},
        pool="duckdb_writer",
        description="One row per usable example of a source dataset: id, text, content hash, bytes. "
        "Rows without a usable text are skipped and counted by reason.",
    )
    def source_documents(
        context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource
    ) -> dg.MaterializeResult:
        config = project.load()
        spec = config.source(context.partition_key)
        records, reader = read_records(context, config, spec)
        rows_read = len(records)
        if spec.chunk_chars:
            records = list(chunk_records(records, spec.chunk_chars))
        if not records:
            raise InputError(f"{reader.path}: no usable rows (skipped: {reader.skip_summary()}); the stored documents are kept")
        store.open().replace_documents(spec.name, records, dict(reader.skipped))
        hashes = [content_hash(r.text) for r in records]
        return dg.MaterializeResult(
            metadata={
                "rows": rows_read,
                "documents": len(records),
                "chunk_chars": spec.chunk_chars or 0,
                "distinct_texts": len(set(hashes)),
                "bytes": sum(len(r.text.encode("utf-8")) for r in records),
                **skip_metadata(reader),
                "preview": dg.MetadataValue.md(preview([r.text for r in records])),
            },
            data_version=dg.DataVersion(data_version([r.row_index for r in records], hashes)),
        )

    @dg.asset(
        partitions_def=partitions.target,
        group_name=GROUP,
        code_version=code_version("target_documents"),
        kinds={"duckdb"},
        pool="duckdb_writer",
        description="A target task's alignment set (what sources are scored against) and its held-out test split.",
    )
    def target_documents(
        context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource
    ) -> dg.MaterializeResult:
        config = project.load()
        spec = config.target(context.partition_key)
        records, reader = read_records(context, config, spec)
        splits = {
            "alignment": [r for r in records if spec.alignment_rows[0] <= r.row_index < spec.alignment_rows[1]],
            "test": [r for r in records if spec.test_rows[0] <= r.row_index < spec.test_rows[1]],
        }
        for split, rows in splits.items():
            if not rows:
                raise InputError(f"{reader.path}: the {split} split (rows {getattr(spec, split + '_rows')}) has no usable "
                                 f"rows (skipped: {reader.skip_summary()}); the stored target is kept")
        store.open().replace_targets(spec.name, splits)
        hashes = {split: [content_hash(r.text) for r in rows] for split, rows in splits.items()}
        return dg.MaterializeResult(
            metadata={
                "alignment_rows": len(splits["alignment"]),
                "test_rows": len(splits["test"]),
                "target_set_hash": set_hash(hashes["alignment"]),
                **skip_metadata(reader),
                "preview": dg.MetadataValue.md(preview([r.text for r in splits["alignment"]], 1)),
            },
            data_version=dg.DataVersion(data_version(hashes)),
        )

    return [source_documents, target_documents]
