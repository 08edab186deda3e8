"""Models, tokenizers and embedders are known by the content of their files, never by the name that points at them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zipfit_pipeline.engine.core.artifacts import artifact_identity, folder_digest


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_a_folder_is_its_files_weights_and_tokenizer_apart(tmp_path: Path) -> None:
    model = _write(tmp_path / "m", {"config.json": b"{}", "model.safetensors": b"w1", "tokenizer.json": b"t1"})
    weights, tokenizer, everything = (folder_digest(model, part) for part in ("weights", "tokenizer", "all"))
    _write(model, {"model.safetensors": b"w2-new"})  # new weights in place: same path
    assert folder_digest(model, "weights") != weights and folder_digest(model, "tokenizer") == tokenizer
    assert folder_digest(model, "all") != everything
    moved = _write(
        tmp_path / "elsewhere", {"config.json": b"{}", "model.safetensors": b"w2-new", "tokenizer.json": b"t1"}
    )
    assert artifact_identity(str(moved)) == artifact_identity(str(model))  # a copy elsewhere is the same model
    _write(model, {".cache": b"x"})  # hidden files (hub locks, editors' swap files) are not the model
    assert artifact_identity(str(model)) == artifact_identity(str(moved))


def test_a_hub_id_is_its_snapshot_in_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new revision under the same hub id is a new model; an id that is not cached is known by its name."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--org--tiny"

    def revision(name: str, weights: bytes) -> str:
        _write(repo / "snapshots" / name, {"config.json": b"{}", "model.safetensors": weights})
        _write(repo / "refs", {"main": name.encode()})
        return artifact_identity("org/tiny")

    first = revision("a" * 40, b"w1")
    assert not first.startswith("hub:") and revision("a" * 40, b"w1") == first
    assert revision("b" * 40, b"w2") != first
    assert artifact_identity("org/absent") == "hub:org/absent (not in the local cache)"
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # looked up without the network
