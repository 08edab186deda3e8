"""The lineage matrix: change one input, let automation settle, and check exactly which partitions ran.

Each case works on a private copy of one materialized project (two sources, one target, every baseline, the model
and the embedder inside the project folder) and changes one input. Under automation, it ticks the automation
sensor's conditions and the `lost_store_state` sensor (which recomputes partitions whose declared inputs changed),
materializing what they request, until neither requests anything; separately, it runs `zipfit materialize --stale`'s
refresh. Either way it asserts the partitions that ran, stage by stage; that nothing is out of date any more; and
that the report holds every configured run, all made from the current inputs. Below the selections, which
fine-tunes train again depends on which selections changed: the rule is checked instead of a list (a fine-tune
whose selection is unchanged is asked again and reuses its run; only a new run is evaluated again).

`make test` runs the cases in CORE and STALE_CORE; `ZIPFIT_FULL_MATRIX=1` runs every case both ways.
`test_the_readme_table_is_this_matrix` checks the README's "what makes what stale" table against `CASES`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from projects import (
    MODEL,
    REPO,
    build_matrix_project,
    copy_workspace,
    edit_config,
    edit_jsonl,
    materialized,
    project_defs,
)
from safetensors.torch import load_file, save_file

from zipfit_pipeline.config import load_project
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)
from zipfit_pipeline.orchestration.lineage import out_of_date
from zipfit_pipeline.orchestration.materialize_all import STAGES, materialize_all
from zipfit_pipeline.orchestration.store_state import to_recompute

pytestmark = pytest.mark.slow

SOURCES, TARGETS = ("python_stdlib", "c_headers"), ("task_b",)
METHODS = ("zipfit", "random", "dsir", "bm25", "embedding", "d4", "all")
Ran = dict[str, set[str]]


@dataclass(frozen=True)
class Case:
    """One input changed: what the README calls it, how the test changes it, and what must run down to the
    selections (the stages whose partitions are decided by the declarations alone)."""

    input: str
    change: Callable[[Path], None]
    ran: Ran  # source_documents, target_documents, alignment_scores, selections
    evals_of: tuple[str, ...] = ()  # targets whose every eval must run again (a new test split or eval settings)
    trains: frozenset[str] = frozenset()  # methods whose fine-tunes must train anew, whatever their selection did
    listed: bool = False  # it changes what the report lists (its declared settings): rebuilt even with no new eval


def _project(root: Path) -> Path:
    return root / "project"


def _setting(path: str, value: object) -> Callable[[Path], None]:
    """Set one entry of the project file: `scoring.level`, `selection.d4.seed`, `sources.0.chunk_chars`."""
    return lambda root: edit_config(root, {path: value})


def _moved_source(root: Path) -> None:
    inputs = _project(root) / "inputs"
    shutil.copy(inputs / "python_stdlib.jsonl", inputs / "moved.jsonl")
    _setting("sources.0.path", "inputs/moved.jsonl")(root)


def _edited_source(root: Path) -> None:
    edit_jsonl(_project(root) / "inputs" / "python_stdlib.jsonl", 3, "text", "def edited():\n    return 42\n")


def _appended_source(root: Path) -> None:
    path = _project(root) / "inputs" / "python_stdlib.jsonl"
    row = {"id": "appended", "text": "def appended(values):\n    return sorted(set(values))\n"}
    path.write_text(path.read_text() + json.dumps(row) + "\n")


def _reordered_source(root: Path) -> None:
    path = _project(root) / "inputs" / "c_headers.parquet"
    table = pq.read_table(path)
    pq.write_table(table.take(list(reversed(range(table.num_rows)))), path)


def _edited_test_row(root: Path) -> None:
    edit_jsonl(_project(root) / "inputs" / "task_b.jsonl", 87, "prompt", "def edited_problem(x):\n")


def _new_weights(folder: str, scale: float) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = _project(root) / "models" / folder / "model.safetensors"
        weights = load_file(path)
        save_file({name: tensor * scale for name, tensor in weights.items()}, path, metadata={"format": "pt"})

    return change


def _new_tokenizer(root: Path) -> None:
    path = _project(root) / "models" / "tiny-gpt2" / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["model_max_length"] = 77  # another tokenizer file: the same weights, other tokenizer files
    path.write_text(json.dumps(config))


def _moved_model(root: Path) -> None:
    shutil.copytree(_project(root) / "models" / "tiny-gpt2", _project(root) / "models" / "moved")
    edit_config(root, {"models.0.pretrained": "models/moved"})


def _scores(*targets: str) -> set[str]:
    return {f"{s}|{t}" for s in SOURCES for t in targets}


def _selections(*targets: str) -> set[str]:
    return {f"{MODEL}|{t}" for t in targets}


def _of_source(source: str) -> Ran:
    return {
        SOURCE_DOCUMENTS: {source},
        ALIGNMENT_SCORES: {f"{source}|{t}" for t in TARGETS},
        SELECTIONS: _selections(*TARGETS),
    }


ALL_SELECTIONS: Ran = {SELECTIONS: _selections(*TARGETS)}
CASES = [
    Case("nothing changed", lambda root: None, {}),
    Case("a source file's content", _edited_source, _of_source("python_stdlib")),
    Case("rows appended to a source file", _appended_source, _of_source("python_stdlib")),
    Case("a source file's row order", _reordered_source, _of_source("c_headers")),
    Case("a source's path (same content)", _moved_source, {SOURCE_DOCUMENTS: {"python_stdlib"}}),
    Case(
        "a source's template (same texts)",
        _setting("sources.0.template", "{text}"),
        {SOURCE_DOCUMENTS: {"python_stdlib"}},
    ),
    Case("a source's chunk_chars", _setting("sources.0.chunk_chars", 200), _of_source("python_stdlib")),
    Case(
        "a target's alignment split",
        _setting("targets.0.alignment_rows", [8, 15]),
        {TARGET_DOCUMENTS: {"task_b"}, ALIGNMENT_SCORES: _scores("task_b"), SELECTIONS: _selections("task_b")},
    ),
    Case(
        "a target's test split (rows)",
        _setting("targets.0.test_rows", [86, 89]),
        {TARGET_DOCUMENTS: {"task_b"}, SELECTIONS: _selections("task_b")},
        evals_of=("task_b",),
    ),
    Case(
        "a target's test split (file)",
        _edited_test_row,
        {TARGET_DOCUMENTS: {"task_b"}, SELECTIONS: _selections("task_b")},
        evals_of=("task_b",),
    ),
    Case(
        "scoring: compressor level",
        _setting("scoring.level", 6),
        {ALIGNMENT_SCORES: _scores(*TARGETS), **ALL_SELECTIONS},
    ),
    Case(
        "scoring: compressor variants",
        _setting("scoring.variants", ["lz4-0"]),
        {ALIGNMENT_SCORES: _scores(*TARGETS), **ALL_SELECTIONS},
        listed=True,
    ),
    Case(
        "selection: target subsets",
        _setting("selection.target_subsets", [4]),
        {ALIGNMENT_SCORES: _scores(*TARGETS), **ALL_SELECTIONS},
        listed=True,
    ),
    Case(
        "selection: methods (one removed)",
        _setting("selection.methods", [m for m in METHODS if m != "d4"]),
        ALL_SELECTIONS,
        listed=True,
    ),
    Case("selection: budgets", _setting("selection.budgets", [250]), ALL_SELECTIONS, listed=True),
    Case(
        "selection: all_max_tokens",
        _setting("selection.all_max_tokens", 280),
        ALL_SELECTIONS,
        trains=frozenset({"all"}),  # its seeded prefix may be the same texts: the cap is its token budget
        listed=True,
    ),
    Case(
        "selection: decontamination",
        _setting("selection.decontamination.ngram_words", 8),
        ALL_SELECTIONS,
        listed=True,
    ),
    Case("selection: embedding", _setting("selection.embedding.max_length", 24), ALL_SELECTIONS),
    Case("selection: D4", _setting("selection.d4.seed", 1), ALL_SELECTIONS),
    Case("selection: BM25", _setting("selection.bm25.k1", 1.2), ALL_SELECTIONS),
    Case("selection: DSIR", _setting("selection.dsir.num_buckets", 5000), ALL_SELECTIONS),
    Case("training: a result setting", _setting("training.learning_rate", 5e-4), {}),
    Case("training: seeds (one added)", _setting("training.seeds", [0, 1]), ALL_SELECTIONS, listed=True),
    Case("training: eval settings", _setting("training.eval_max_length", 96), {}, evals_of=TARGETS),
    Case("model weights, in place", _new_weights("tiny-gpt2", 0.5), {}),
    Case("tokenizer files, in place", _new_tokenizer, ALL_SELECTIONS),
    Case("the model's path (same files)", _moved_model, {}),
    Case("embedder weights, in place", _new_weights("embedder", 0.5), ALL_SELECTIONS),
]
# What must train again beyond the rule "a changed selection trains again": the model or its training settings.
# The eval settings are training settings too: the mid-training curve points are measured with them.
RETRAIN_ALL = {"training: a result setting", "training: eval settings", "model weights, in place"}
RETRAIN_ALL |= {"tokenizer files, in place"}
NEW_BASE = {"model weights, in place", "tokenizer files, in place"}
# Run by `make test` (the whole matrix takes about 12 minutes on 2 cores both ways): the three scenarios this
# machinery exists for (a new test split, new weights in place, a removed method) and "nothing changed" under
# automation, and the test split under `--stale`.
CORE = {
    "nothing changed",
    "a target's test split (rows)",
    "selection: methods (one removed)",
    "model weights, in place",
}
STALE_CORE = {"a target's test split (rows)"}
FULL = os.environ.get("ZIPFIT_FULL_MATRIX") == "1"


@pytest.fixture(scope="module")
def matrix_project(tmp_path_factory: pytest.TempPathFactory, demo_files: dict[str, Path], tiny_model: Path) -> Path:
    return materialized(build_matrix_project(tmp_path_factory.mktemp("matrix"), demo_files, tiny_model))


@pytest.fixture
def matrix_copy(matrix_project: Path, tmp_path: Path) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    root = copy_workspace(matrix_project, tmp_path / "copy")
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        yield root, instance


def settle(root: Path, instance: dg.DagsterInstance, cursor: str | None) -> Ran:
    """Tick automation and the changed-inputs sensor, run what they ask for, until they ask for nothing."""
    defs = project_defs(root)
    sensor = defs.resolve_sensor_def("lost_store_state")
    ran: Ran = {}
    for _ in range(12):
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = tick.cursor
        wanted = {(a, str(p)) for a in STAGES if a in ASSETS for p in tick.get_requested_partitions(dg.AssetKey(a))}
        result = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        restored = [
            (r.asset_selection[0].to_user_string(), str(r.partition_key))
            for r in (result.run_requests if isinstance(result, dg.SensorResult) else [])
        ]
        assert not wanted & set(restored), "automation and the sensor asked for the same partition"
        if not wanted and not restored:
            return ran
        for asset, partition in sorted({*wanted, *restored}, key=lambda p: STAGES.index(p[0])):
            assert dg.materialize(
                list(defs.assets),
                selection=[asset],
                partition_key=partition,
                instance=instance,
                resources=defs.resources,
            ).success
            ran.setdefault(asset, set()).add(partition)
    raise AssertionError(f"automation did not settle: {ran}")


ASSETS = {SOURCE_DOCUMENTS, TARGET_DOCUMENTS, ALIGNMENT_SCORES, SELECTIONS, FINETUNED_MODEL, EVAL_LOSS}
ASSETS |= {COMPARISON_REPORT}


def _latest(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _param(case: Case, core: set[str]) -> object:
    skip = case.input not in core and not FULL
    marks = (
        [pytest.mark.skip(reason="the full matrix runs with ZIPFIT_FULL_MATRIX=1 (about 12 minutes)")] if skip else []
    )
    return pytest.param(case, id=case.input, marks=marks)


@pytest.mark.parametrize("case", [_param(c, CORE) for c in CASES])
def test_one_changed_input_recomputes_exactly_what_reads_it(
    case: Case, matrix_copy: tuple[Path, dg.DagsterInstance]
) -> None:
    """Under automation: the automation sensor's conditions and `lost_store_state`, as the daemon runs them."""
    root, instance = matrix_copy
    defs = project_defs(root)
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    existed = _every(defs, FINETUNED_MODEL)
    case.change(root)
    _check(case, root, instance, settle(root, instance, before.cursor), existed)


