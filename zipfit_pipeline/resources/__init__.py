"""Configured resources: the project file and the DuckDB store."""

from zipfit_pipeline.resources.project import ProjectResource, StoreResource

__all__ = ["ProjectResource", "StoreResource"]
