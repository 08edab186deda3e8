"""The native joint sizes: built wherever a compiler is, equal to the interpreter's on generated pairs, and never
used when they are not (the pure-Python path scores instead, says why, and the run records it)."""

from __future__ import annotations

import gzip
import logging
import random
import shutil
import sysconfig
import zlib
from collections.abc import Iterator
from types import ModuleType

import lz4.frame
import numpy as np
import pytest
from stores import score

from zipfit_pipeline.demo.inputs import c_headers, english_prose, python_functions
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record
from zipfit_pipeline.engine.score import native
from zipfit_pipeline.engine.score.alignment import alignment_scores
from zipfit_pipeline.engine.score.scorer import AlignmentScorer

WINDOW = 32 * 1024


@pytest.fixture
def extension() -> ModuleType:
    """The built extension; without a C compiler there is none, and `test_extension_is_built_where_a_compiler_is`
    says whether that is allowed."""
    return pytest.importorskip(
        "zipfit_pipeline._joint_sizes", reason="the native extension is not built (no C compiler)"
    )


def test_extension_is_built_where_a_compiler_is() -> None:
    """`make test` fails here when `pip install` had a compiler and still left the extension out."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the pure-Python path scores, which the other tests cover")
    from zipfit_pipeline import _joint_sizes  # noqa: F401  (ImportError: the install step did not build it)

    for compressor, levels in native.NATIVE_LEVELS.items():
        for level in levels:
            assert native.code_path(compressor, level) == native.NATIVE, native.joint_sizes(compressor, level)[1]


def _generated_pairs(rng: random.Random) -> Iterator[tuple[bytes, list[bytes]]]:
    """Sources with their targets: real text, random bytes, long runs, text near the 32 KiB window and the
    symbol buffer's 16,383 symbols, and empty texts, on both sides."""
    real = [d["text"].encode() for d in python_functions(300)] + [d["text"].encode() for d in c_headers(100)]
    real += [d["text"].encode() for d in english_prose(100)]
    joined = b"\n".join(real)
    runs = [bytes([rng.randrange(256)]) * rng.randrange(1, 3000) for _ in range(40)]
    targets = real[:40] + runs[:4] + [b"", rng.randbytes(700), joined[: WINDOW // 2]]
    for x in real[40:]:
        yield x, targets
    for _ in range(40):
        yield rng.randbytes(rng.randrange(0, 5000)), targets
    for run in runs:
        yield run, targets
    for length in (WINDOW - 300, WINDOW - 3, WINDOW, WINDOW + 5, 2 * WINDOW - 400, 2 * WINDOW - 262, 2 * WINDOW + 100):
        yield joined[:length], [b"", joined[:100], joined[length : length + 600], rng.randbytes(300)]
    printable = bytes(rng.randrange(32, 127) for _ in range(40_000))
    for length in (15_900, 16_100, 16_383, 16_700, 32_900):
        yield printable[:length], [printable[-800:], b"x", printable[:300], real[0]]
    yield b"", targets


def test_native_equals_interpreter_on_generated_pairs(extension: ModuleType) -> None:
    """≥100,000 pairs over gzip 1-9 and lz4 0-16: the extension's sizes are the interpreter's, to the byte."""
    pairs = list(_generated_pairs(random.Random(7)))
    checked = 0
    settings = [("gzip", level) for level in range(1, 10)] + [("lz4", level) for level in (0, 3, 9, 16)]
    for compressor, level in settings:
        step = 1 if (compressor, level) in (("gzip", 1), ("gzip", 6), ("gzip", 9), ("lz4", 0)) else 4
        for x, targets in pairs[::step]:
            if compressor == "gzip":
                ours = extension.deflate_joint_sizes(x, targets, level)
                theirs = [len(zlib.compress(x + t, level, -15)) for t in targets]
            else:
                ours = extension.lz4_joint_sizes(x, targets, level)
                theirs = [len(lz4.frame.compress(x + t, compression_level=level)) for t in targets]
            wrong = [(len(t), a, b) for t, a, b in zip(targets, ours, theirs) if a != b]
            assert not wrong, (
                f"{compressor}-{level}, {len(x)}-byte source: (target bytes, ours, interpreter's) {wrong[:3]}"
            )
            checked += len(targets)
    assert checked >= 100_000


def test_deflate_refuses_level_zero_and_bad_targets(extension: ModuleType) -> None:
    """Level 0 stores, and sizing its last block as a compressed one would be wrong: refused, not guessed."""
    with pytest.raises(ValueError, match="level must be 1-9, got 0"):
        extension.deflate_joint_sizes(b"x", [b"y"], 0)
    with pytest.raises(TypeError):
        extension.deflate_joint_sizes(b"x", ["a str, not bytes"], 9)


@pytest.fixture
def disagreeing_extension(extension: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The extension answers one byte more than the interpreter, as a miscompiled or mismatched zlib would."""
    deflate = extension.deflate_joint_sizes
    monkeypatch.setattr(
        extension, "deflate_joint_sizes", lambda x, targets, level: [size + 1 for size in deflate(x, targets, level)]
    )
    native.joint_sizes.cache_clear()
    yield
    native.joint_sizes.cache_clear()


def test_a_disagreeing_extension_is_never_used(
    disagreeing_extension: None, caplog: pytest.LogCaptureFixture, tmp_path
) -> None:
    texts = [d["text"] for d in english_prose(40)]
    targets = [d["text"] for d in python_functions(5)]
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        scorer = AlignmentScorer(targets, "gzip", 9)
        AlignmentScorer(targets, "gzip", 9)
    assert scorer.code_path == native.PURE_PYTHON
    assert [r.getMessage() for r in caplog.records if "pure-Python" in r.getMessage()] == [
        caplog.records[0].getMessage()
    ], "the reason is logged once per process"
    assert "differ from the interpreter's" in caplog.records[0].getMessage()

    def size(text: str) -> int:
        return len(gzip.compress(text.encode(), compresslevel=9))

    expected = [
        np.mean([1 - (size(x + t) - min(size(x), size(t))) / max(size(x), size(t)) for t in targets]) for x in texts
    ]
    np.testing.assert_allclose(scorer.score_many(texts), expected, rtol=0, atol=1e-12)

    store = Store(tmp_path / "store.duckdb")
    IngestTables(store).replace_documents("prose", [Record(i, None, t) for i, t in enumerate(texts)], {})
    report = score(store, "prose", targets, "gzip", 9)
    assert report.code_path == native.PURE_PYTHON
    assert store.query("SELECT code_path FROM scoring_runs").to_pylist() == [{"code_path": "python"}]


def test_pure_python_path_when_switched_off(pure_python: None) -> None:
    assert native.joint_sizes("gzip", 9) == (None, "ZIPFIT_NATIVE=0")
    assert AlignmentScorer(["def f(): pass"], "gzip", 9).code_path == native.PURE_PYTHON


def test_a_worker_on_another_path_refuses_to_score(pure_python: None) -> None:
    with pytest.raises(RuntimeError, match="scores on the python path, not the native path"):
        AlignmentScorer(["def f(): pass"], "gzip", 9, code_path=native.NATIVE)


@pytest.mark.parametrize("backend", ["processes", "threads", "local"])
def test_every_local_backend_gives_the_pure_python_scores(backend: str) -> None:
    texts = [d["text"] for d in english_prose(60)] + [d["text"] for d in c_headers(30)]
    targets = [d["text"] for d in python_functions(8)]
    on_native = alignment_scores(texts, targets, "gzip", 6, workers=2, chunk_size=16, backend=backend)
    native.joint_sizes.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ZIPFIT_NATIVE", "0")
            on_python = alignment_scores(texts, targets, "gzip", 6, workers=1)
    finally:
        native.joint_sizes.cache_clear()
    np.testing.assert_array_equal(on_native, on_python)
