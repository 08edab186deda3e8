"""code_version strings derived from what changes an asset's output: the engine version and the settings it reads."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from zipfit_pipeline.engine import ENGINE_VERSION


def code_version(*settings: Any) -> str:
    """Engine version plus a short digest of the settings, stable across processes."""
    payload = json.dumps([ENGINE_VERSION, *settings], sort_keys=True, default=str)
    return f"{ENGINE_VERSION}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"
