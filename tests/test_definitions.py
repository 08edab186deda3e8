"""The Definitions load from a project file; every asset is documented, grouped and versioned."""

from pathlib import Path

import dagster as dg

from zipfit_pipeline.definitions import build_definitions

STAGES = {
    "source_documents": "ingest",
    "target_documents": "ingest",
    "alignment_scores": "score",
    "selections": "select",
    "finetuned_model": "train",
    "eval_loss": "eval",
}


def test_every_asset_has_group_description_and_code_version(project_file: Path) -> None:
    defs = build_definitions(str(project_file))
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(STAGES)
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.group_name == STAGES[name], name
        assert node.description, name
        assert node.code_version, name


def test_partitions_come_from_the_project_file(project_file: Path) -> None:
    defs = build_definitions(str(project_file))
    graph = defs.resolve_asset_graph()
    keys = lambda name: set(graph.get(dg.AssetKey(name)).partitions_def.get_partition_keys())  # noqa: E731
    assert keys("source_documents") == {"python_stdlib", "c_headers", "english_prose"}
    assert len(keys("alignment_scores")) == 3
    assert keys("selections") == {"tiny-gpt2|humaneval"}
    assert keys("finetuned_model") == {
        f"tiny-gpt2|humaneval.{s}" for s in ("base", "zipfit.300", "zipfit.600", "random.300", "random.600")
    }


def test_training_partitions_map_to_their_targets_selection(project_file: Path) -> None:
    graph = build_definitions(str(project_file)).resolve_asset_graph()
    key = dg.MultiPartitionKey({"model": "tiny-gpt2", "selection": "humaneval.zipfit.300"})
    parents = graph.get_parent_partition_keys_for_child(key, dg.AssetKey("selections"), dg.AssetKey("finetuned_model"))
    assert {str(k) for k in parents.partitions_subset.get_partition_keys()} == {"tiny-gpt2|humaneval"}
