"""Recover from runs that were killed: mark them failed, so that their partitions and pool slots are free again.

A run worker killed with SIGKILL (or by the OOM killer, or a reboot) cannot report its end: Dagster keeps the
run STARTED and the `duckdb_writer` / `accelerator` pool slot it claimed stays taken, so every later run of
that pool waits forever. Dagster's run monitoring (`run_monitoring` in dagster.yaml, run by the daemon under
`dg dev`) frees the slots of runs that ended, but the default run launcher cannot check a worker's health, so
this does: a run is dead when no process that wrote its events is alive on this machine, which holds only with
the default run launcher (every run a local process); with any other launcher this does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from zipfit_pipeline.orchestration.dagster_internals import fail_run, run_worker_pids

IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def recover_killed_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the in-progress runs whose processes are all gone and free their slots; returns what was done."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return []  # runs on other machines: Dagster's own run monitoring checks their workers
    messages = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        pids = run_worker_pids(instance, run.run_id)
        if pids and not any(_alive(pid) for pid in pids):
            killed = ", ".join(map(str, sorted(pids)))
            fail_run(
                instance,
                run,
                f"the run's processes ({killed}) were killed; marked failed so that its work can run again",
            )
            messages.append(f"run {run.run_id} was killed: marked failed")
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
