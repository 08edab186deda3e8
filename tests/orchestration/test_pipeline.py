"""The whole graph materialized for real: in-process with `materialize`, and through the `dagster` CLI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from projects import check_results, write_project

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.score import native
from zipfit_pipeline.engine.score.alignment import alignment_scores
from zipfit_pipeline.engine.select import SelectTables
from zipfit_pipeline.engine.train import TrainTables
from zipfit_pipeline.engine.train.stage import FinetuneResult, finetune_selection
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
from zipfit_pipeline.orchestration.instance import INSTANCE_SETTINGS
from zipfit_pipeline.orchestration.materialize_all import materialize_all

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _count(store: Store, sql: str) -> int:
    return store.query(sql).to_pylist()[0]["n"]


def test_materialize_whole_graph_with_tiny_model(tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path) -> None:
    project_file = write_project(
        tmp_path / "project",
        demo_files,
        tiny_model,
        selection={
            "methods": ["zipfit", "dsir", "random", "all"],
            "budgets": [300, 600],
            "thresholds": [0.19],
            "all_max_tokens": 900,
            "dsir": {"min_example_length": 10},
        },
    )
    config = load_project(project_file)
    config_file = project_file.read_text().replace("seeds:\n  - 0", "seeds:\n  - 0\n  - 1")
    project_file.write_text(config_file)
    defs = build_definitions(str(project_file))
    config = load_project(project_file)
    assert config.training.seeds == [0, 1]
    with dg.instance_for_test() as instance:
        materialize_all(defs, instance, log=lambda _: None)
        store = Store(config.resolve(config.store))

        assert _count(store, "SELECT count(*) AS n FROM documents") == 1200
        assert _count(store, "SELECT count(*) AS n FROM targets WHERE split = 'alignment'") == 10
        assert _count(store, "SELECT count(DISTINCT content_hash) AS n FROM documents") == _count(
            store, "SELECT count(*) AS n FROM scores"
        )

        # Stored scores are the engine's scores for the stored texts.
        pool = store.query("""SELECT d.text, s.score FROM documents d JOIN scores s USING (content_hash)
                              WHERE d.dataset = 'python_stdlib' ORDER BY d.row_index LIMIT 25""").to_pylist()
        targets = IngestTables(store).target_texts("humaneval", "alignment")
        assert [r["score"] for r in pool] == alignment_scores([r["text"] for r in pool], targets, "gzip", 9).tolist()

        # Each selection reaches its budget, ZIP-FIT in score order, and prefers code over prose. ZIP-FIT and DSIR
        # choose the same texts for every seed; random draws a sample per seed; `all` is a seeded order of the pool
        # capped at 900 tokens.
        for method in ("zipfit", "dsir", "random"):
            for budget in (300, 600):
                chosen = {}
                for seed in (0, 1):
                    rows = store.query(
                        "SELECT content_hash, score, cumulative_tokens FROM selections WHERE method = ? "
                        "AND budget = ? AND seed = ? ORDER BY rank",
                        [method, budget, seed],
                    ).to_pylist()
                    assert rows[-1]["cumulative_tokens"] >= budget
                    assert len(rows) == 1 or rows[-2]["cumulative_tokens"] < budget
                    if method == "zipfit":
                        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
                    chosen[seed] = [r["content_hash"] for r in rows]
                assert (chosen[0] == chosen[1]) == (method != "random"), method
        chosen = (
            store.query("SELECT dataset FROM selections WHERE method = 'zipfit' AND budget = 600 AND seed = 0")
            .column("dataset")
            .to_pylist()
        )
        assert chosen.count("english_prose") < len(chosen) / 2
        everything = {
            seed: store.query(
                "SELECT dataset, cumulative_tokens FROM selections WHERE method = 'all' AND seed = ? ORDER BY rank",
                [seed],
            ).to_pylist()
            for seed in (0, 1)
        }
        for rows in everything.values():
            assert rows[-1]["cumulative_tokens"] >= 900 > rows[-2]["cumulative_tokens"]
            assert len({r["dataset"] for r in rows}) > 1  # a random order of the whole pool, not its first source
        assert everything[0] != everything[1]
        # The threshold keeps every pool text above 0.19 (repeats dropped), and its fine-tunes train on all of it.
        kept = store.query(
            "SELECT score, cumulative_tokens FROM selections WHERE method = 'threshold' AND budget = 190 "
            "AND seed = 0 ORDER BY rank"
        ).to_pylist()
        above = store.query("SELECT count(DISTINCT content_hash) AS n FROM scores WHERE score > 0.19")
        above = above.to_pylist()[0]["n"]
        assert 0 < len(kept) == above and min(r["score"] for r in kept) > 0.19
        threshold_run = TrainTables(store).training_run(RunKey("tiny-gpt2", "humaneval", "threshold", 190, 1))
        assert threshold_run["train_tokens"] == kept[-1]["cumulative_tokens"]

        # A checkpoint per fine-tune and seed, none half-written; an eval row for each, recording the run it measured.
        runs = store.query("SELECT * FROM training_runs ORDER BY method, budget, seed").to_pylist()
        assert len(runs) == 1 + 2 * (
            3 * 2 + 1 + 1
        )  # the base model; per seed zipfit/dsir/random at 2 budgets, all, threshold
        for run in runs:
            if run["method"] in ("zipfit", "dsir", "random"):
                assert run["train_tokens"] == run["budget"]
            if run["method"] != "base":
                assert (Path(run["checkpoint"]) / "config.json").exists()
                selection = SelectTables(store).selection_set(
                    RunKey("tiny-gpt2", "humaneval", run["method"], run["budget"], run["seed"])
                )
                assert run["selection_version"] == selection["version"]
        assert not list(config.resolve(config.artifacts).rglob("*.partial"))
        evals = store.query(
            "SELECT e.method, e.budget, e.seed, e.run_id, t.run_id AS trained, e.test_loss FROM eval_losses e "
            "JOIN training_runs t USING (model, target, method, budget, seed)"
        ).to_pylist()
        assert len(evals) == len(runs) and all(e["run_id"] == e["trained"] for e in evals)
        base = next(e["test_loss"] for e in evals if e["method"] == "base")
        assert all(e["test_loss"] < base for e in evals if e["method"] != "base")

        # The runs are recorded in the instance with the metadata a user looks at, and the checks passed.
        event = instance.get_latest_materialization_event(dg.AssetKey(ALIGNMENT_SCORES))
        assert event is not None
        metadata = event.asset_materialization.metadata
        assert {"pairs_scored", "score_quantiles", "top", "build"} <= set(metadata)
        assert metadata["code_path"].value == native.code_path("gzip", 9)  # the path this process would score on
        _check_report(config.resolve(config.artifacts) / "reports" / "tiny-gpt2" / "humaneval", evals, instance, store)

        selected = instance.get_latest_materialization_event(dg.AssetKey(SELECTIONS)).asset_materialization.metadata
        assert selected["dsir_settings"].value["min_example_length"] == 10
        assert set(selected["selection_seconds"].value) == {"zipfit", "dsir", "random", "all", "threshold"}
        assert selected["decontamination"].value == {
            "enabled": True,
            "ngram_words": 13,
            "code_tokens": 20,
            "contaminated": 0,
            "removed": 0,
        }
        assert check_results(instance) == {
            (ALIGNMENT_SCORES, "compressor_reproduces_golden_sizes"): {True},
            (SELECTIONS, "decontaminated"): {True},
            (SELECTIONS, "budgets_reached"): {True},
            (FINETUNED_MODEL, "finite_training_loss"): {True},
            (EVAL_LOSS, "finite_test_loss"): {True},
        }


def _check_report(folder: Path, evals: list[dict], instance: dg.DagsterInstance, store: Store) -> None:
    """The comparison table has a row per method and budget with the mean over seeds; ZIP-FIT is paired with each
    baseline; each budget has its alignment fit and each selection its length profile; the plots are PNG files,
    also shown in the UI's metadata."""
    metadata = instance.get_latest_materialization_event(dg.AssetKey(COMPARISON_REPORT)).asset_materialization.metadata
    rows = metadata["rows"].value
    base = next(e["test_loss"] for e in evals if e["method"] == "base")
    groups: dict[tuple[str, int], list[float]] = {}
    for e in evals:
        if e["method"] != "base":
            groups.setdefault((e["method"], e["budget"]), []).append(e["test_loss"])
    assert {(r["method"], r["budget"]): r["test_loss"]["mean"] for r in rows} == pytest.approx(
        {group: sum(losses) / len(losses) for group, losses in groups.items()}
    )
    assert all(
        r["test_loss"]["n"] == 2 and r["test_loss"]["low"] <= r["test_loss"]["mean"] <= r["test_loss"]["high"]
        for r in rows
    )
    random = [r["test_loss"] for r in rows if r["method"] == "random"]  # another sample per seed: another loss
    assert all(loss["low"] < loss["mean"] < loss["high"] for loss in random)
    for row in rows:
        assert row["change_from_base"] == pytest.approx(row["test_loss"]["mean"] - base)
    paired = {(p["baseline"], p["budget"]) for p in metadata["paired"].value}
    assert paired == {(b, budget) for b in ("dsir", "random", "all") for budget in (300, 600)}
    report = (folder / "report.md").read_text()
    assert "| threshold | > 0.190 (" in report and "| all | cap 900 (" in report and "| zipfit | 600 | 2 |" in report
    for name in ("loss_vs_tokens.png", "loss_vs_budget.png", "alignment_vs_loss.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "data:image/png;base64," in metadata[name.removesuffix(".png")].value
    assert -1.0 <= metadata["alignment_vs_loss_r2"].value <= 1.0
    fits = {f["budget"]: f["runs"] for f in metadata["alignment_fits"].value}
    assert fits == {300: 6, 600: 6, None: 12}  # zipfit, dsir and random, two seeds each, at each budget
    assert "Test CE by budget" in report and "| 300 tokens | 600 tokens |" in report
    # Each selection's length profile: its texts, as the store holds them, averaged over the two seeds.
    lengths = {(r["method"], r["budget"]): r for r in metadata["lengths"].value}
    assert set(lengths) == {(r["method"], r["budget"]) for r in rows}
    for (method, budget), profile in lengths.items():
        counted = store.query(
            "SELECT avg(texts) AS texts, avg(mean) AS mean FROM (SELECT seed, count(*) AS texts, avg(tokens) AS mean "
            "FROM selections WHERE method = ? AND budget = ? GROUP BY seed)",
            [method, budget],
        ).to_pylist()[0]
        assert profile["texts"] == pytest.approx(counted["texts"]) and profile["mean"] == pytest.approx(counted["mean"])
    assert metadata["excluded"].value == []


def test_dg_launches_into_a_fresh_dagster_home_without_a_banner_or_a_warning(
    project_file: Path, tmp_path: Path
) -> None:
    """What a user types in a new shell: `zipfit register-sources`, then `dg launch` (Dagster's CLI, from the project's
    folder), into a DAGSTER_HOME that is an empty folder, with no telemetry opt-out in the environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_DISABLE_TELEMETRY"}
    env |= {"DAGSTER_HOME": str(home), "ZIPFIT_CONFIG": str(project_file), "VIRTUAL_ENV": sys.prefix}
    bin_dir = Path(sys.executable).parent
    registered = subprocess.run(
        [str(bin_dir / "zipfit"), "register-sources"], env=env, check=True, capture_output=True, text=True
    )
    assert "added: python_stdlib, c_headers, english_prose" in registered.stdout
    assert (home / "dagster.yaml").read_text() == INSTANCE_SETTINGS.read_text()  # the project's, not Dagster's defaults
    for select, partition in (
        (SOURCE_DOCUMENTS, "c_headers"),
        (TARGET_DOCUMENTS, "humaneval"),
        (ALIGNMENT_SCORES, "c_headers|humaneval"),
    ):
        launched = subprocess.run(
            [str(bin_dir / "dg"), "launch", "--assets", select, "--partition", partition],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        printed = launched.stdout + registered.stderr + launched.stderr
        assert "RUN_SUCCESS" in printed
        assert not [line for line in printed.splitlines() if "Warning" in line or "warning" in line]
        assert "Telemetry" not in printed and "Welcome to Dagster" not in printed
    assert not (home / ".telemetry").exists()
    config = load_project(project_file)
    store = Store(config.resolve(config.store))
    assert _count(store, "SELECT count(*) AS n FROM documents WHERE dataset = 'c_headers'") == 400
    assert _count(store, "SELECT count(*) AS n FROM documents WHERE dataset <> 'c_headers'") == 0
    assert _count(store, "SELECT count(*) AS n FROM scores") == _count(
        store, "SELECT count(DISTINCT content_hash) AS n FROM documents"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey(ALIGNMENT_SCORES), limit=10).records
        assert [r.partition_key for r in records] == ["c_headers|humaneval"]


def test_every_baseline_and_ablation_flows_into_the_report(
    tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path
) -> None:
    """D4, embedding similarity, BM25, a compressor variant and a target subset are ordinary selections: each fills
    the budget, is fine-tuned and evaluated, and has a row, a cost and a composition in the report."""
    methods = ["zipfit", "d4", "embedding", "bm25", "random"]
    ablations = ["zipfit-lz4-0", "zipfit-n4"]
    project_file = write_project(
        tmp_path / "project",
        demo_files,
        tiny_model,
        scoring={"compressor": "gzip", "level": 9, "chunk_size": 64, "variants": ["lz4-0"]},
        selection={"methods": methods, "budgets": [400], "target_subsets": [4], "d4": {"duplicate_similarity": 0.9}},
    )
    defs = build_definitions(str(project_file))
    config = load_project(project_file)
    with dg.instance_for_test() as instance:
        materialize_all(defs, instance, log=lambda _: None)
        store = Store(config.resolve(config.store))
        distinct = _count(store, "SELECT count(DISTINCT content_hash) AS n FROM documents")
        # Every pool text is scored three times (gzip-9 against 10 targets, lz4-0 against 10, gzip-9 against 4) and
        # embedded once.
        assert store.query(
            "SELECT compressor, level, count(*) AS n FROM scores GROUP BY ALL ORDER BY ALL"
        ).to_pylist() == [
            {"compressor": "gzip", "level": 9, "n": 2 * distinct},
            {"compressor": "lz4", "level": 0, "n": distinct},
        ]
        assert _count(store, "SELECT count(*) AS n FROM embeddings") == distinct

        sets = {r["method"]: r for r in store.query("SELECT * FROM selection_sets").to_pylist()}
        assert set(sets) == {*methods, *ablations}
        assert all(s["tokens"] >= 400 for s in sets.values())
        assert len({s["version"] for s in sets.values()}) == len(sets)  # each method chose texts of its own
        # D4 drops the pool's near-duplicates; its selection holds none of them.
        d4 = store.query("SELECT content_hash FROM selections WHERE method = 'd4'").column("content_hash").to_pylist()
        assert len(d4) == len(set(d4))

        seconds = {r["method"]: r for r in store.query("SELECT * FROM selection_runs").to_pylist()}
        assert (
            seconds["embedding"]["prepare_seconds"] == seconds["d4"]["prepare_seconds"] > 0
        )  # one embedding of the pool
        assert seconds["zipfit-lz4-0"]["prepare_seconds"] > 0 and seconds["random"]["prepare_seconds"] == 0

        metadata = instance.get_latest_materialization_event(
            dg.AssetKey(COMPARISON_REPORT)
        ).asset_materialization.metadata
        assert {r["method"] for r in metadata["rows"].value} == {*methods, *ablations}
        assert {p["baseline"] for p in metadata["paired"].value} == {"d4", "embedding", "bm25", "random", *ablations}
        composition = {c["method"]: c["token_shares"] for c in metadata["composition"].value}
        for method, shares in composition.items():
            chosen = store.query(
                "SELECT dataset, sum(tokens)::BIGINT AS t FROM selections WHERE method = ? GROUP BY ALL", [method]
            )
            total = sum(chosen.column("t").to_pylist())
            assert shares == pytest.approx({r["dataset"]: r["t"] / total for r in chosen.to_pylist()})
        report = (config.resolve(config.artifacts) / "reports" / "tiny-gpt2" / "humaneval" / "report.md").read_text()
        assert "Where each selection's tokens came from" in report and "| zipfit-n4 | 400 |" in report

        # A fine-tune asked again on the same texts and settings is its current run; other settings, or a checkpoint
        # deleted after its evals, train again.
        key, pretrained = RunKey("tiny-gpt2", "humaneval", "d4", 400, 0), config.model_path(config.model("tiny-gpt2"))
        current = TrainTables(store).training_run(key)

        def finetune(run_id: str, learning_rate: float) -> FinetuneResult:
            settings = config.training.model_copy(update={"learning_rate": learning_rate})
            return finetune_selection(store, key, pretrained, settings, config.models_dir(), run_id, log=lambda _: None)

        again = finetune("asked-again", config.training.learning_rate)
        assert (
            again.reused and again.run_id == current["run_id"] and again.final_train_loss == current["final_train_loss"]
        )
        other = finetune("other-rate", 2e-3)
        assert not other.reused and TrainTables(store).training_run(key)["run_id"] == "other-rate"
        TrainTables(store).release_checkpoint(key, "other-rate")
        assert not finetune("after-release", 2e-3).reused
