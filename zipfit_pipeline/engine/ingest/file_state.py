"""What a local input looked like: size, modification time and a content hash, taken before and after a read.

A file that another process is still writing (a copy in progress, an editor saving) reads as a shorter file
with perhaps one broken last row: a plausible success. Comparing the state before and after the read tells the
two apart; the incoming-folder sensor uses the cheap part (size and time) to wait until a file is still.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    content: str  # blake2b of the bytes (of every file, for a folder)

    def signature(self) -> str:
        """`size:mtime_ns`, what the sensor compares without reading the file."""
        return _signature(self.size, self.mtime_ns)


def stat_signature(path: Path) -> str:
    """A file's `size:mtime_ns` now, comparable with a recorded `FileState.signature()`."""
    status = path.stat()
    return _signature(status.st_size, status.st_mtime_ns)


def _signature(size: int, mtime_ns: int) -> str:
    return f"{size}:{mtime_ns}"


def file_state(path: Path) -> FileState | None:
    """The state of a local file or folder (every file under it), or None for what is not on this disk (a hub id)."""
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    content = hashlib.blake2b(digest_size=16)
    size = mtime = 0
    for file in files:
        status = file.stat()
        size += status.st_size
        mtime = max(mtime, status.st_mtime_ns)
        content.update(f"{file.relative_to(path) if path.is_dir() else ''}\0{status.st_size}\0".encode())
        with file.open("rb") as stream:
            while block := stream.read(HASH_BLOCK):
                content.update(block)
    if path.is_dir():
        mtime = max(mtime, os.stat(path).st_mtime_ns)  # a file added or removed
    return FileState(size, mtime, content.hexdigest())
