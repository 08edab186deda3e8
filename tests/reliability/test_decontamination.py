"""Decontamination and leakage guards: a held-out test problem copied into the pool never reaches a fine-tune."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from projects import SmallProject, check_results, failure_message

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.hashing import set_hash
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.select.decontamination import HeldoutIndex
from zipfit_pipeline.engine.train.stage import selected_texts
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.definitions import build_definitions

PROBLEM_ROW = 9  # a test problem of the small project (test rows 8-12)
TEST_TEXT = (
    'def add(a: int, b: int) -> int:\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n    >>> add(5, 7)\n'
    '    12\n    """\n    return x + y\n'
)


def test_thirteen_shared_words_are_found_whatever_the_spacing_and_case() -> None:
    index = HeldoutIndex([TEST_TEXT, "unrelated words only here"], [82, 83], n=13)
    copy = (
        "# copied from a benchmark\nDEF ADD(a:int,b:int)->INT:\n  '''add two numbers X and Y\n  >>> add( 2, 3 )\n  5'''"
    )
    overlap = index.first_overlap(copy)
    assert overlap is not None and overlap.test_row == 82
    assert overlap.ngram == "def add a int b int int add two numbers x and y"
    assert index.first_overlap("def add(a: int, b: int) -> int: return a + b") is None  # 8 shared words
    twelve = "add a int b int int add two numbers x and y"
    assert HeldoutIndex([TEST_TEXT], [82], n=13).first_overlap(twelve) is None  # 12 words: not enough
    assert HeldoutIndex([TEST_TEXT], [82], n=12).first_overlap(twelve) is not None


def _plant_test_problem(project: SmallProject) -> str:
    """A copy of a held-out test problem in the source, as HumanEval is copied all over public code."""
    problem = json.loads(project.target_file.read_text(encoding="utf-8").splitlines()[PROBLEM_ROW])
    planted = problem["prompt"] + problem["canonical_solution"]
    with project.source_file.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"id": "copied_problem", "text": planted}) + "\n")
    return planted


def _select(project: SmallProject) -> dg.ExecuteInProcessResult:
    for asset, partition in [(SOURCE_DOCUMENTS, "src"), (TARGET_DOCUMENTS, "task"), (ALIGNMENT_SCORES, "src|task")]:
        assert project.materialize(asset, partition).success
    return project.materialize(SELECTIONS, "tiny-gpt2|task")


def _selected(project: SmallProject) -> list[str]:
    return selected_texts(project.store(), RunKey("tiny-gpt2", "task", "zipfit", 200, 0))


def test_a_planted_test_problem_that_zipfit_ranks_first_is_removed(small_project: SmallProject) -> None:
    planted = _plant_test_problem(small_project)
    assert _select(small_project).success
    metadata = small_project.instance.get_latest_materialization_event(
        dg.AssetKey(SELECTIONS)
    ).asset_materialization.metadata
    assert metadata["decontamination"].value == {"enabled": True, "ngram_words": 13, "contaminated": 1, "removed": 1}
    assert "| 1 | src | copied_problem | 9 |" in metadata["contaminated_texts"].value  # ZIP-FIT's first, test row 9
    assert planted not in _selected(small_project)
    assert check_results(small_project.instance)[(SELECTIONS, "decontaminated")] == {True}
    stored = small_project.store().query("SELECT doc_id, zipfit_rank, removed FROM contaminated_texts").to_pylist()
    assert stored == [{"doc_id": "copied_problem", "zipfit_rank": 1, "removed": True}]


def test_with_decontamination_off_it_is_kept_and_the_check_warns(small_project: SmallProject) -> None:
    planted = _plant_test_problem(small_project)
    small_project.edit_config(
        selection={"methods": ["zipfit"], "budgets": [200], "decontamination": {"enabled": False}}
    )
    assert _select(small_project).success  # a warning does not fail the run or block the fine-tunes
    assert _selected(small_project)[0] == planted
    evaluation = [
        e
        for e in small_project.instance.all_logs(
            small_project.instance.get_runs(limit=1)[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    check = evaluation[0].dagster_event.event_specific_data
    assert (check.check_name, check.passed, check.severity) == ("decontaminated", False, dg.AssetCheckSeverity.WARN)
    assert small_project.materialize(FINETUNED_MODEL, "tiny-gpt2.zipfit.200.s0|task").success


def test_the_check_blocks_fine_tunes_when_a_contaminated_text_slips_into_a_selection(
    small_project: SmallProject,
) -> None:
    """The check re-reads the selected texts, independently of the pool's decontamination: here the stored overlap
    results are wrong (the planted text recorded as clean), so the new selection keeps it and the check stops it.
    A new selection would otherwise start its fine-tunes (see test_automation); this one starts none."""
    planted = _plant_test_problem(small_project)
    assert _select(small_project).success
    for asset in (FINETUNED_MODEL, EVAL_LOSS):
        for run in ("base", "zipfit.200.s0"):
            assert small_project.materialize(asset, f"tiny-gpt2.{run}|task").success
    defs = build_definitions(str(small_project.config_file))
    tick = dg.evaluate_automation_conditions(defs=defs, instance=small_project.instance)
    store = small_project.store()
    test_hash = set_hash(IngestTables(store).target_rows("task", "test").column("content_hash").to_pylist())
    with store.transaction() as connection:
        connection.execute("UPDATE test_overlaps SET test_row = NULL, ngram = NULL WHERE test_hash = ?", [test_hash])

    result = small_project.materialize(SELECTIONS, "tiny-gpt2|task")
    assert "1 blocking asset check failed with ERROR severity:\nselections: decontaminated" in failure_message(result)
    assert _selected(small_project)[0] == planted  # stored, with its failed check, for a user to inspect
    tick = dg.evaluate_automation_conditions(defs=defs, instance=small_project.instance, cursor=tick.cursor)
    assert list(tick.get_requested_partitions(dg.AssetKey(FINETUNED_MODEL))) == []


def test_a_text_in_both_target_splits_fails_ingestion(small_project: SmallProject) -> None:
    rows = [json.loads(line) for line in small_project.target_file.read_text(encoding="utf-8").splitlines()]
    rows[PROBLEM_ROW].update(
        prompt=rows[2]["prompt"], canonical_solution=rows[2]["canonical_solution"]
    )  # = alignment row 2
    small_project.target_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    message = failure_message(small_project.ingest_target())
    assert f"{small_project.target_file}: 1 test texts are also in the alignment split (rows 2 and 9)" in message
    assert small_project.stored("targets") == []


def test_overlapping_alignment_and_test_rows_fail_when_the_project_loads(tmp_path: Path) -> None:
    config = {
        "sources": [{"name": "s", "path": "s.jsonl"}],
        "models": [{"name": "m", "pretrained": "org/model"}],
        "targets": [{"name": "t", "path": "t.jsonl", "alignment_rows": [0, 82], "test_rows": [80, 164]}],
    }
    (tmp_path / "zipfit.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="target t: alignment_rows and test_rows overlap"):
        load_project(tmp_path / "zipfit.yaml")
