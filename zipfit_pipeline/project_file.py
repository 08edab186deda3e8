"""Reading the project file's YAML, before validation: bounded in size, without aliases.

Shared by `config.py` (which validates it) and `ownership.py` (which reads another project's file only to see
where its store and artifacts are).
"""

from __future__ import annotations

from pathlib import Path

import yaml

CONFIG_ENV = "ZIPFIT_CONFIG"
MAX_PROJECT_FILE_BYTES = (
    1_000_000  # a project file is a page of settings; anything far larger is a mistake or an attack
)
DEFAULT_STORE = "data/zipfit.duckdb"
DEFAULT_ARTIFACTS = "data/artifacts"


def read_project_file(file: Path) -> dict:
    """The project file's settings as YAML gives them, unvalidated; errors name the file."""
    if not file.is_file():
        raise FileNotFoundError(f"project file {file} not found (set {CONFIG_ENV} or run from the project folder)")
    if file.stat().st_size > MAX_PROJECT_FILE_BYTES:
        raise ValueError(
            f"{file}: {file.stat().st_size:,} bytes; a project file may have at most {MAX_PROJECT_FILE_BYTES:,}"
        )
    try:
        raw = yaml.load(file.read_text(encoding="utf-8"), Loader=_NoAliasLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{file}: not a readable YAML file: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: the project file must be a mapping of settings (sources:, targets:, models:, ...)")
    return raw


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (`*name`): nested aliases expand exponentially ("billion laughs"), and a
    project file never needs them."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a project file", mark)
        return super().compose_node(parent, index)
