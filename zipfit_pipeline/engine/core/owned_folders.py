"""Folders the pipeline writes and deletes in (`artifacts`, `cache`): only ones it made or was given empty.

A folder is the pipeline's when it holds the mark file this module writes on first use. A folder that exists,
holds anything, and lacks the mark (a home folder, `/etc`, a folder of the user's own files) is refused, so a
mistyped setting such as `artifacts: "~"` can never let checkpoint clean-up delete a user's files.
"""

from __future__ import annotations

from pathlib import Path

MARK = ".zipfit-pipeline-folder"
MARK_TEXT = "This folder is written and cleaned up by zipfit-pipeline. Delete it with what is in it, not by hand.\n"


class FolderNotOwned(ValueError):
    """A configured output folder that the pipeline did not make and that is not empty."""


def check_owned(path: Path, setting: str) -> None:
    """Raise unless `path` is, or can become, a folder of the pipeline's own. Writes nothing."""
    if (
        path == Path(path.anchor)
        or path in (Path.home().resolve(), *Path.home().resolve().parents)
        or len(path.parts) < 3
    ):
        raise FolderNotOwned(
            f"{setting}: {path} is a system or home folder; give the pipeline a folder of its own (e.g. data/artifacts)"
        )
    if path.is_dir() and not (path / MARK).is_file() and any(path.iterdir()):
        raise FolderNotOwned(
            f"{setting}: {path} already holds files that zipfit-pipeline did not write (no {MARK} in "
            f"it), and the pipeline deletes in this folder: give {setting} a new folder (if this is the "
            f"project's own folder from an earlier version, create an empty {MARK} file in it)"
        )


def claim(path: Path, setting: str) -> Path:
    """The folder, created and marked as the pipeline's if it is new or empty; refused as in `check_owned`."""
    check_owned(path, setting)
    path.mkdir(parents=True, exist_ok=True)
    mark = path / MARK
    if not mark.is_file():
        mark.write_text(MARK_TEXT, encoding="utf-8")
    return path
