"""Peak memory of a process tree, for the benchmarks: sampled, because workers come and go during a run."""

from __future__ import annotations

import subprocess
import threading
import time

import psutil


def tree_rss(process: psutil.Process) -> int:
    """Bytes resident in a process and all its descendants now."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass  # a worker that exited between listing and reading
    return total


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of a command and all its child processes, sampled every 20 ms."""
    process = psutil.Popen(command, stdout=subprocess.DEVNULL)
    peak, started = 0, time.perf_counter()
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        time.sleep(0.02)
    if process.returncode:
        raise RuntimeError(f"{command} failed with {process.returncode}")
    return time.perf_counter() - started, peak / 1e6


class PeakRss:
    """Samples this process's tree every 50 ms in a thread, from `with` to its end: the peak of one stage."""

    def __init__(self) -> None:
        self.start = self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._done.wait(0.05):
            self.peak = max(self.peak, tree_rss(me))

    def __enter__(self) -> PeakRss:
        self.start = self.peak = tree_rss(psutil.Process())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(psutil.Process()))

    @property
    def mb(self) -> float:
        return self.peak / 1e6
