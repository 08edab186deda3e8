"""The whole graph materialized for real: in-process with `materialize`, and through the `dagster` CLI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from project_files import write_project

from zipfit_pipeline.config import load_project
from zipfit_pipeline.definitions import build_definitions
from zipfit_pipeline.engine.alignment import alignment_scores
from zipfit_pipeline.engine.store import Store
from zipfit_pipeline.materialize_all import materialize_all

pytestmark = pytest.mark.slow


def _count(store: Store, sql: str) -> int:
    return store.query(sql).to_pylist()[0]["n"]


def test_materialize_whole_graph_with_tiny_model(tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path) -> None:
    project_file = write_project(tmp_path / "project", demo_files, tiny_model, selection={
        "methods": ["zipfit", "dsir", "random", "all"], "budgets": [300, 600], "seed": 0, "thresholds": [0.19],
        "dsir": {"min_example_length": 10}})
    defs = build_definitions(str(project_file))
    config = load_project(project_file)
    with dg.instance_for_test() as instance:
        materialize_all(defs, instance, log=lambda _: None)
        store = Store(config.resolve(config.store))

        assert _count(store, "SELECT count(*) AS n FROM documents") == 1200
        assert _count(store, "SELECT count(*) AS n FROM targets WHERE split = 'alignment'") == 10
        assert _count(store, "SELECT count(DISTINCT content_hash) AS n FROM documents") == _count(
            store, "SELECT count(*) AS n FROM scores")

        # Stored scores are the engine's scores for the stored texts.
        pool = store.query("""SELECT d.text, s.score FROM documents d JOIN scores s USING (content_hash)
                              WHERE d.dataset = 'python_stdlib' ORDER BY d.row_index LIMIT 25""").to_pylist()
        targets = store.target_texts("humaneval", "alignment")
        assert [r["score"] for r in pool] == alignment_scores([r["text"] for r in pool], targets, "gzip", 9).tolist()

        # Each selection reaches its budget, ZIP-FIT in score order, and prefers code over prose; `all` is the
        # pool in order, capped at the largest budget.
        for method, budgets in (("zipfit", (300, 600)), ("dsir", (300, 600)), ("random", (300, 600)), ("all", (600,))):
            for budget in budgets:
                rows = store.query("SELECT score, cumulative_tokens FROM selections WHERE method = ? AND budget = ? ORDER BY rank",
                                   [method, budget]).to_pylist()
                assert rows[-1]["cumulative_tokens"] >= budget
                assert len(rows) == 1 or rows[-2]["cumulative_tokens"] < budget
                if method == "zipfit":
                    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
        chosen = store.query("SELECT dataset FROM selections WHERE method = 'zipfit' AND budget = 600").column("dataset").to_pylist()
        assert chosen.count("english_prose") < len(chosen) / 2
        everything = store.query("SELECT dataset, row_index FROM selections WHERE method = 'all' ORDER BY rank").to_pylist()
        assert [(r["dataset"], r["row_index"]) for r in everything] == [("python_stdlib", i) for i in range(len(everything))]
        assert store.query("SELECT count(*) AS n FROM selections WHERE method = 'all' AND budget <> 600").to_pylist()[0]["n"] == 0
        # The threshold keeps every pool text above 0.19 (repeats dropped), and its fine-tune trains on all of it.
        kept = store.query("SELECT score, cumulative_tokens FROM selections WHERE method = 'threshold' AND budget = 190 ORDER BY rank").to_pylist()
        above = store.query("SELECT count(DISTINCT content_hash) AS n FROM scores WHERE score > 0.19").to_pylist()[0]["n"]
        assert 0 < len(kept) == above and min(r["score"] for r in kept) > 0.19
        threshold_run = store.training_run("tiny-gpt2", "humaneval.threshold.190")
        assert threshold_run["train_tokens"] == kept[-1]["cumulative_tokens"]

        # A checkpoint per fine-tune, none half-written; an eval row for the base model and every fine-tune.
        runs = store.query("SELECT selection, checkpoint, train_tokens FROM training_runs ORDER BY selection").to_pylist()
        assert len(runs) == 9  # the base model, zipfit/dsir/random at 300 and 600, all at 600, threshold 0.19
        for run in runs:
            if run["selection"] not in ("humaneval.base", "humaneval.threshold.190"):
                assert run["train_tokens"] == int(run["selection"].rsplit(".", 1)[1])
                assert (Path(run["checkpoint"]) / "config.json").exists()
        assert not list(config.resolve(config.artifacts).rglob("*.partial"))
        losses = store.query("SELECT selection, test_loss FROM eval_losses").to_pylist()
        assert {r["selection"] for r in losses} == {r["selection"] for r in runs}
        base = next(r["test_loss"] for r in losses if r["selection"] == "humaneval.base")
        assert all(r["test_loss"] < base for r in losses if r["selection"] != "humaneval.base")

        # The runs are recorded in the instance with the metadata a user looks at.
        event = instance.get_latest_materialization_event(dg.AssetKey("alignment_scores"))
        assert event is not None
        metadata = event.asset_materialization.metadata
        assert {"pairs_scored", "score_quantiles", "top"} <= set(metadata)
        _check_report(config.resolve(config.artifacts) / "reports" / "tiny-gpt2" / "humaneval", store, instance)

        selected = instance.get_latest_materialization_event(dg.AssetKey("selections")).asset_materialization.metadata
        assert selected["dsir_settings"].value["min_example_length"] == 10
        assert set(selected["selection_seconds"].value) == {"zipfit", "dsir", "random", "all", "threshold"}


def _check_report(folder: Path, store: Store, instance: dg.DagsterInstance) -> None:
    """The comparison table holds every eval row; the plots are PNG files, also shown in the UI's metadata."""
    metadata = instance.get_latest_materialization_event(dg.AssetKey("comparison_report")).asset_materialization.metadata
    rows = metadata["rows"].value
    evals = {r["selection"]: r["test_loss"] for r in store.query("SELECT selection, test_loss FROM eval_losses").to_pylist()}
    base = evals.pop("humaneval.base")
    assert {f"humaneval.{r['method']}.{r['budget']}": r["test_loss"] for r in rows} == evals
    assert "| threshold | > 0.190 (" in (folder / "report.md").read_text()
    for row in rows:
        assert row["change_from_base"] == pytest.approx(row["test_loss"] - base)
    best_baseline = min(loss for key, loss in evals.items() if key.split(".")[1] in ("dsir", "random", "all"))
    for row in rows:  # a run that ends below the best baseline reached it within its budget
        if row["test_loss"] <= best_baseline:
            assert 0 < row["tokens_to_best_baseline"] <= row["train_tokens"]
    for name in ("loss_vs_tokens.png", "alignment_vs_loss.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "data:image/png;base64," in metadata[name.removesuffix(".png")].value
    assert "| zipfit | 600 |" in (folder / "report.md").read_text()
    assert -1.0 <= metadata["alignment_vs_loss_r2"].value <= 1.0


def test_dagster_cli_materializes_into_a_dagster_home(project_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ZIPFIT_CONFIG": str(project_file)}
    bin_dir = Path(sys.executable).parent
    registered = subprocess.run([str(bin_dir / "zipfit"), "register-sources"], env=env, check=True, capture_output=True, text=True)
    assert "added: python_stdlib, c_headers, english_prose" in registered.stdout
    dagster = bin_dir / "dagster"
    for select, partition in (("source_documents", "c_headers"), ("target_documents", "humaneval"),
                              ("alignment_scores", "c_headers|humaneval")):
        subprocess.run([str(dagster), "asset", "materialize", "-m", "zipfit_pipeline.definitions", "--select", select,
                        "--partition", partition], env=env, check=True, capture_output=True, text=True)
    config = load_project(project_file)
    store = Store(config.resolve(config.store))
    assert _count(store, "SELECT count(*) AS n FROM documents WHERE dataset = 'c_headers'") == 400
    assert _count(store, "SELECT count(*) AS n FROM documents WHERE dataset <> 'c_headers'") == 0
    assert _count(store, "SELECT count(*) AS n FROM scores") == _count(
        store, "SELECT count(DISTINCT content_hash) AS n FROM documents")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("alignment_scores"), limit=10).records
        assert [r.partition_key for r in records] == ["c_headers|humaneval"]
