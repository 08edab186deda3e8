"""Only stale work recomputes: code versions and data versions on a persistent Dagster instance.

One project (two sources, two targets, a tiny GPT-2) is materialized once into a DAGSTER_HOME configured by
the project's own dagster.yaml; each test works on a copy of that folder, changes one thing, and checks what
Dagster now reports as out of date, down to the evals.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from conftest import write_project

from zipfit_pipeline.definitions import build_definitions
from zipfit_pipeline.engine.store import Store
from zipfit_pipeline.lineage import out_of_date, partition_status
from zipfit_pipeline.materialize_all import materialize_all

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MODEL = "tiny-gpt2"
TEMPLATE = "Problem description: {prompt} \nCanonical solution: {canonical_solution}"


def _target(name: str, alignment: list[int], test: list[int]) -> dict[str, object]:
    return {"name": name, "path": f"inputs/{name}.jsonl", "template": TEMPLATE, "id_field": "task_id",
            "alignment_rows": alignment, "test_rows": test}


def _build(root: Path, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    inputs = root / "project" / "inputs"
    inputs.mkdir(parents=True)
    for name in ("python_stdlib", "english_prose"):
        shutil.copy(demo_files[name], inputs / f"{name}.jsonl")
    shutil.copy(demo_files["c_headers"], inputs / "c_headers.parquet")
    for target in ("task_a", "task_b"):
        shutil.copy(demo_files["humaneval"], inputs / f"{target}.jsonl")
    write_project(
        root / "project", demo_files, tiny_model,
        sources=[{"name": "python_stdlib", "path": "inputs/python_stdlib.jsonl", "id_field": "id"},
                 {"name": "c_headers", "path": "inputs/c_headers.parquet", "id_field": "id"}],
        targets=[_target("task_a", [0, 8], [82, 86]), _target("task_b", [8, 16], [86, 90])],
        selection={"methods": ["zipfit"], "budgets": [300], "seed": 0},
    )
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return root


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    root = _build(tmp_path_factory.mktemp("lineage"), demo_files, tiny_model)
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        materialize_all(_defs(root), instance, log=lambda _: None)
    return root


@pytest.fixture
def workspace(materialized: Path, tmp_path: Path) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """A private copy of the materialized project and its Dagster home, opened as a persistent instance."""
    root = tmp_path / "copy"
    shutil.copytree(materialized, root)
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        yield root, instance


def _defs(root: Path) -> dg.Definitions:
    return build_definitions(str(root / "project" / "zipfit.yaml"))


def _edit_config(root: Path, change: dict[str, object]) -> None:
    path = root / "project" / "zipfit.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(change)
    path.write_text(yaml.safe_dump(config))


def _edit_jsonl(path: Path, row: int, field: str, text: str) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row][field] = text
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _ingest(defs: dg.Definitions, instance: dg.DagsterInstance, asset: str, partition: str) -> None:
    assert dg.materialize(list(defs.assets), selection=[asset], partition_key=partition, instance=instance,
                          resources=defs.resources).success


def _trained(target: str) -> list[str]:
    return [f"{MODEL}|{target}.zipfit.300"]


def _everything_of_target(target: str, sources: list[str]) -> dict[str, list[str]]:
    return {
        "alignment_scores": [f"{s}|{target}" for s in sources],
        "selections": [f"{MODEL}|{target}"],
        "finetuned_model": [f"{MODEL}|{target}.base", *_trained(target)],
        "eval_loss": [f"{MODEL}|{target}.base", *_trained(target)],
    }


def test_a_fresh_materialization_is_up_to_date(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    status = partition_status(_defs(root), instance)
    assert {s.value for partitions in status.values() for s in partitions.values()} == {"FRESH"}
    assert len(status["eval_loss"]) == 4
    assert out_of_date(_defs(root), instance) == {}


def test_a_adding_a_source_scores_only_it(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    config = yaml.safe_load((root / "project" / "zipfit.yaml").read_text())
    _edit_config(root, {"sources": [*config["sources"], {"name": "english_prose", "path": "inputs/english_prose.jsonl", "id_field": "id"}]})
    defs = _defs(root)
    done = materialize_all(defs, instance, log=lambda _: None, only_out_of_date=True)

    assert done == {
        "source_documents": ["english_prose"],
        "alignment_scores": ["english_prose|task_a", "english_prose|task_b"],
        "selections": [f"{MODEL}|task_a", f"{MODEL}|task_b"],
        "finetuned_model": _trained("task_a") + _trained("task_b"),
        "eval_loss": _trained("task_a") + _trained("task_b"),
    }
    scored = instance.fetch_materializations(dg.AssetKey("alignment_scores"), limit=100).records
    reruns = [r.asset_materialization.metadata["texts_scored"].value for r in scored if r.partition_key.startswith("english_prose")]
    assert len(reruns) == 2 and all(n > 0 for n in reruns)
    # The new selections rank a pool that now holds the new source's texts too.
    pools = [r.asset_materialization.metadata["pool_documents"].value
             for r in instance.fetch_materializations(dg.AssetKey("selections"), limit=100).records if r.partition_key.endswith("task_a")]
    new_pool, old_pool = pools[0], pools[-1]
    store = Store(root / "project" / "data" / "zipfit.duckdb")
    prose = store.query("SELECT count(DISTINCT content_hash) AS n FROM documents WHERE dataset = 'english_prose'").to_pylist()[0]["n"]
    assert new_pool == old_pool + prose
    assert out_of_date(defs, instance) == {}


def test_b_editing_a_source_file_makes_only_its_scores_and_below_stale(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    _edit_jsonl(root / "project" / "inputs" / "python_stdlib.jsonl", 3, "text", "def edited():\n    return 42\n")
    defs = _defs(root)
    _ingest(defs, instance, "source_documents", "python_stdlib")

    stale = out_of_date(defs, instance)
    assert stale == {
        "alignment_scores": ["python_stdlib|task_a", "python_stdlib|task_b"],
        "selections": [f"{MODEL}|task_a", f"{MODEL}|task_b"],
        "finetuned_model": _trained("task_a") + _trained("task_b"),
        "eval_loss": _trained("task_a") + _trained("task_b"),
    }
    # Dagster itself marks the scores of the edited source stale; the other source's scores stay fresh.
    status = partition_status(defs, instance)["alignment_scores"]
    assert {k: s.value for k, s in status.items()} == {
        "python_stdlib|task_a": "STALE", "python_stdlib|task_b": "STALE", "c_headers|task_a": "FRESH", "c_headers|task_b": "FRESH"}


def test_c_reingesting_identical_data_leaves_everything_fresh(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    defs = _defs(root)
    for source in ("python_stdlib", "c_headers"):
        _ingest(defs, instance, "source_documents", source)
    for target in ("task_a", "task_b"):
        _ingest(defs, instance, "target_documents", target)
    assert out_of_date(defs, instance) == {}


def test_d_changing_the_compressor_level_makes_the_scores_stale(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    _edit_config(root, {"scoring": {"compressor": "gzip", "level": 6, "chunk_size": 16, "workers": 1}})
    defs = _defs(root)
    status = partition_status(defs, instance)
    assert {s.value for s in status["alignment_scores"].values()} == {"STALE"}
    assert {s.value for s in status["source_documents"].values()} == {"FRESH"}
    stale = out_of_date(defs, instance)
    assert len(stale["alignment_scores"]) == 4
    assert "source_documents" not in stale and "target_documents" not in stale
    # The model before fine-tuning does not depend on scores.
    assert f"{MODEL}|task_a.base" not in stale["eval_loss"]


def test_e_changing_a_target_set_makes_only_that_targets_work_stale(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    _edit_jsonl(root / "project" / "inputs" / "task_b.jsonl", 9, "prompt", "def edited_problem():\n")
    defs = _defs(root)
    _ingest(defs, instance, "target_documents", "task_b")
    assert out_of_date(defs, instance) == _everything_of_target("task_b", ["python_stdlib", "c_headers"])
