"""Dagster Definitions built from the project file (ZIPFIT_CONFIG, default ./zipfit.yaml)."""

from __future__ import annotations

import dagster as dg

from zipfit_pipeline.config import ProjectConfig, config_path, load_project
from zipfit_pipeline.orchestration.assets.evaluate import build_evaluation_assets
from zipfit_pipeline.orchestration.assets.ingest import build_ingest_assets
from zipfit_pipeline.orchestration.assets.report import build_report_assets
from zipfit_pipeline.orchestration.assets.score import build_scoring_assets
from zipfit_pipeline.orchestration.assets.select import build_selection_assets
from zipfit_pipeline.orchestration.assets.train import build_training_assets
from zipfit_pipeline.orchestration.automation import build_automation
from zipfit_pipeline.orchestration.partitions import ProjectPartitions, project_partitions
from zipfit_pipeline.orchestration.resources import ProjectResource, StoreResource


def build_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    builders = (
        build_ingest_assets,
        build_scoring_assets,
        build_selection_assets,
        build_training_assets,
        build_evaluation_assets,
        build_report_assets,
    )
    return [asset for build in builders for asset in build(config, partitions)]


def build_resources(config: ProjectConfig, config_file: str) -> dict[str, dg.ConfigurableResource]:
    return {
        "project": ProjectResource(config_path=config_file),
        "store": StoreResource(path=str(config.resolve(config.store)), owner=str(config.file or "")),
    }


def build_definitions(config_file: str | None = None, project: ProjectConfig | None = None) -> dg.Definitions:
    """The definitions of the project file `config_file` (default: ZIPFIT_CONFIG, else ./zipfit.yaml); `project`:
    that file as already read, so that a command reads it once."""
    file = str(config_file or config_path())
    config = project or load_project(file)
    partitions = project_partitions(config)
    sensors, schedules, jobs = build_automation(config, partitions)
    return dg.Definitions(
        assets=build_assets(config, partitions),
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources=build_resources(config, file),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded when Dagster loads the code location, so importing this module needs no project file."""
    return build_definitions()
