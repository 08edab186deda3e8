"""A project over the real pool (`corpus.real_pool`) and its stages run as real Dagster runs, timed: what
`scale.py` and `experiment.py` share.

`write_project` writes the pool's four JSONL sources, HumanEval and a project file into a folder; `run_stages` runs
the named stages in a child process with its own Dagster instance (`<folder>/dagster_home`), each stage's wall
time and its process tree's peak RSS measured. Run as a script, this file is that child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from measure import PeakRss

from zipfit_pipeline.orchestration import asset_keys as keys

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "data" / "models" / "smollm2-135m"
TEMPLATE = "Problem description: {prompt} \nCanonical solution: {canonical_solution}"
STAGES = {
    "ingest": (keys.SOURCE_DOCUMENTS, keys.TARGET_DOCUMENTS),
    "score": (keys.ALIGNMENT_SCORES,),
    "select": (keys.SELECTIONS,),
    "train": (keys.FINETUNED_MODEL,),
    "eval": (keys.EVAL_LOSS,),
    "report": (keys.COMPARISON_REPORT,),
}


def require_model(script: str) -> None:
    if not (MODEL / "config.json").exists():
        sys.exit(f"{script}: the demo model {MODEL} is missing: run `make demo` (or `zipfit prepare-demo`) first")


def write_project(
    folder: Path,
    pool: dict[str, list[dict[str, str]]],
    targets: int,
    selection: dict[str, Any],
    training: dict[str, Any] | None = None,
    chunk_chars: int | None = None,
) -> Path:
    """The pool's sources (cut into pieces of `chunk_chars` where given) against HumanEval problems 0..targets-1,
    held-out problems 82-163, the demo model; returns the project file's path."""
    from zipfit_pipeline.demo.inputs import humaneval_rows, write_jsonl

    inputs = folder / "inputs"
    inputs.mkdir(parents=True)
    write_jsonl(inputs / "humaneval.jsonl", humaneval_rows())
    for name, rows in pool.items():
        write_jsonl(inputs / f"{name}.jsonl", rows)
    cut = {"chunk_chars": chunk_chars} if chunk_chars else {}
    project = {
        "store": "zipfit.duckdb",
        "artifacts": "artifacts",
        "cache": "cache",
        "sources": [{"name": name, "path": f"inputs/{name}.jsonl", "id_field": "id", **cut} for name in pool],
        "targets": [
            {
                "name": "humaneval",
                "path": "inputs/humaneval.jsonl",
                "template": TEMPLATE,
                "id_field": "task_id",
                "alignment_rows": [0, targets],
                "test_rows": [82, 164],
            }
        ],
        "models": [{"name": "smollm2-135m", "pretrained": str(MODEL)}],
        "scoring": {"compressor": "gzip", "level": 9, "chunk_size": 128},
        "selection": selection,
        **({"training": training} if training else {}),
    }
    (folder / "zipfit.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return folder / "zipfit.yaml"


def run_stages(config: Path, stages: list[str], only_out_of_date: bool = False) -> list[dict[str, float]]:
    """In a child process: the named stages (keys of STAGES) as real Dagster runs, in order, each timed with its
    process tree's peak RSS. `only_out_of_date`: what is missing or stale only (a killed experiment resumes)."""
    home = config.parent / "dagster_home"
    home.mkdir(exist_ok=True)
    out = subprocess.run(
        [sys.executable, __file__, str(config), ",".join(stages), "resume" if only_out_of_date else "all"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _stages_child(config: str, stages: list[str], only_out_of_date: bool) -> None:
    import dagster as dg

    from zipfit_pipeline.orchestration.definitions import build_definitions
    from zipfit_pipeline.orchestration.materialize_all import materialize_all

    defs = build_definitions(config)
    rows = []
    with dg.DagsterInstance.get() as instance:
        for stage in stages:
            started = time.perf_counter()
            with PeakRss() as rss:
                materialize_all(
                    defs,
                    instance,
                    log=lambda line: print(line, file=sys.stderr),
                    stages=STAGES[stage],
                    only_out_of_date=only_out_of_date,
                )
            rows.append(
                {
                    "stage": stage,
                    "seconds": time.perf_counter() - started,
                    "peak_mb": rss.peak / 1e6,
                    "start_mb": rss.start / 1e6,
                }
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    _stages_child(sys.argv[1], sys.argv[2].split(","), sys.argv[3] == "resume")
