"""The project file: what it accepts, what it refuses with a message naming the field, and chunked sources."""

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml
from projects import write_project

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.orchestration.asset_keys import SOURCE_DOCUMENTS
from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.partitions import register_sources


def _edit(path: Path, **change: object) -> Path:
    config = yaml.safe_load(path.read_text())
    config.update(change)
    path.write_text(yaml.safe_dump(config))
    return path


def test_thresholds_must_be_alignments_between_0_and_1(project_file: Path) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        load_project(_edit(project_file, selection={"methods": ["zipfit"], "budgets": [300], "thresholds": [1.5]}))


@pytest.mark.parametrize(
    "section, settings, message",
    [
        ("training", {"device": "gpu"}, "training.device: device must be auto, cpu, cuda or cuda:<index>, got 'gpu'"),
        ("training", {"qlora": True}, "training: qlora trains a LoRA adapter on a 4-bit base: set lora too"),
        ("training", {"dtype": "fp8"}, "training.dtype: Input should be 'auto', 'fp32', 'bf16' or 'fp16'"),
        ("training", {"lora": {"rank": 0}}, "training.lora.rank: Input should be greater than or equal to 1"),
        (
            "training",
            {"gradient_accumulation_steps": 0},
            "training.gradient_accumulation_steps: Input should be greater",
        ),
        ("pass_at_k", {"samples": 5, "ks": [1, 10]}, "pass_at_k: ks must be distinct and between 1 and samples (5)"),
    ],
)
def test_fine_tuning_and_pass_at_k_settings_are_checked_when_the_project_loads(
    project_file: Path, section: str, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_project(_edit(project_file, **{section: settings}))


@pytest.mark.parametrize(
    "selection, message",
    [
        ({"methods": ["d4"], "embedding": {"model": "models/minilm"}}, "selection.embedding.model: "),
        ({"methods": ["zipfit"], "target_subsets": [0]}, "target_subsets must be distinct positive numbers"),
        ({"methods": ["zipfit", "tfidf"]}, "unknown selection methods ['tfidf']"),
    ],
)
def test_baseline_and_ablation_settings_are_checked_when_the_project_loads(
    project_file: Path, selection: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_project(_edit(project_file, selection={"budgets": [300], **selection}))


def test_an_embedder_folder_is_found_beside_the_project_file(project_file: Path, tiny_model: Path) -> None:
    (project_file.parent / "models").mkdir()
    (project_file.parent / "models" / "embedder").symlink_to(tiny_model)
    config = load_project(
        _edit(project_file, selection={"methods": ["d4"], "budgets": [300], "embedding": {"model": "models/embedder"}})
    )
    assert config.selection_settings().embedding.model == str(tiny_model.resolve())


def test_targets_cannot_be_chunked(project_file: Path) -> None:
    config = yaml.safe_load(project_file.read_text())
    config["targets"][0]["chunk_chars"] = 100
    with pytest.raises(ValueError, match="chunk_chars applies to sources only"):
        load_project(_edit(project_file, targets=config["targets"]))


def test_a_chunked_source_stores_equal_chunks_as_documents(
    tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path
) -> None:
    project = write_project(
        tmp_path / "project",
        demo_files,
        tiny_model,
        sources=[{"name": "prose", "path": str(demo_files["english_prose"]), "id_field": "id", "chunk_chars": 300}],
    )
    defs = build_definitions(str(project))
    with dg.instance_for_test() as instance:
        register_sources(instance, load_project(project))
        result = dg.materialize(
            list(defs.assets),
            selection=[SOURCE_DOCUMENTS],
            partition_key="prose",
            instance=instance,
            resources=defs.resources,
        )
        metadata = result.asset_materializations_for_node(SOURCE_DOCUMENTS)[0].metadata
    config = load_project(project)
    docs = (
        Store(config.resolve(config.store))
        .query("SELECT doc_id, length(text) AS n FROM documents ORDER BY row_index")
        .to_pylist()
    )
    assert metadata["rows"].value == 400 and metadata["documents"].value == len(docs) > 400
    assert max(d["n"] for d in docs) <= 300
    assert all("#" in d["doc_id"] for d in docs)
