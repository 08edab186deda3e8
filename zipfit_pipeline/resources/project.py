"""The project file and the DuckDB store as Dagster resources, so deployments configure them, not code."""

from __future__ import annotations

import dagster as dg

from zipfit_pipeline.config import ProjectConfig, load_project
from zipfit_pipeline.engine.store import Store


class ProjectResource(dg.ConfigurableResource):
    """The validated project file (sources, targets, models and settings)."""

    config_path: str

    def load(self) -> ProjectConfig:
        return load_project(self.config_path)


class StoreResource(dg.ConfigurableResource):
    """The DuckDB file that holds documents, scores, selections, runs and eval losses."""

    path: str

    def open(self) -> Store:
        return Store(self.path)
