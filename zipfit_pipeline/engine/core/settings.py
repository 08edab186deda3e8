"""The base of every stage's settings section: validated, frozen, and no unknown keys (a typo is an error)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"  # a source, target or model name: safe in partition keys, file names, the CLI


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