@pytest.mark.parametrize("case", [_param(c, STALE_CORE) for c in CASES])
def test_materialize_stale_recomputes_the_same(case: Case, matrix_copy: tuple[Path, dg.DagsterInstance]) -> None:
    """Under `zipfit materialize --stale` (`materialize_all(only_out_of_date=True)`, what the command runs)."""
    root, instance = matrix_copy
    existed = _every(project_defs(root), FINETUNED_MODEL)
    case.change(root)
    done = materialize_all(project_defs(root), instance, log=lambda _: None, only_out_of_date=True)
    _check(case, root, instance, {asset: {str(p) for p in partitions} for asset, partitions in done.items()}, existed)


def _check(case: Case, root: Path, instance: dg.DagsterInstance, ran: Ran, existed: set[str]) -> None:
    upper = {a: ran[a] for a in (SOURCE_DOCUMENTS, TARGET_DOCUMENTS, ALIGNMENT_SCORES, SELECTIONS) if a in ran}
    assert upper == case.ran
    config = load_project(_project(root) / "zipfit.yaml")
    defs = project_defs(root)
    every = _every(defs, FINETUNED_MODEL)
    base = {p for p in every if ".base|" in p}
    # Fine-tunes run below a selection that ran (those whose own selection is unchanged reuse their run), where the
    # model or the training settings changed, or where they are new; the base model's record only for a new model.
    finetunes = ran.get(FINETUNED_MODEL, set())
    trained = {p for p in finetunes if not _latest(instance, FINETUNED_MODEL, p)["reused"]}
    selected = {s.split("|")[1] for s in ran.get(SELECTIONS, ())}
    below_selections = {p for p in every - base if p.split("|")[1] in selected}
    if case.input in RETRAIN_ALL:
        assert trained >= every - base
    else:
        assert finetunes <= below_selections | (every - existed) | (base if case.input in NEW_BASE else set())
        assert trained >= every - existed
    assert trained & base == (base if case.input in NEW_BASE else set())
    assert {p for p in every if p.split(".")[1] in case.trains} <= trained
    # Evals: exactly the new runs, and every eval of a target whose test split or eval settings changed.
    every_eval_of = {p for p in _every(defs, EVAL_LOSS) if p.split("|")[1] in case.evals_of}
    assert ran.get(EVAL_LOSS, set()) == trained | every_eval_of
    # Reports: rebuilt where an eval ran or what they list changed (their declared settings), and only there.
    reported = {p.split("|")[1] for p in ran.get(COMPARISON_REPORT, set())}
    assert reported == {p.split("|")[1] for p in ran.get(EVAL_LOSS, set())} | (set(TARGETS) if case.listed else set())
    # Settled: nothing is out of date, and every report holds exactly the configured runs, all current.
    assert out_of_date(defs, instance, to_recompute(config, defs.assets, instance)) == {}
    for target in TARGETS:
        report = _latest(instance, COMPARISON_REPORT, f"{MODEL}|{target}")
        assert all(line.endswith("no longer configured") for line in report["excluded"]), report["excluded"]
        assert {(r["method"], r["budget"]) for r in report["rows"]} == set(config.selection.selections(config.scoring))


def _every(defs: dg.Definitions, asset: str) -> set[str]:
    assets_def = defs.resolve_assets_def(asset)
    assert assets_def.partitions_def is not None
    return {str(p) for p in assets_def.partitions_def.get_partition_keys()}


def test_the_readme_table_is_this_matrix() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- lineage-matrix -->")[1]
    lines = table.strip().splitlines()[2:]
    rows = [line.split("|")[1].strip() for line in lines[: next(i for i, x in enumerate(lines) if not x.strip())]]
    assert rows == [c.input for c in CASES]
