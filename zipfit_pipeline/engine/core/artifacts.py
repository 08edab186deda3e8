"""External artifacts by content: model weights, tokenizer files and embedders are identified by a digest of
their files, never by the path or hub id that names them, so that new weights in the same folder (or a new
revision under the same hub id) are new inputs.

Hashing a 500 MB folder takes about a second; a file's digest is kept per process while its size and
modification time are unchanged, so asking again (every sensor tick, every partition of a sweep) costs a stat.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from zipfit_pipeline.engine.core.hashing import digest

# Files that make a tokenizer (Hugging Face's names, sentencepiece and tiktoken models); the rest of a model folder
# is its weights and config.
TOKENIZER_FILES = ("tokenizer", "vocab", "merges", "special_tokens_map", "added_tokens", "spiece", "chat_template")
_file_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """The content digest of one file, computed once per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_digests:
        h = hashlib.blake2b(digest_size=16)
        with path.open("rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        _file_digests[key] = h.hexdigest()
    return _file_digests[key]


def is_tokenizer_file(name: str) -> bool:
    return name.startswith(TOKENIZER_FILES) or name.endswith((".model", ".tiktoken"))


def folder_digest(folder: Path, part: str = "all") -> str:
    """Digest of a folder's files (names and contents, hidden files and folders left out): `weights` the files
    that are not the tokenizer's, `tokenizer` those that are, `all` every file."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )
    chosen = [p for p in files if part == "all" or (part == "tokenizer") == is_tokenizer_file(p.name)]
    return digest([(str(p.relative_to(folder)), file_digest(p)) for p in chosen])


def artifact_identity(name_or_path: str, part: str = "all") -> str:
    """What a model, tokenizer or embedder named by a path or hub id is, by content: the digest of its local files
    (a hub id's files in the local Hugging Face cache, whose snapshot folder is the revision); a hub id not in
    the cache is known by its name and says so."""
    local = Path(name_or_path)
    if local.is_dir():
        return folder_digest(local, part)
    if local.is_file():
        return file_digest(local)
    snapshot = _cached_snapshot(name_or_path)
    if snapshot is None:
        return f"hub:{name_or_path} (not in the local cache)"
    return folder_digest(snapshot, part)


def _cached_snapshot(hub_id: str) -> Path | None:
    """The local Hugging Face cache's snapshot folder of a hub id, never reaching the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached, or not a valid id: known by name only
        return None


def interpreter_identity(python: str) -> str:
    """An interpreter by its path and the content of its executable (another build at the same path is another)."""
    path = os.path.realpath(python)
    return f"{path} {file_digest(Path(path))}"
