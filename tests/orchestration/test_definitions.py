"""The Definitions load from a project file; every asset is documented, grouped and versioned."""

from pathlib import Path

import dagster as dg
from projects import write_project

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.definitions import build_definitions
from zipfit_pipeline.orchestration.partitions import (
    configured_runs,
    finetune_keys,
    finetune_partition,
    register_sources,
    run_key,
)

STAGES = {
    SOURCE_DOCUMENTS: "ingest",
    TARGET_DOCUMENTS: "ingest",
    ALIGNMENT_SCORES: "score",
    SELECTIONS: "select",
    FINETUNED_MODEL: "train",
    EVAL_LOSS: "evaluate",
    COMPARISON_REPORT: "report",
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


def test_the_definitions_load_as_a_code_server_loads_them(project_file: Path) -> None:
    """Every job, sensor and schedule resolves (a sensor's job over assets of different partitions would not)."""
    defs = build_definitions(str(project_file))
    dg.Definitions.validate_loadable(defs)
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "ingest_sources",
        "ingest_targets",
        "score",
        "select_and_report",
        "train_and_eval",
    }


def test_partitions_come_from_the_project_file(project_file: Path) -> None:
    defs = build_definitions(str(project_file))
    graph = defs.resolve_asset_graph()
    with dg.instance_for_test() as instance:
        assert register_sources(instance, load_project(project_file)) == (
            ["python_stdlib", "c_headers", "english_prose"],
            [],
        )

        def keys(name: str) -> set[str]:
            return set(
                graph.get(dg.AssetKey(name)).partitions_def.get_partition_keys(dynamic_partitions_store=instance)
            )

        assert keys(SOURCE_DOCUMENTS) == {"python_stdlib", "c_headers", "english_prose"}
        assert len(keys(ALIGNMENT_SCORES)) == 3
    assert keys(SELECTIONS) == {"tiny-gpt2|humaneval"}
    assert keys(FINETUNED_MODEL) == {
        f"tiny-gpt2.{s}|humaneval" for s in ("base", "zipfit.300.s0", "zipfit.600.s0", "random.300.s0", "random.600.s0")
    }


def test_training_partitions_map_to_their_targets_selection(project_file: Path) -> None:
    graph = build_definitions(str(project_file)).resolve_asset_graph()
    parents = lambda finetune, upstream: {  # noqa: E731
        str(k)
        for k in graph.get_parent_partition_keys_for_child(
            dg.MultiPartitionKey({"finetune": finetune, "target": "humaneval"}),
            dg.AssetKey(upstream),
            dg.AssetKey(FINETUNED_MODEL),
        ).partitions_subset.get_partition_keys()
    }
    assert parents("tiny-gpt2.zipfit.300.s0", SELECTIONS) == {"tiny-gpt2|humaneval"}
    # The model before fine-tuning reads no selection, so new source data never makes it stale; no fine-tune reads
    # the target's alignment split (the test split is a declared input of the evals).
    assert parents("tiny-gpt2.base", SELECTIONS) == set()
    assert dg.AssetKey(TARGET_DOCUMENTS) not in graph.get(dg.AssetKey(FINETUNED_MODEL)).parent_keys


def test_finetune_partitions_are_run_keys_one_per_selection_and_seed(
    tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path
) -> None:
    project = write_project(
        tmp_path,
        demo_files,
        tiny_model,
        selection={"methods": ["zipfit", "all"], "budgets": [300], "thresholds": [0.35]},
    )
    project.write_text(project.read_text().replace("seeds:\n  - 0", "seeds:\n  - 0\n  - 7"))
    config = load_project(project)
    keys = finetune_keys(config, "tiny-gpt2", with_base=True)
    assert keys == [
        "tiny-gpt2.base",
        "tiny-gpt2.zipfit.300.s0",
        "tiny-gpt2.zipfit.300.s7",
        "tiny-gpt2.all.s0",
        "tiny-gpt2.all.s7",
        "tiny-gpt2.threshold.350.s0",
        "tiny-gpt2.threshold.350.s7",
    ]
    runs = configured_runs(config, "tiny-gpt2", "humaneval")
    parsed = [run_key(dg.MultiPartitionKey({"finetune": key, "target": "humaneval"})) for key in keys]
    assert parsed == runs
    assert [finetune_partition(run) for run in runs] == keys
    assert parsed[4] == RunKey("tiny-gpt2", "humaneval", "all", 0, 7) and parsed[5].budget == 350


def test_loading_the_definitions_does_not_import_torch(project_file: Path) -> None:
    """Ingest, score and select processes (and the code server) never pay for torch: it is imported where a model
    runs."""
    import subprocess
    import sys

    code = (
        "import sys; from zipfit_pipeline.orchestration.definitions import build_definitions; "
        f"build_definitions({str(project_file)!r}); print('torch' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
