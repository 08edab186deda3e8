"""What a local input looked like: size, modification time and a content hash, taken before and after a read.

A file that another process is still writing (a copy in progress, an editor saving) reads as a shorter file
with perhaps one broken last row: a plausible success. Comparing the state before and after the read tells the
two apart (`read_unchanged`, used by ingestion and the CLI alike); the incoming-folder sensor uses the cheap part
(size and time) to wait until a file is still.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from zipfit_pipeline.engine.core.input_files import InputError, input_files
from zipfit_pipeline.engine.ingest.records import Record, RecordReader

HASH_BLOCK = 1 << 20
READ_ATTEMPTS = 3
SECONDS_BETWEEN_ATTEMPTS = 2.0
Read = TypeVar("Read")


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
    """The state of a local file or folder (every file under it), or None for what is not on this disk (a hub id).
    Anything but a regular file or a folder of them is refused (`input_files`) before a byte is read."""
    if not path.exists() and not path.is_symlink():
        return None
    files = input_files(path)
    content = hashlib.blake2b(digest_size=16)
    size = mtime = 0
    for file in files:
        status = file.stat()
        size += status.st_size
        mtime = max(mtime, status.st_mtime_ns)
        _hash_bytes(content, file, f"{file.relative_to(path) if path.is_dir() else ''}", status.st_size)
    if path.is_dir():
        mtime = max(mtime, os.stat(path).st_mtime_ns)  # a file added or removed
    return FileState(size, mtime, content.hexdigest())


def prefix_digest(path: Path, size: int) -> str:
    """`file_state(path).content` of the file as it was when it held only its first `size` bytes: whether a grown
    file still begins with what an earlier read saw, by one read of that prefix."""
    content = hashlib.blake2b(digest_size=16)
    _hash_bytes(content, path, "", size)
    return content.hexdigest()


def _hash_bytes(content: hashlib.blake2b, file: Path, name: str, size: int) -> None:
    """The file's name in its folder and size, then its first `size` bytes."""
    content.update(f"{name}\0{size}\0".encode())
    with file.open("rb") as stream:
        while size > 0 and (block := stream.read(min(HASH_BLOCK, size))):
            content.update(block)
            size -= len(block)


def read_unchanged(
    reader: RecordReader,
    consume: Callable[[Iterator[Record]], Read],
    attempts: int = READ_ATTEMPTS,
    wait: float | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Read, RecordReader, FileState | None]:
    """`consume` of every record of the input (`list` keeps them all), read while the input's size,
    modification time and content hash stayed the same.

    Returns what `consume` returned, the reader that read them (its skip counts) and the input's state. A file that
    keeps changing fails naming it, and nothing is stored. `wait`: seconds between attempts (SECONDS_BETWEEN_ATTEMPTS
    when not given, read at the call)."""
    path = Path(reader.path)
    for attempt in range(1, attempts + 1):
        reader = replace(reader, skipped=Counter(), first_skipped={})
        before = file_state(path)
        result = consume(iter(reader))
        after = file_state(path)
        if before == after:
            return result, reader, before
        log(f"{reader.path} changed while it was read (attempt {attempt} of {attempts}): reading it again")
        time.sleep(SECONDS_BETWEEN_ATTEMPTS if wait is None else wait)
    raise InputError(
        f"{reader.path}: changed while it was read, {attempts} times in a row (is a copy or an editor still "
        "writing it?); nothing was stored, read it again once it is complete"
    )
