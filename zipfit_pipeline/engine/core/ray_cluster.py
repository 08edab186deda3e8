"""Per-text work on a Ray cluster: each batch of texts is one task, results come back in input order.

Ray is an optional extra (`pip install 'zipfit-pipeline[ray]'`). With no address, Ray starts a local cluster on
this machine, every one of its servers listening on 127.0.0.1 only, with a token of this process's own; an address
(`auto`, `head:6379`, `ray://head:10001`) joins an existing cluster, with the token Ray reads from the environment
(`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`, or `~/.ray/auth_token`).

Fault tolerance is Ray's: a task whose worker process or node dies is run again elsewhere, up to
`compute.retries` times, so a lost node costs only its batches in flight. A cluster left with no CPU fails the step
with a message saying so; what was stored before stays stored, and a rerun resumes from there.
"""

from __future__ import annotations

import os
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

# Read by Ray when it is imported: "0" makes a local node's address 127.0.0.1 (as on macOS and Windows), and Ray's
# servers (GCS, raylet, workers, object store) then listen on loopback only instead of on every interface.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"
# Ray's token authentication, read from the environment
AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
IN_FLIGHT_PER_SLOT = 2  # batches submitted per CPU the work may use: one running, one waiting
CAPACITY_CHECK_SECONDS = 5.0  # how often a wait for a result checks that the cluster still has a CPU
NO_CAPACITY_CHECKS = 6  # a cluster with no CPU this many checks in a row (30 s) fails the step
Result = TypeVar("Result")


def _ray(local: bool) -> Any:
    if local:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise ImportError("the ray backend needs the optional extra: pip install 'zipfit-pipeline[ray]'") from error
    return ray


def connect(address: str | None, workers: int) -> Any:
    """The `ray` module, joined to the cluster at `address`, or to a new one started here on loopback with
    `workers` CPUs (0: one per core)."""
    ray = _ray(local=not address)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, **_driver_binding(address))
        else:
            _start_local(ray, workers or len(os.sched_getaffinity(0)))
    return ray


def _driver_binding(address: str) -> dict[str, str]:
    """A driver joining a cluster on this machine's loopback (`127.0.0.1:6379`) binds its own servers to 127.0.0.1
    too; Ray would otherwise take the machine's address. A remote cluster's driver keeps Ray's choice: the
    cluster's nodes must reach it (a `ray://` client runs no servers here)."""
    host = address.rsplit(":", 1)[0]
    return {"_node_ip_address": LOOPBACK} if host in (LOOPBACK, "localhost") else {}


def _start_local(ray: Any, workers: int) -> None:
    """A local Ray cluster bound to 127.0.0.1, with token authentication on and a token that lives only in this
    process's environment (Ray would otherwise write one to ~/.ray), or an error where it would listen on the
    machine's address."""
    address = ray.util.get_node_ip_address()
    if address != LOOPBACK:
        raise RuntimeError(
            f"a local Ray cluster would listen on {address}, not on {LOOPBACK}: ray was imported before "
            f"{LOOPBACK_ONLY}=0 was set; set it in the environment, or give compute.ray_address"
        )
    if not {AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH} & set(os.environ):
        os.environ[AUTH_TOKEN] = secrets.token_hex(32)  # Ray turns token authentication on for a new local cluster
    ray.init(
        address="local",  # a new cluster, never one found on this machine (another project's, or a dead one's)
        _node_ip_address=LOOPBACK,  # the node, and so every server of it, on loopback
        dashboard_host=LOOPBACK,
        include_dashboard=False,
        num_cpus=workers,
        log_to_driver=False,
    )


def _run(work: Callable[[list[str]], Result], texts: list[str]) -> Result:
    return work(texts)


def ray_map(
    work: Callable[[list[str]], Result],
    batches: Iterable[list[str]],
    address: str | None,
    workers: int,
    retries: int,
) -> Iterator[Result]:
    """`work(batch)` of each batch as a Ray task on the cluster at `address` (none: one started here), in input
    order; at most IN_FLIGHT_PER_SLOT batches per CPU of the cluster (or per `workers`) in flight, each run again
    up to `retries` times if its worker or node is lost. Work that says it wants an accelerator (`wants_gpu`) asks
    for one GPU per task where the cluster has GPUs."""
    ray = connect(address, workers)
    gpus = 1 if getattr(work, "wants_gpu", False) and ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(_run).options(num_cpus=1, num_gpus=gpus, max_retries=retries, retry_exceptions=False)
    slots = workers or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)))
    shared = ray.put(work)  # the work (targets, a tokenizer, an index) crosses the network once per node
    pending: deque[Any] = deque()
    try:
        for batch in batches:
            pending.append(task.remote(shared, batch))
            if len(pending) >= IN_FLIGHT_PER_SLOT * slots:
                yield _result(ray, pending.popleft(), address)
        while pending:
            yield _result(ray, pending.popleft(), address)
    finally:
        for ref in pending:
            ray.cancel(ref)


def _result(ray: Any, ref: Any, address: str | None) -> Any:
    """The task's result; while it waits, a cluster that has had no CPU for NO_CAPACITY_CHECKS checks in a row
    fails the step (Ray would wait for a node forever)."""
    without_cpu = 0
    while not ray.wait([ref], timeout=CAPACITY_CHECK_SECONDS)[0]:
        alive = sum(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"])
        without_cpu = without_cpu + 1 if alive == 0 else 0
        if without_cpu >= NO_CAPACITY_CHECKS:
            where = address or "started here"
            raise RuntimeError(
                f"the Ray cluster ({where}) has had no CPU for {NO_CAPACITY_CHECKS * CAPACITY_CHECK_SECONDS:.0f}s "
                "(its worker nodes were lost): the batches finished so far are stored; add a node and run again "
                "to resume"
            )
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:  # the work itself failed: its own error, as on this machine
        raise error.as_instanceof_cause() from None
