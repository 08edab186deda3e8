"""A store and an artifacts folder belong to one project file.

Two project files that name the same store or artifacts folder would overwrite each other's results and delete each
other's checkpoints. So the store records the project file that made it (`store_info.project`) and the artifacts
folder's mark names it too, and every load of a project checks both: one that another project still uses (that
project's file exists and still names this store or folder) is refused, naming the owner. A project that was moved or
copied takes over what its old file no longer uses, silently. `zipfit take-over` hands them over on purpose.
"""

from __future__ import annotations

from pathlib import Path

from zipfit_pipeline.engine.core import owned_folders
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.project_file import DEFAULT_ARTIFACTS, DEFAULT_STORE, read_project_file


class OwnedByAnotherProject(ValueError):
    """The store or artifacts folder of this project is another project's, and that project still uses it."""


def check_ownership(project_file: Path, store: Path, artifacts: Path, take_over: bool = False) -> list[str]:
    """Refuse a store or artifacts folder that another live project owns (unless `take_over`), then record
    `project_file` as their owner. Returns what changed hands, for the log. Creates nothing that does not exist."""
    store_owner = Store(store).owner() if store.is_file() else None
    folder_owner = owned_folders.owner(artifacts)
    for setting, path, owner in (("store", store, store_owner), ("artifacts", artifacts, folder_owner)):
        if owner and owner != project_file and not take_over and still_uses(owner, setting, path):
            raise OwnedByAnotherProject(
                f"{project_file}: {setting}: {path} belongs to the project {owner}, which still uses it; give this "
                f"project a {setting} of its own, or run `zipfit take-over --config {project_file}` to make it this "
                "project's (the other project is then refused)"
            )
    changed = []
    if store.is_file() and store_owner != project_file:
        Store(store).set_owner(project_file)
        changed.append(_handed_over("store", store, store_owner))
    if owned_folders.is_marked(artifacts) and folder_owner != project_file:
        owned_folders.set_owner(artifacts, project_file)
        changed.append(_handed_over("artifacts", artifacts, folder_owner))
    return changed


def _handed_over(setting: str, path: Path, owner: Path | None) -> str:
    return f"{setting} {path}: now this project's" + (f" (was {owner}'s)" if owner else "")


def still_uses(project_file: Path, setting: str, path: Path) -> bool:
    """Whether `project_file` exists and its `setting` names `path`. Read without validating it (a project that no
    longer loads still says where its results are)."""
    try:
        raw = read_project_file(project_file)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # there but unreadable: assume it still uses them
    named = raw.get(setting, {"store": DEFAULT_STORE, "artifacts": DEFAULT_ARTIFACTS}[setting])
    root = project_file.parent / str(raw.get("root", "."))
    return (root / Path(str(named)).expanduser()).resolve() == path
