"""Only stale work recomputes: code versions and data versions on a persistent Dagster instance.

Each test works on a private copy of a materialized project (`workspace`, see project_copies.py), changes
one thing, and checks what Dagster now reports as out of date, down to the evals.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from projects import MODEL, edit_config, edit_jsonl, ingest, project_defs

from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.lineage import out_of_date, partition_status
from zipfit_pipeline.orchestration.materialize_all import materialize_all

pytestmark = pytest.mark.slow


def _trained(target: str) -> list[str]:
    return [f"{MODEL}.zipfit.300.s0|{target}"]


def _everything_of_target(target: str, sources: list[str]) -> dict[str, list[str]]:
    """What a new alignment split makes out of date: the base model reads none of it (its evals read the test
    split, a declared input of their own)."""
    return {
        ALIGNMENT_SCORES: [f"{s}|{target}" for s in sources],
        SELECTIONS: [f"{MODEL}|{target}"],
        FINETUNED_MODEL: _trained(target),
        EVAL_LOSS: _trained(target),
        COMPARISON_REPORT: [f"{MODEL}|{target}"],
    }


def test_a_fresh_materialization_is_up_to_date(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    status = partition_status(project_defs(root), instance)
    assert {s for partitions in status.values() for s in partitions.values()} == {"FRESH"}
    assert len(status[EVAL_LOSS]) == 4
    assert out_of_date(project_defs(root), instance) == {}


def test_a_adding_a_source_scores_only_it(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    config = yaml.safe_load((root / "project" / "zipfit.yaml").read_text())
    edit_config(
        root,
        {
            "sources": [
                *config["sources"],
                {"name": "english_prose", "path": "inputs/english_prose.jsonl", "id_field": "id"},
            ]
        },
    )
    defs = project_defs(root)
    done = materialize_all(defs, instance, log=lambda _: None, only_out_of_date=True)

    # The prose enters the pool but not ZIP-FIT's 300 tokens: the selections keep their data version, so nothing
    # below them is out of date once they are recomputed.
    assert done == {
        SOURCE_DOCUMENTS: ["english_prose"],
        ALIGNMENT_SCORES: ["english_prose|task_a", "english_prose|task_b"],
        SELECTIONS: [f"{MODEL}|task_a", f"{MODEL}|task_b"],
    }
    scored = instance.fetch_materializations(dg.AssetKey(ALIGNMENT_SCORES), limit=100).records
    reruns = [
        r.asset_materialization.metadata["texts_scored"].value
        for r in scored
        if r.partition_key.startswith("english_prose")
    ]
    assert len(reruns) == 2 and all(n > 0 for n in reruns)
    # The new selections rank a pool that now holds the new source's texts too.
    pools = [
        r.asset_materialization.metadata["pool_documents"].value
        for r in instance.fetch_materializations(dg.AssetKey(SELECTIONS), limit=100).records
        if r.partition_key.endswith("task_a")
    ]
    new_pool, old_pool = pools[0], pools[-1]
    store = Store(root / "project" / "data" / "zipfit.duckdb")
    prose = store.query(
        "SELECT count(DISTINCT content_hash) AS n FROM documents WHERE dataset = 'english_prose'"
    ).to_pylist()[0]["n"]
    assert new_pool == old_pool + prose
    assert out_of_date(defs, instance) == {}


def test_b_editing_a_source_file_makes_only_its_scores_and_below_stale(
    workspace: tuple[Path, dg.DagsterInstance],
) -> None:
    root, instance = workspace
    edit_jsonl(root / "project" / "inputs" / "python_stdlib.jsonl", 3, "text", "def edited():\n    return 42\n")
    defs = project_defs(root)
    ingest(defs, instance, SOURCE_DOCUMENTS, "python_stdlib")

    stale = out_of_date(defs, instance)
    assert stale == {
        ALIGNMENT_SCORES: ["python_stdlib|task_a", "python_stdlib|task_b"],
        SELECTIONS: [f"{MODEL}|task_a", f"{MODEL}|task_b"],
        FINETUNED_MODEL: _trained("task_a") + _trained("task_b"),
        EVAL_LOSS: _trained("task_a") + _trained("task_b"),
        COMPARISON_REPORT: [f"{MODEL}|task_a", f"{MODEL}|task_b"],
    }
    # Dagster itself marks the scores of the edited source stale; the other source's scores stay fresh.
    status = partition_status(defs, instance)[ALIGNMENT_SCORES]
    assert status == {
        "python_stdlib|task_a": "STALE",
        "python_stdlib|task_b": "STALE",
        "c_headers|task_a": "FRESH",
        "c_headers|task_b": "FRESH",
    }


def test_c_reingesting_identical_data_leaves_everything_fresh(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    defs = project_defs(root)
    for source in ("python_stdlib", "c_headers"):
        ingest(defs, instance, SOURCE_DOCUMENTS, source)
    for target in ("task_a", "task_b"):
        ingest(defs, instance, TARGET_DOCUMENTS, target)
    assert out_of_date(defs, instance) == {}


def test_d_changing_the_compressor_level_makes_the_scores_stale(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    edit_config(root, {"scoring": {"compressor": "gzip", "level": 6, "chunk_size": 16}})
    defs = project_defs(root)
    status = partition_status(defs, instance)
    assert set(status[ALIGNMENT_SCORES].values()) == {"STALE"}
    assert set(status[SOURCE_DOCUMENTS].values()) == {"FRESH"}
    stale = out_of_date(defs, instance)
    assert len(stale[ALIGNMENT_SCORES]) == 4
    assert SOURCE_DOCUMENTS not in stale and TARGET_DOCUMENTS not in stale
    # The model before fine-tuning does not depend on scores.
    assert f"{MODEL}.base|task_a" not in stale[EVAL_LOSS]


def test_e_changing_a_target_set_makes_only_that_targets_work_stale(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    edit_jsonl(root / "project" / "inputs" / "task_b.jsonl", 9, "prompt", "def edited_problem():\n")
    defs = project_defs(root)
    ingest(defs, instance, TARGET_DOCUMENTS, "task_b")
    assert out_of_date(defs, instance) == _everything_of_target("task_b", ["python_stdlib", "c_headers"])


def test_f_the_report_leaves_out_a_superseded_checkpoint_until_it_is_evaluated(
    workspace: tuple[Path, dg.DagsterInstance],
) -> None:
    root, instance = workspace
    defs = project_defs(root)
    assert dg.materialize(
        list(defs.assets),
        selection=[FINETUNED_MODEL],
        partition_key=f"{MODEL}.zipfit.300.s0|task_a",
        instance=instance,
        resources=defs.resources,  # retrained; its eval measured the old one
        run_config={"ops": {FINETUNED_MODEL: {"config": {"retrain": True}}}},
    ).success
    assert out_of_date(defs, instance)[EVAL_LOSS] == [f"{MODEL}.zipfit.300.s0|task_a"]
    ingest(defs, instance, COMPARISON_REPORT, f"{MODEL}|task_a")

    def report() -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(COMPARISON_REPORT))
        return {name: value.value for name, value in event.asset_materialization.metadata.items()}

    left_out = report()
    assert left_out["rows"] == [] and len(left_out["excluded"]) == 1
    assert left_out["excluded"][0].startswith("zipfit.300.s0: its eval measured the checkpoint of run ")
    ingest(defs, instance, EVAL_LOSS, f"{MODEL}.zipfit.300.s0|task_a")
    ingest(defs, instance, COMPARISON_REPORT, f"{MODEL}|task_a")
    assert report()["excluded"] == [] and [r["method"] for r in report()["rows"]] == ["zipfit"]


def test_g_adding_a_compressor_variant_scores_and_trains_only_it(workspace: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = workspace
    store = Store(root / "project" / "data" / "zipfit.duckdb")
    runs_before = {
        r["method"] + r["target"]: r["run_id"] for r in store.query("SELECT * FROM training_runs").to_pylist()
    }
    gzip_before = store.query("SELECT content_hash, target_hash, score FROM scores ORDER BY ALL")
    edit_config(root, {"scoring": {"compressor": "gzip", "level": 9, "chunk_size": 16, "variants": ["lz4-0"]}})
    defs = project_defs(root)
    done = materialize_all(defs, instance, log=lambda _: None, only_out_of_date=True)

    new = [f"{MODEL}.zipfit-lz4-0.300.s0|{t}" for t in ("task_a", "task_b")]
    # Every scores partition runs (its code version names the variants), but scores only lz4-0; ZIP-FIT's own
    # fine-tunes are asked again (their selections partition changed) and find their texts unchanged: reused, not
    # trained, so their evals stay current.
    assert {stage: sorted(keys) for stage, keys in done.items()} == {
        ALIGNMENT_SCORES: sorted(f"{s}|{t}" for s in ("python_stdlib", "c_headers") for t in ("task_a", "task_b")),
        SELECTIONS: [f"{MODEL}|task_a", f"{MODEL}|task_b"],
        FINETUNED_MODEL: sorted([*_trained("task_a"), *_trained("task_b"), *new]),
        EVAL_LOSS: new,
        COMPARISON_REPORT: [f"{MODEL}|task_a", f"{MODEL}|task_b"],
    }
    latest = instance.fetch_materializations(dg.AssetKey(ALIGNMENT_SCORES), limit=4).records
    assert all(r.asset_materialization.metadata["texts_scored"].value == 0 for r in latest)
    assert all(r.asset_materialization.metadata["ablations"].value["zipfit-lz4-0"]["texts_scored"] > 0 for r in latest)
    assert store.query(
        "SELECT content_hash, target_hash, score FROM scores WHERE compressor = 'gzip' ORDER BY ALL"
    ).equals(gzip_before)
    runs_after = {
        r["method"] + r["target"]: r["run_id"] for r in store.query("SELECT * FROM training_runs").to_pylist()
    }
    assert {k: v for k, v in runs_after.items() if k in runs_before} == runs_before
    assert out_of_date(defs, instance) == {}
