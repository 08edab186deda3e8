"""Content addressing: every text, set of texts and stage result is keyed by a hash of what it holds, never by the
row it sits in (rows move when a source is re-ingested)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(text: str) -> str:
    """Key of a text everywhere in the store: equal texts share scores whatever dataset they come from."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def set_hash(hashes: list[str]) -> str:
    """Key of an ordered set of texts (a target set): changes when any member or the order changes."""
    return hashlib.blake2b("\n".join(hashes).encode("ascii"), digest_size=16).hexdigest()


def digest(*parts: Any) -> str:
    """A short stable digest of JSON-able values: a stage's data version, changing exactly when they do."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
