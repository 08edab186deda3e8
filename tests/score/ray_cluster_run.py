"""The Ray side of `test_ray_cluster.py`, run as the first process of new user, network, PID and mount namespaces
(`unshare -rnpf --mount-proc`): the only network is this namespace's loopback, so no Ray server can listen on, or
send to, anything but 127.0.0.1; and every process started here dies with this one.

It starts a Ray head and a worker node as separate processes (`ray start`, one CPU each, token authentication on),
scores a stored dataset and runs the selection's per-text work through the project file's `compute` section,
kills the worker node's processes once scoring is under way, and writes what it saw to a JSON file.
Usage: ray_cluster_run.py <project file> <store> <report.json> <folder for Ray's files>
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
PORT = 46379
LOOPBACK = "127.0.0.1"
# A lost node is noticed within about a second (Ray's default is tens of seconds), so the test does not wait.
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "300",
    "RAY_health_check_timeout_ms": "300",
    "RAY_health_check_failure_threshold": "3",
}


def main(project: str, store_path: str, report_path: str, temp: str) -> None:
    """`temp`: Ray's files (sessions, sockets, the note of the current cluster that a later `ray.init()` would
    join), in a folder of this run's own, short enough for socket paths."""
    began = time.monotonic()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ray_files = Path(report_path).parent / "ray-files"
    ray_files.mkdir()
    token = secrets.token_hex(32)
    os.environ.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=temp, **FAST_HEALTH_CHECKS
    )
    # Every node, its servers and the dashboard bound to loopback (the namespace has no other address anyway).
    node = ["--node-ip-address", LOOPBACK, "--num-cpus", "1", "--disable-usage-stats"]
    head = ["--head", "--port", str(PORT), "--dashboard-host", LOOPBACK, "--include-dashboard", "false"]
    subprocess.run(
        [RAY, "start", *head, "--temp-dir", temp, *node],
        check=True,
        capture_output=True,
    )
    worker = subprocess.Popen(  # its own process group: the raylet and every worker process it starts
        [RAY, "start", "--address", f"{LOOPBACK}:{PORT}", "--block", *node],
        start_new_session=True,
        stdout=(ray_files / "worker-node.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    report: dict[str, object] = {"refused_without_token": refused_without_token()}

    import psutil
    import pyarrow as pa
    import ray

    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.engine.core.models import load_tokenizer
    from zipfit_pipeline.engine.core.store import Store
    from zipfit_pipeline.engine.ingest import IngestTables
    from zipfit_pipeline.engine.score import ScoringSettings, score_dataset, score_sets
    from zipfit_pipeline.engine.select.bm25 import pool_bm25_scores
    from zipfit_pipeline.engine.select.decontamination import find_overlaps
    from zipfit_pipeline.engine.select.dsir import store_features
    from zipfit_pipeline.engine.select.embeddings import pool_embeddings
    from zipfit_pipeline.engine.select.stage import pool_tokens

    config = load_project(project, check_owner=False)
    compute, store = config.compute, Store(store_path)
    assert compute.ray_address, "the project joins the cluster started here"
    _wait_for_nodes(ray, compute.ray_address, 2, ray_files / "worker-node.log")
    report["nodes_before"] = [(n["NodeManagerAddress"], n["Alive"]) for n in ray.nodes()]

    def kill_worker_node(line: str) -> None:
        if "killed" not in report:
            os.killpg(worker.pid, signal.SIGKILL)
            report["killed"] = line

    started = time.monotonic()
    timings: dict[str, float] = {"cluster": started - began}
    targets = IngestTables(store).target_texts("humaneval", "alignment")
    settings = ScoringSettings(chunk_size=4)
    scoring = score_dataset(
        store, "code", score_sets(targets, settings)[0], settings, kill_worker_node, commit_seconds=0, compute=compute
    )
    report["scored"] = scoring.scored
    deadline = time.monotonic() + 30  # scoring may end before the cluster has noticed the loss
    while sum(n["Alive"] for n in ray.nodes()) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    report["nodes_after"] = [(n["NodeManagerAddress"], n["Alive"]) for n in ray.nodes()]

    timings["scoring"] = time.monotonic() - started
    log: list[str] = []
    hashes = IngestTables(store).distinct_hashes("code")
    tokenizer = load_tokenizer(config.model_path(config.models[0]))
    pool_tokens(store, tokenizer, hashes, log.append, compute)
    store_features(store, hashes, config.selection.dsir, log.append, compute)
    find_overlaps(store, "humaneval", hashes, config.selection.decontamination, log.append, compute)
    pool_bm25_scores(store, hashes, targets, config.selection.bm25, log.append, compute)
    pool_embeddings(store, pa.array(hashes[:16]), config.selection.embedding, log.append, compute)
    timings["per_text"] = time.monotonic() - started - timings["scoring"]
    report["per_text"] = [line for line in log if "computed now" in line]
    report["listening"] = sorted(  # IPv4 addresses, some written IPv4-mapped (::ffff:127.0.0.1)
        {c.laddr.ip.removeprefix("::ffff:") for c in psutil.net_connections(kind="inet") if c.status == "LISTEN"}
    )
    report["seconds"] = timings  # where the test's time goes, for whoever reads the JSON
    ray.shutdown()
    Path(report_path).write_text(json.dumps(report))


def refused_without_token() -> str:
    """What a client without the token gets from the cluster (HOME empty, so no ~/.ray/auth_token either)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"} | {"HOME": "/tmp/no-token-home"}
    client = subprocess.run(
        [sys.executable, "-c", f"import ray; ray.init(address='{LOOPBACK}:{PORT}', _node_ip_address='{LOOPBACK}')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return "" if client.returncode == 0 else client.stderr.strip().splitlines()[-1]


def _wait_for_nodes(ray: object, address: str, count: int, worker_log: Path) -> None:
    """Joins the cluster as the pipeline does (a driver bound to 127.0.0.1, `connect`), then waits for its nodes."""
    from zipfit_pipeline.engine.core.ray_cluster import connect

    connect(address, 0)
    deadline = time.monotonic() + 60
    while sum(n["Alive"] for n in ray.nodes()) < count:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker node did not join in 60s; its output:\n{worker_log.read_text()[-3000:]}")
        time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:5])
