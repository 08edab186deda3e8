"""The Dagster instance the CLI works in: `DAGSTER_HOME`, given the project's instance settings when it has none.

A `DAGSTER_HOME` without a dagster.yaml gets Dagster's defaults: telemetry on, a welcome banner, pools with no
limit (two DuckDB writers at once). So before any command opens the instance, a folder without one gets a copy of
the repository's top-level `dagster.yaml` (which a built wheel ships beside this module, see setup.py); a
dagster.yaml already there is the user's and is left alone. With `DAGSTER_HOME`
unset, the instance lives in `.dagster_home/` beside the project file, where `make` puts it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

# In a checkout (an editable install) the top-level file itself; in a built wheel, the copy setup.py puts here.
_SHIPPED = Path(__file__).with_name("dagster.yaml")
INSTANCE_SETTINGS = _SHIPPED if _SHIPPED.is_file() else Path(__file__).resolve().parents[2] / "dagster.yaml"


def prepare_dagster_home(project_file: Path) -> Path:
    """The instance folder (set in `DAGSTER_HOME` for this process), holding a dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or project_file.parent / ".dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_SETTINGS, home / "dagster.yaml")
    return home


def project_instance(project_file: Path) -> dg.DagsterInstance:
    prepare_dagster_home(project_file)
    return dg.DagsterInstance.get()
