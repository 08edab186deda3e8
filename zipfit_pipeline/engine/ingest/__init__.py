"""Ingest: read source datasets and target tasks (JSONL, CSV, Parquet, text folders, Hugging Face, DuckDB) and
store them by content hash, replacing a dataset at once; unusable rows are skipped and counted by reason.

Settings: `settings.py` (each source's and target's entry in the project file). Tables: `tables.py`.
"""

from zipfit_pipeline.engine.ingest.file_state import FileState, stat_signature
from zipfit_pipeline.engine.ingest.readers import InputError
from zipfit_pipeline.engine.ingest.records import FILE_FORMATS, Record, RecordReader, template_fields
from zipfit_pipeline.engine.ingest.settings import DatasetSpec, IncomingSettings, TargetSpec, incoming_name
from zipfit_pipeline.engine.ingest.stage import IngestResult, ingest_source, ingest_target
from zipfit_pipeline.engine.ingest.tables import IngestTables

__all__ = [
    "FILE_FORMATS",
    "DatasetSpec",
    "FileState",
    "IncomingSettings",
    "IngestResult",
    "IngestTables",
    "InputError",
    "Record",
    "RecordReader",
    "TargetSpec",
    "ingest_source",
    "incoming_name",
    "ingest_target",
    "stat_signature",
    "template_fields",
]
