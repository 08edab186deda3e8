"""The small project most tests run: the demo sources, a slice of HumanEval and a tiny GPT-2, as a project file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml


def write_project(root: Path, demo_files: dict[str, Path], tiny_model: Path, **overrides: object) -> Path:
    """A small project: the demo sources, 10 alignment and 6 test HumanEval problems, a tiny GPT-2.

    `overrides` replace top-level entries of the project file (`sources=[...]`, `selection={...}`).
    """
    sources = []
    for name in ("python_stdlib", "c_headers", "english_prose"):
        sources.append({"name": name, "path": str(demo_files[name]), "id_field": "id"})
    config = {
        "store": "data/zipfit.duckdb",
        "artifacts": "data/artifacts",
        "cache": "data/cache",
        "sources": sources,
        "targets": [
            {
                "name": "humaneval",
                "path": str(demo_files["humaneval"]),
                "template": "Problem description: {prompt} \nCanonical solution: {canonical_solution}",
                "id_field": "task_id",
                "alignment_rows": [0, 10],
                "test_rows": [82, 88],
            }
        ],
        "models": [{"name": "tiny-gpt2", "pretrained": str(tiny_model)}],
        "scoring": {"compressor": "gzip", "level": 9, "chunk_size": 16, "workers": 1},
        "selection": {"methods": ["zipfit", "random"], "budgets": [300, 600]},
        "training": {
            "block_size": 64,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "curve_points": 1,
            "seeds": [0],
            "eval_max_length": 128,
            "eval_batch_size": 4,
        },
    }
    config.update(overrides)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "zipfit.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def check_results(instance: dg.DagsterInstance) -> dict[tuple[str, str], set[bool]]:
    """Whether each asset check passed, over every run of the instance: {(asset, check): {passed, ...}}."""
    results: dict[tuple[str, str], set[bool]] = {}
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            results.setdefault((evaluation.asset_key.to_user_string(), evaluation.check_name), set()).add(
                evaluation.passed
            )
    return results
