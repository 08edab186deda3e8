"""Execute model-generated code, and nothing else of the package does: one process per sample, isolated.

Each program runs in new Linux namespaces (`unshare`): a network namespace with no interface up (no network), a
PID namespace (when its first process ends, every process it started is killed, so nothing outlives the wall
timeout; its fresh /proc shows only its own processes), and a mount namespace in which `sandbox_launcher.py` pivots
into a root of its own: read-only binds of /usr, the system folders and the interpreter, and nothing writable but
fresh tmpfs mounts of a few megabytes at /tmp, /var/tmp and /dev/shm (the program's working folder is one: filling
it fills nothing of the host). The launcher then sets limits on CPU time, address space, file size, open files and
processes, drops root to `nobody` and execs Python in isolated mode. Where namespaces cannot be made (no `unshare`,
a kernel or container that forbids them) the sandbox refuses, unless the user explicitly allowed unsandboxed runs
(then only the limits, a temporary folder and the timeout hold).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

from zipfit_pipeline.engine.core.artifacts import interpreter_identity

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
MB = 1 << 20


class SandboxUnavailable(RuntimeError):
    """Generated code cannot be isolated here; the message says why and how to allow an unsandboxed run."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1024 * MB
    file_bytes: int = 4 * MB
    disk_bytes: int = 16 * MB
    processes: int = 16


@dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str  # "passed", "failed: <last line of stderr>", "timed out"


def run_program(
    program: str, limits: Limits = Limits(), allow_unsandboxed: bool = False, finished_line: str | None = None
) -> Outcome:
    """Run `program` (Python source) to completion or the wall timeout; it passes if it exits with status 0 and, with
    `finished_line`, printed that as its last line (so that a program that exits early, `sys.exit(0)` or
    `os._exit(0)` before its tests, fails)."""
    python = sandbox_python()
    if python is None and not allow_unsandboxed:
        raise SandboxUnavailable(
            f"generated code is only run in a sandbox, and none can be made here ({sandbox_problem()}); "
            "set pass_at_k.allow_unsandboxed: true to run it without one, at your own risk"
        )
    return _launch(program, limits, python is not None, python or sys.executable, finished_line)


def _launch(program: str, limits: Limits, isolated: bool, python: str, finished_line: str | None = None) -> Outcome:
    with (
        tempfile.TemporaryDirectory(prefix="zipfit-sandbox-") as workdir,
        open(Path(workdir) / "stderr", "w+b") as stderr,
        open(Path(workdir) / "stdout", "w+b") as stdout,
    ):  # files: a program that floods them hits the file-size limit
        settings = {
            **asdict(limits),
            "isolated": isolated,
            "workdir": workdir,
            "python": python,
            "processes": limits.processes if _is_root() or not isolated else _own_processes() + limits.processes,
        }
        command = [*(_unshare_prefix() if isolated else []), sys.executable, "-I", str(LAUNCHER), json.dumps(settings)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            cwd=workdir,
        )
        try:
            process.communicate(program.encode("utf-8"), timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            return Outcome(False, "timed out")
        finally:
            _kill_group(process)  # whatever the program left running in its session
        if process.returncode == 0 and (finished_line is None or _last_line(stdout) == finished_line):
            return Outcome(True, "passed")
        if process.returncode == 0:
            return Outcome(False, "failed: exited before its tests finished")
        error = _last_line(stderr, 2000)
    return Outcome(False, f"failed: {error[:200] if error else f'exit status {process.returncode}'}")


def _last_line(stream: BinaryIO, tail: int = 200) -> str:
    """The last non-empty line within the last `tail` bytes a program wrote to `stream` ('' if none)."""
    stream.seek(max(0, stream.seek(0, os.SEEK_END) - tail))
    lines = stream.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the program's session and wait until its PID namespace is empty: the namespace's first process (the
    child of `unshare`) ends only after the kernel has reaped every process in it, a fork bomb's included."""
    first = _children(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in first) and time.monotonic() < deadline:
        time.sleep(0.01)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    """Whether a process exists and has not yet exited (a zombie has: only its exit status is left)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _is_root() -> bool:
    return os.geteuid() == 0


def _unshare_prefix() -> list[str]:
    """Root makes the namespaces directly; anyone else inside a new user namespace where they are root."""
    user = [] if _is_root() else ["--map-root-user"]
    return ["unshare", *user, "--net", "--pid", "--fork", "--kill-child", "--mount"]


def _own_processes() -> int:
    """This user's processes now: outside root, the process limit counts all of them."""
    uid = os.getuid()
    return sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit() and _owner(entry) == uid)


def _owner(entry: Path) -> int | None:
    try:
        return entry.stat().st_uid
    except OSError:
        return None


def sandbox_python() -> str | None:
    """An interpreter that runs a program inside the sandbox here, or None where no sandbox can be made."""
    return _probe()[0]


@cache
def _probe() -> tuple[str | None, str]:
    """The sandbox's interpreter, or None and why there is none. Probed once per process."""
    if problem := _namespaces_problem():
        return None, problem
    candidates = [
        os.path.realpath(sys.executable),
        *(shutil.which(name) for name in ("python3", "python")),
        "/usr/bin/python3",
    ]
    failures = []
    for python in dict.fromkeys(c for c in candidates if c):
        outcome = _launch("print(1)", Limits(wall_seconds=30), True, python)
        if outcome.passed:
            return python, ""
        failures.append(f"{python}: {outcome.reason}")
    return None, "no Python interpreter here runs in the sandbox (" + "; ".join(failures) + ")"


def sandbox_interpreter() -> str:
    """The Python that runs generated code here (the sandbox's, else this one), by path and content: a declared
    input of Pass@k."""
    return interpreter_identity(sandbox_python() or sys.executable)


def sandbox_problem() -> str:
    """Why no sandbox can be made here, for the error message."""
    return _probe()[1]


def _namespaces_problem() -> str:
    """Why `unshare` cannot make the sandbox's namespaces here, or "" when it can."""
    if not sys.platform.startswith("linux"):
        return f"namespaces are Linux's, this is {sys.platform}"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    probe = subprocess.run([*_unshare_prefix(), "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"`unshare` failed: {probe.stderr.strip()[:200]}"
    return ""
