"""The project file and the DuckDB store as Dagster resources, so deployments configure them, not code."""

from __future__ import annotations

import dagster as dg

from zipfit_pipeline.engine.core.store import Store


class ProjectResource(dg.ConfigurableResource):
    """The project file these definitions were built from. Assets use the copy that built them; tools that run the
    definitions (`zipfit materialize`) read its path, e.g. to register the sources as partitions first."""

    config_path: str


class StoreResource(dg.ConfigurableResource):
    """The DuckDB file that holds documents, scores, selections, runs and eval losses."""

    path: str
    owner: str = ""  # the project file, recorded in a store this resource creates (see `ownership.py`)

    def open(self) -> Store:
        return Store(self.path, owner=self.owner or None)
