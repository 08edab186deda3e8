"""Shared fixtures: a tiny GPT-2 and a small real project built from the demo corpora. Nothing is downloaded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

from projects import (  # noqa: E402
    SmallProject,
    build_lineage_project,
    copy_workspace,
    materialized,
    new_dagster_home,
    write_project,
    write_small_project,
)

from zipfit_pipeline.demo.inputs import build_demo_data  # noqa: E402
from zipfit_pipeline.demo.models import build_tiny_gpt2  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo corpora at full size (400 documents per source), built once per session."""
    return build_demo_data(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def project_file(tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    return write_project(tmp_path / "project", demo_files, tiny_model)


@pytest.fixture(scope="session")
def materialized_project(
    tmp_path_factory: pytest.TempPathFactory, demo_files: dict[str, Path], tiny_model: Path
) -> Path:
    """The lineage project, materialized once: the starting point of every lineage and automation test."""
    return materialized(build_lineage_project(tmp_path_factory.mktemp("lineage"), demo_files, tiny_model))


@pytest.fixture
def workspace(materialized_project: Path, tmp_path: Path) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """A private copy of the materialized project and its Dagster home, opened as a persistent instance."""
    root = copy_workspace(materialized_project, tmp_path / "copy")
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        yield root, instance


@pytest.fixture
def pure_python(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process (and the workers it spawns) scores on the pure-Python path, as an install without the extension."""
    from zipfit_pipeline.engine.score import native

    monkeypatch.setenv("ZIPFIT_NATIVE", "0")
    native.joint_sizes.cache_clear()
    yield
    native.joint_sizes.cache_clear()


@pytest.fixture
def small_project(tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path) -> Iterator[SmallProject]:
    """A fresh one-source, one-target project and its own Dagster home for each test (see `projects.py`)."""
    root = tmp_path / "project"
    write_small_project(root, demo_files, tiny_model)
    with dg.DagsterInstance.from_config(str(new_dagster_home(tmp_path / "dagster_home"))) as instance:
        yield SmallProject(root, instance)
