"""Recover from runs that were killed: mark them failed and give back their concurrency-pool slots.

A run worker killed with SIGKILL (or by the OOM killer, or a reboot) cannot report its end: Dagster keeps the
run STARTED and the `duckdb_writer` / `accelerator` pool slot it claimed stays taken, so every later run of
that pool waits forever. The default run launcher cannot check a worker's health, so this does: a run is
dead when no process that wrote its events is alive on this machine, which holds only with the default run
launcher (every run a local process); with any other launcher this does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import FINISHED_STATUSES

IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def recover_killed_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the in-progress runs whose processes are all gone, free the slots finished runs hold; returns messages."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []  # runs on other machines: Dagster's own run monitoring checks their workers
    messages = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        pids = {e.dagster_event.pid for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.pid}
        if pids and not any(_alive(pid) for pid in pids):
            instance.report_run_failed(run, f"the run's processes ({', '.join(map(str, sorted(pids)))}) were killed; "
                                            "marked failed so that its work can run again")
            messages.append(f"run {run.run_id} was killed: marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.status in FINISHED_STATUSES:
                storage.free_concurrency_slots_for_run(run_id)
                messages.append(f"run {run_id} had ended: freed its concurrency slots")
    return messages


def _alive(pid: int) -> bool:
    """Whether the process runs; a zombie (killed, not yet reaped by an init that may never reap it) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc here: trust the signal check
        return True
