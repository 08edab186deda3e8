"""What may be read as an input: regular files, and folders of regular files, nothing else.

A FIFO given as a source blocks its reader forever; a character device (`/dev/zero`) or a file under `/proc` reads
without end. So every input (a source or target file, a folder source, a file given to the CLI) is checked before it
is opened, with links followed: what it names must be a regular file, or a folder whose files all are. A folder is
walked without following links to other folders, at most MAX_FOLDER_DEPTH levels deep and MAX_FOLDER_FILES files,
and nothing under the system's virtual folders (SYSTEM_FOLDERS) is read. Errors are one line naming the input.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from pathlib import Path

SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"), Path("/run"))
MAX_FOLDER_DEPTH = 32
MAX_FOLDER_FILES = 1_000_000
# The longest text any stage reads as one document. Every per-text step's memory grows with a text's length
# (tokenizing one peaks at ~190 bytes a character: 4M characters, ~750 MB), so `max_chars` cannot exceed it, and a
# source that keeps longer texts (`max_chars: null`) must cut them into documents (`chunk_chars`).
MAX_TEXT_CHARS = 4_000_000
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .]{0,31}")  # what an error message may show of a file's header
SHOWN_COLUMNS = 10


class InputError(ValueError):
    """An input that cannot be used at all; the message names the file, row and field."""


def input_files(path: Path, what: str | None = None) -> list[Path]:
    """The regular files to read for the input `path`: the file itself, or a folder's files in sorted order.
    Raises InputError for anything else; `what` names the input in the message (default: the path)."""
    name = what or str(path)
    status = _status(path, name)
    if stat.S_ISREG(status.st_mode):
        _refuse_system(path, name)
        return [path]
    if not stat.S_ISDIR(status.st_mode):
        raise InputError(
            f"{name}: {path} is {special_kind(status.st_mode)}, not a file; give a file or a folder of files"
        )
    _refuse_system(path, name)
    return _folder_files(path, name)


def check_input_file(path: Path, what: str | None = None) -> None:
    """Raise InputError unless `path` (links followed) is a regular file outside the system's virtual folders."""
    if stat.S_ISDIR(_status(path, what or str(path)).st_mode):
        raise InputError(f"{what or path}: {path} is a folder; give a file")
    input_files(path, what)


def column_names(columns: Collection[str]) -> str:
    """A file's columns as an error message may show them: names that look like field names (at most
    SHOWN_COLUMNS, each under 33 characters), and a count of the others. A "header" that is really the first line
    of a file that is no table (a key file, a log) is never echoed into a message or a run log."""
    shown = [repr(c) for c in sorted(c for c in columns if FIELD_NAME.fullmatch(c))[:SHOWN_COLUMNS]]
    hidden = len(columns) - len(shown)
    return ", ".join([*shown, *([f"{hidden} not shown"] if hidden else [])])


def special_kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device"}
    return next(
        (kind for test, kind in kinds.items() if test(mode)), "a block device" if stat.S_ISBLK(mode) else "not a file"
    )


def _status(path: Path, name: str) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise InputError(f"{name}: file not found") from None
    except OSError as error:  # a link loop, a permission error
        raise InputError(f"{name}: cannot be read: {error.strerror}") from None


def _refuse_system(path: Path, name: str) -> None:
    real = path.resolve()
    if any(real == folder or folder in real.parents for folder in SYSTEM_FOLDERS):
        raise InputError(f"{name}: {path} is in {real.parts[0]}{real.parts[1]}, a system folder; inputs are data files")


def _folder_files(folder: Path, name: str) -> list[Path]:
    files: list[Path] = []
    for root, folders, names in os.walk(folder):  # links to folders are listed, never followed
        depth = len(Path(root).relative_to(folder).parts)
        if depth >= MAX_FOLDER_DEPTH and folders:
            raise InputError(f"{name}: folders nest more than {MAX_FOLDER_DEPTH} levels deep under {folder}")
        for entry in sorted(names):
            file = Path(root) / entry
            status = _status(file, f"{name}: {file}")
            if not stat.S_ISREG(status.st_mode):
                raise InputError(
                    f"{name}: {file} is {special_kind(status.st_mode)}, not a file; a folder input holds files only"
                )
            _refuse_system(file, name)
            files.append(file)
            if len(files) > MAX_FOLDER_FILES:
                raise InputError(f"{name}: more than {MAX_FOLDER_FILES:,} files under {folder}")
    return sorted(files)
