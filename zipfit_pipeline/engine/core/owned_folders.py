"""Folders the pipeline writes and deletes in (`artifacts`, `cache`): only ones it made or was given empty.

A folder is the pipeline's when it holds the mark file this module writes on first use. A folder that exists,
holds anything, and lacks the mark (a home folder, `/etc`, a folder of the user's own files) is refused, so a
mistyped setting such as `artifacts: "~"` can never let checkpoint clean-up delete a user's files. The mark of a
project's artifacts folder also names the project file it belongs to (see `ownership.py`).
"""

from __future__ import annotations

from pathlib import Path

MARK = ".zipfit-pipeline-folder"
MARK_TEXT = "This folder is written and cleaned up by zipfit-pipeline. Delete it with what is in it, not by hand.\n"
OWNER_LINE = "project: "


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


def claim(path: Path, setting: str, owner: Path | None = None) -> Path:
    """The folder, created and marked as the pipeline's (and `owner`'s) if it is new or empty; refused as in
    `check_owned`."""
    check_owned(path, setting)
    path.mkdir(parents=True, exist_ok=True)
    if not is_marked(path):
        set_owner(path, owner)
    return path


def is_marked(path: Path) -> bool:
    return (path / MARK).is_file()


def owner(path: Path) -> Path | None:
    """The project file named in the folder's mark, None if there is no mark or it names none."""
    if not is_marked(path):
        return None
    lines = (path / MARK).read_text(encoding="utf-8", errors="replace").splitlines()
    return next((Path(line.removeprefix(OWNER_LINE)) for line in lines if line.startswith(OWNER_LINE)), None)


def set_owner(path: Path, project_file: Path | None) -> None:
    """(Re)write the folder's mark, naming `project_file` as its owner."""
    named = f"{OWNER_LINE}{project_file}\n" if project_file else ""
    (path / MARK).write_text(MARK_TEXT + named, encoding="utf-8")
