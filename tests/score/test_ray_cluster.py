"""Every per-text stage on a real Ray cluster: a head and a worker node started as separate processes (`ray start`),
joined through the project file's `compute.ray_address`, with token authentication on. The worker node is killed
while scoring is under way; the run finishes on the head, and every stored result equals the local path's.

The cluster runs in namespaces of its own (`ray_cluster_run.py`), whose only network is loopback: Ray binds to the
machine's address by default, and there it has none but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from projects import humaneval_target, write_project

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.models import load_tokenizer
from zipfit_pipeline.engine.core.ray_cluster import LOOPBACK_ONLY
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import RecordReader
from zipfit_pipeline.engine.score import ScoringSettings, score_dataset, score_sets
from zipfit_pipeline.engine.score.alignment import alignment_scores, score_chunks
from zipfit_pipeline.engine.select.bm25 import pool_bm25_scores
from zipfit_pipeline.engine.select.decontamination import find_overlaps
from zipfit_pipeline.engine.select.dsir import store_features
from zipfit_pipeline.engine.select.embeddings import pool_embeddings
from zipfit_pipeline.engine.select.stage import pool_tokens

os.environ.setdefault(LOOPBACK_ONLY, "0")  # before ray is imported here (the backend sets it when it imports ray)
pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
NAMESPACES = ["unshare", "-rnpf", "--mount-proc"]
DRIVER = Path(__file__).with_name("ray_cluster_run.py")
TEXTS = 120
# Stored per-text results, without the seconds they took, in a fixed order.
TABLES = {
    "scores": "SELECT content_hash, target_hash, score FROM scores",
    "token_counts": "SELECT content_hash, tokenizer, tokens FROM token_counts",
    "dsir_features": "SELECT content_hash, featurizer, buckets, counts FROM dsir_features",
    "test_matches": "SELECT content_hash, test_hash, rules, test_row, ngram, rule FROM test_matches",
    "bm25_terms": "SELECT content_hash, counter, terms, counts, length FROM bm25_terms",
}


def _namespaces_work() -> bool:
    try:
        ran = subprocess.run([*NAMESPACES, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return ran.returncode == 0


def _per_text_work(store: Store, project: Path) -> None:
    """The local path: what the driver runs on the cluster, on this machine."""
    config = load_project(project, check_owner=False)
    targets = IngestTables(store).target_texts("humaneval", "alignment")
    settings = ScoringSettings(chunk_size=4)
    score_dataset(store, "code", score_sets(targets, settings)[0], settings, lambda _: None)
    hashes = IngestTables(store).distinct_hashes("code")
    quiet = lambda _: None  # noqa: E731
    pool_tokens(store, load_tokenizer(config.model_path(config.models[0])), hashes, quiet)
    store_features(store, hashes, config.selection.dsir, quiet)
    find_overlaps(store, "humaneval", hashes, config.selection.decontamination, quiet)
    pool_bm25_scores(store, hashes, targets, config.selection.bm25, quiet)
    pool_embeddings(store, hashes[:16], config.selection.embedding, quiet)


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"), reason="needs unshare and ip (util-linux)")
def test_a_ray_cluster_that_loses_its_worker_node_gives_the_local_results(
    tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path
) -> None:
    if not _namespaces_work():
        pytest.skip("this machine does not let an unprivileged process make user and network namespaces")
    project = write_project(
        tmp_path,
        demo_files,
        tiny_model,
        compute={"backend": "ray", "ray_address": "127.0.0.1:46379"},
        targets=[humaneval_target("humaneval", str(demo_files["humaneval"]), [0, 10], [10, 16])],
    )
    on_ray, local = Store(tmp_path / "ray.duckdb"), Store(tmp_path / "local.duckdb")
    texts = list(RecordReader(path=str(demo_files["python_stdlib"]), id_field="id"))[:TEXTS]
    problems = list(RecordReader(path=str(demo_files["humaneval"]), template="{prompt}{canonical_solution}"))
    for store in (on_ray, local):
        IngestTables(store).replace_documents("code", texts, {})
        IngestTables(store).replace_targets("humaneval", {"alignment": problems[:10], "test": problems[10:16]})
    _per_text_work(local, project)

    report_file, ray_files = tmp_path / "report.json", tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        run = subprocess.run(
            [*NAMESPACES, sys.executable, str(DRIVER), str(project), str(on_ray.path), str(report_file), ray_files],
            env={k: v for k, v in os.environ.items() if k != LOOPBACK_ONLY},  # it would refuse a second node
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(ray_files, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(report_file.read_text())

    assert "AuthenticationError" in report["refused_without_token"] or "token" in report["refused_without_token"]
    assert report["nodes_before"] == [["127.0.0.1", True], ["127.0.0.1", True]]
    assert report["killed"] and sorted(alive for _, alive in report["nodes_after"]) == [False, True]
    assert report["scored"] == local.query("SELECT count(*) AS n FROM scores").column("n")[0].as_py()
    assert report["listening"] == ["127.0.0.1"]
    assert len(report["per_text"]) == 5 and all("on Ray (127.0.0.1:46379)" in line for line in report["per_text"])
    for table, query in TABLES.items():
        ordered = f"{query} ORDER BY ALL"
        assert on_ray.query(ordered).to_pylist() == local.query(ordered).to_pylist(), table
    vectors = "SELECT content_hash, vector FROM embeddings ORDER BY content_hash"
    np.testing.assert_allclose(
        np.array(on_ray.query(vectors).column("vector").to_pylist()),
        np.array(local.query(vectors).column("vector").to_pylist()),
        atol=1e-6,
    )


def test_a_ray_started_here_listens_on_loopback_and_scores_as_this_machine(demo_files: dict[str, Path]) -> None:
    """`backend: ray` without an address starts Ray on this machine, its node (and so every server) on 127.0.0.1
    although the machine has another address, with a token of its own."""
    import ray

    texts = [r.text for r in RecordReader(path=str(demo_files["english_prose"]), id_field="id")][:60]
    targets = [r.text for r in RecordReader(path=str(demo_files["humaneval"]), template="{prompt}")][:5]
    chunks = [texts[i : i + 20] for i in range(0, len(texts), 20)]
    try:
        on_ray = np.concatenate(list(score_chunks(chunks, targets, "gzip", 9, workers=1, backend="ray")))
        assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
        assert os.environ["RAY_AUTH_MODE"] == "token" and len(os.environ["RAY_AUTH_TOKEN"]) == 64
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(on_ray, alignment_scores(texts, targets, "gzip", 9))
