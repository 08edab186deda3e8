"""A scoring run killed with SIGKILL half-way, then rerun, ends with exactly the uninterrupted run's scores."""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from zipfit_pipeline.engine.loaders import Record
from zipfit_pipeline.engine.scoring import score_dataset
from zipfit_pipeline.engine.store import Store

CHUNK = 16


def _prepare(store: Store, demo_files: dict) -> list[str]:
    rows = [json.loads(line) for line in demo_files["python_stdlib"].read_text(encoding="utf-8").splitlines()]
    store.replace_documents("code", [Record(i, r["id"], r["text"]) for i, r in enumerate(rows)], {})
    problems = [json.loads(line) for line in demo_files["humaneval"].read_text(encoding="utf-8").splitlines()[:20]]
    return [p["prompt"] + p["canonical_solution"] for p in problems]


def test_sigkill_mid_scoring_then_rerun_gives_uninterrupted_result(demo_files: dict, tmp_path: Path) -> None:
    killed_db, clean_db = Store(tmp_path / "killed.duckdb"), Store(tmp_path / "clean.duckdb")
    targets = _prepare(killed_db, demo_files)
    _prepare(clean_db, demo_files)
    (tmp_path / "targets.json").write_text(json.dumps(targets))

    script = textwrap.dedent(f"""
        import json, time
        from zipfit_pipeline.engine.scoring import score_dataset
        from zipfit_pipeline.engine.store import Store
        targets = json.load(open({str(tmp_path / "targets.json")!r}))
        def progress(line):  # paced, so that the parent's kill lands half-way
            print(line, flush=True)
            time.sleep(0.05)
        score_dataset(Store({str(killed_db.path)!r}), "code", targets, "gzip", 9, chunk_size={CHUNK}, workers=1, progress=progress)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for _ in range(3):  # three chunks committed, then kill in the middle of the next ones
        assert child.stdout.readline(), "the scoring subprocess ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    committed = killed_db.query("SELECT count(*) AS n FROM scores").to_pylist()[0]["n"]
    distinct = killed_db.query("SELECT count(DISTINCT content_hash) AS n FROM documents").to_pylist()[0]["n"]
    assert 3 * CHUNK <= committed < distinct
    assert committed % CHUNK == 0  # whole chunks only

    resumed = score_dataset(killed_db, "code", targets, "gzip", 9, chunk_size=CHUNK, workers=1, progress=lambda _: None)
    assert resumed.reused == committed
    assert resumed.reused + resumed.scored == resumed.distinct_texts
    score_dataset(clean_db, "code", targets, "gzip", 9, chunk_size=CHUNK, workers=2, progress=lambda _: None)

    query = "SELECT content_hash, score FROM scores ORDER BY content_hash"
    assert killed_db.query(query).to_pylist() == clean_db.query(query).to_pylist()
    duplicates = killed_db.query(
        "SELECT count(*) - count(DISTINCT (content_hash, target_hash, compressor, level, engine_version)) AS n FROM scores")
    assert duplicates.to_pylist()[0]["n"] == 0
