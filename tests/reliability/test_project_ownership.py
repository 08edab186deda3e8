"""A store and an artifacts folder belong to one project: a second project pointing at them is refused, naming the
owner, unless it takes them over; a moved or copied project keeps working; checkpoint clean-up deletes only the run
folders its own store recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from projects import write_project

from zipfit_pipeline.cli import main
from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.train.checkpoints import remove_other_checkpoints
from zipfit_pipeline.engine.train.tables import TrainTables
from zipfit_pipeline.ownership import OwnedByAnotherProject


def _first_use(project: Path) -> None:
    """What a project's first run leaves: its store (made by the store resource) and its artifacts folder."""
    config = load_project(project)
    Store(config.resolve(config.store), owner=project).store_id()
    config.artifacts_dir()


@pytest.fixture
def owner(tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    project = write_project(tmp_path / "owner", demo_files, tiny_model)
    _first_use(project)
    return project


@pytest.mark.parametrize("setting, value", [("store", "data/zipfit.duckdb"), ("artifacts", "data/artifacts")])
def test_a_second_project_is_refused_naming_the_owner(
    owner: Path, tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path, setting: str, value: str
) -> None:
    shared = str(owner.parent / value)
    other = write_project(tmp_path / "other", demo_files, tiny_model, **{setting: shared})
    with pytest.raises(OwnedByAnotherProject, match=f"{setting}: {shared} belongs to the project {owner}, which"):
        load_project(other)
    load_project(owner)  # the owner is unaffected


def test_take_over_hands_them_to_the_new_project(
    owner: Path, tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = owner.parent / "data"
    other = write_project(
        tmp_path / "other", demo_files, tiny_model, store=str(data / "zipfit.duckdb"), artifacts=str(data / "artifacts")
    )
    assert main(["take-over", "--config", str(other)]) == 0
    assert f"was {owner}'s" in capsys.readouterr().out
    load_project(other)
    with pytest.raises(OwnedByAnotherProject, match=f"belongs to the project {other}"):
        load_project(owner)
    assert main(["materialize", "--config", str(owner)]) == 1
    assert "zipfit take-over" in capsys.readouterr().err


def test_a_moved_or_copied_project_keeps_working(owner: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(owner.parent, tmp_path / "copy")) / "zipfit.yaml"
    config = load_project(copy)  # the original still uses its own store, not the copy's
    assert Store(config.resolve(config.store)).owner() == copy
    moved = Path(shutil.move(owner.parent, tmp_path / "moved")) / "zipfit.yaml"
    load_project(moved)  # the old file is gone: nothing else uses them


def test_a_project_that_no_longer_names_them_gives_them_up(
    owner: Path, tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path
) -> None:
    other = write_project(tmp_path / "other", demo_files, tiny_model, store=str(owner.parent / "data/zipfit.duckdb"))
    settings = yaml.safe_load(owner.read_text())
    owner.write_text(yaml.safe_dump({**settings, "store": "data/elsewhere.duckdb"}))
    load_project(other)


def test_checkpoint_clean_up_deletes_only_run_folders_its_store_recorded(tmp_path: Path) -> None:
    runs = TrainTables(Store(tmp_path / "zipfit.duckdb"))
    folder = tmp_path / "models" / "tiny" / "humaneval" / "zipfit-300-s0"
    kept, older, foreign = (folder / name for name in ("run-new", "run-old", "another-projects-run"))
    for path in (kept, older, foreign):
        path.mkdir(parents=True)
    key = RunKey("tiny", "humaneval", "zipfit", 300, 0)
    runs.own_checkpoint_folder(key, "run-old")
    runs.own_checkpoint_folder(key, "run-new")
    remove_other_checkpoints(runs, folder, keep=kept)
    assert sorted(p.name for p in folder.iterdir()) == ["another-projects-run", "run-new"]
    assert runs.owned_checkpoint_folders() == {"run-new"}
