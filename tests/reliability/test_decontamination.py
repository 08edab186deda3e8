"""Decontamination and leakage guards: a held-out test problem copied into the pool never reaches a fine-tune."""

from __future__ import annotations

import json
import re
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
    index = HeldoutIndex([TEST_TEXT, "unrelated words only here"], [82, 83], ngram_words=13, code_tokens=None)
    copy = (
        "# copied from a benchmark\nDEF ADD(a:int,b:int)->INT:\n  '''add two numbers X and Y\n  >>> add( 2, 3 )\n  5'''"
    )
    overlap = index.first_overlap(copy)
    assert overlap is not None and overlap.test_row == 82
    assert overlap.ngram == "def add a int b int int add two numbers x and y"
    assert index.first_overlap("def add(a: int, b: int) -> int: return a + b") is None  # 8 shared words
    twelve = "add a int b int int add two numbers x and y"
    assert HeldoutIndex([TEST_TEXT], [82], 13, None).first_overlap(twelve) is None  # 12 words: not enough
    assert HeldoutIndex([TEST_TEXT], [82], 12, None).first_overlap(twelve) is not None


ROLLING_MAX = (  # HumanEval/9, as the small project's test split holds it
    "from typing import List, Tuple\n\n\ndef rolling_max(numbers: List[int]) -> List[int]:\n"
    '    """ From a given list of integers, generate a list of rolling maximum element found until given moment\n'
    '    in the sequence.\n    >>> rolling_max([1, 2, 3, 2, 3, 4, 2])\n    [1, 2, 3, 3, 3, 4, 4]\n    """\n'
    "    running_max = None\n    result = []\n\n    for n in numbers:\n        if running_max is None:\n"
    "            running_max = n\n        else:\n            running_max = max(running_max, n)\n\n"
    "        result.append(running_max)\n\n    return result\n"
)


def disguised(code: str) -> str:
    """`code` with every identifier renamed (its mentions in the docstring too), the docstring stripped, indented
    by two spaces and wrapped after a comma: no run of 13 words is left of it."""
    renamed = {"rolling_max": "peak_so_far", "numbers": "vals", "running_max": "best", "result": "out", "n": "v"}
    code = re.sub(r"\b(" + "|".join(renamed) + r")\b", lambda m: renamed[m.group(1)], code)
    code = re.sub(r'\n    """[\s\S]*?"""', "", code).replace("List, Tuple", "List,\n    Tuple")
    return "\n".join(line[: (len(line) - len(line.lstrip())) // 2] + line.lstrip() for line in code.split("\n"))


def test_a_copy_with_renamed_identifiers_is_found_by_its_code_shape() -> None:
    index = HeldoutIndex([ROLLING_MAX, TEST_TEXT], [9, 10], ngram_words=13, code_tokens=20)
    copy = disguised(ROLLING_MAX)
    assert index.word_match(copy) is None and HeldoutIndex([ROLLING_MAX], [9], 13, None).first_overlap(copy) is None
    found = index.first_overlap(copy)
    assert found is not None and (found.test_row, found.rule) == (9, "code")
    assert found.ngram == "from V import V , V def V ( V : V [ int ] ) -> V [ int"
    other = "def total(xs):\n    acc = 0\n    for x in xs:\n        acc = acc + x\n    return acc\n"
    assert index.first_overlap(other) is None  # the same kind of loop, another program
    table = "NAMES = [" + ", ".join(f"'w{i}'" for i in range(40)) + "]"
    listed = HeldoutIndex([table], [1], 13, 20)
    assert listed.first_overlap("OTHER = [" + ", ".join(f"'z{i}'" for i in range(40)) + "]") is None  # no evidence


def _plant_test_problem(project: SmallProject, disguise: bool = False) -> str:
    """A copy of a held-out test problem in the source, as HumanEval is copied all over public code; `disguise`:
    also a copy with renamed identifiers."""
    problem = json.loads(project.target_file.read_text(encoding="utf-8").splitlines()[PROBLEM_ROW])
    planted = problem["prompt"] + problem["canonical_solution"]
    assert planted == ROLLING_MAX
    with project.source_file.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"id": "copied_problem", "text": planted}) + "\n")
        if disguise:
            file.write(json.dumps({"id": "renamed_copy", "text": disguised(planted)}) + "\n")
    return planted


def _select(project: SmallProject) -> dg.ExecuteInProcessResult:
    for asset, partition in [(SOURCE_DOCUMENTS, "src"), (TARGET_DOCUMENTS, "task"), (ALIGNMENT_SCORES, "src|task")]:
        assert project.materialize(asset, partition).success
    return project.materialize(SELECTIONS, "tiny-gpt2|task")


def _selected(project: SmallProject) -> list[str]:
    return selected_texts(project.store(), RunKey("tiny-gpt2", "task", "zipfit", 200, 0))


def test_planted_test_problems_that_zipfit_ranks_first_are_removed(small_project: SmallProject) -> None:
    """A verbatim copy and one with renamed identifiers: ZIP-FIT ranks both at the top; the first shares 13 words
    with the test problem, the second only its code shape. Both are removed and listed with their rule."""
    planted = _plant_test_problem(small_project, disguise=True)
    assert _select(small_project).success
    metadata = small_project.instance.get_latest_materialization_event(
        dg.AssetKey(SELECTIONS)
    ).asset_materialization.metadata
    assert metadata["decontamination"].value == {
        **{"enabled": True, "ngram_words": 13, "code_tokens": 20},
        **{"contaminated": 2, "removed": 2},
    }
    assert "| 1 | src | copied_problem | 9 | words |" in metadata["contaminated_texts"].value  # ZIP-FIT's first
    assert planted not in _selected(small_project) and disguised(planted) not in _selected(small_project)
    assert check_results(small_project.instance)[(SELECTIONS, "decontaminated")] == {True}
    stored = small_project.store().query("SELECT doc_id, zipfit_rank, rule, removed FROM contaminated_texts")
    assert stored.to_pylist() == [
        {"doc_id": "copied_problem", "zipfit_rank": 1, "rule": "words", "removed": True},
        {"doc_id": "renamed_copy", "zipfit_rank": 2, "rule": "code", "removed": True},
    ]


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
        connection.execute(
            "UPDATE test_matches SET test_row = NULL, ngram = NULL, rule = NULL WHERE test_hash = ?", [test_hash]
        )

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
