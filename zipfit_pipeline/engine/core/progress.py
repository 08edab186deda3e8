"""Progress lines a user can read: at most a few per run, whatever its size, each with the rate and the time left.

Every line is an event in Dagster's log; the full per-chunk record belongs in the store, not there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ProgressLog:
    """Writes `line(done, items per second, seconds left)` at most `lines` times per run, evenly spaced, and at the
    end."""

    todo: int
    line: Callable[[int, float, float], str]
    write: Callable[[str], None]
    lines: int = 20
    started: float = field(default_factory=time.monotonic)
    next_line: int = 1

    def update(self, done: int) -> None:
        if done < self.todo * self.next_line / self.lines and done < self.todo:
            return
        self.next_line = done * self.lines // self.todo + 1 if self.todo else self.lines + 1
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed else 0.0
        self.write(self.line(done, rate, (self.todo - done) / rate if rate else 0.0))
