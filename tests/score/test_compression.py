"""Compressed sizes and similarities against SPEC.md's golden values and the stdlib/package compressors."""

import gzip
import random
import warnings

import lz4.frame
import pytest
import zstandard

from zipfit_pipeline.engine.score.compression import check_compressor, size_function
from zipfit_pipeline.engine.score.scorer import AlignmentScorer

A = "def add(a, b):\n    return a + b\n"
B1 = "def sub(a, b):\n    return a - b\n"
B2 = "The quick brown fox jumps over the lazy dog."


def test_golden_gzip_level1_sizes() -> None:
    size = size_function("gzip", 1)
    assert [size(s.encode()) for s in (A, B1, B2, A + B1, A + B2)] == [50, 50, 63, 61, 92]


@pytest.mark.parametrize(
    ("compressor", "level", "target", "expected"),
    [("gzip", 1, B1, 0.78), ("gzip", 1, B2, 0.33333333333333337), ("lz4", 0, B1, 0.6909090909090909)],
)
def test_golden_similarities(compressor: str, level: int, target: str, expected: float) -> None:
    assert AlignmentScorer([target], compressor, level).score(A) == expected


def _texts(demo_files: dict) -> list[str]:
    lines = demo_files["english_prose"].read_text(encoding="utf-8").splitlines()
    return [line for line in lines[:60]]


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_gzip_size_is_gzip_compress(level: int, demo_files: dict) -> None:
    size = size_function("gzip", level)
    for text in _texts(demo_files):
        data = text.encode()
        assert size(data) == len(gzip.compress(data, compresslevel=level))


@pytest.mark.parametrize(("compressor", "level"), [("gzip", 1), ("gzip", 9), ("lz4", 0), ("zstd", 3)])
def test_scorer_equals_direct_pairwise_compression(compressor: str, level: int, demo_files: dict) -> None:
    """The primed-stream shortcut (gzip) and reused contexts (zstd) give the same sizes as one-shot calls."""
    reference = {
        "gzip": lambda b: len(gzip.compress(b, compresslevel=level)),
        "lz4": lambda b: len(lz4.frame.compress(b, compression_level=level)),
        "zstd": lambda b: len(zstandard.ZstdCompressor(level=level).compress(b)),
    }[compressor]
    texts = _texts(demo_files)
    rng = random.Random(0)
    targets = rng.sample(texts, 5)
    scorer = AlignmentScorer(targets, compressor, level)
    for x in rng.sample(texts, 10):
        c_x = reference(x.encode())
        sims = []
        for t in targets:
            c_t, c_xt = reference(t.encode()), reference((x + t).encode())
            sims.append(1 - (c_xt - min(c_x, c_t)) / max(c_x, c_t))
        assert scorer.score(x) == pytest.approx(sum(sims) / len(sims), abs=1e-12)


def test_bad_compressor_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown compressor"):
        check_compressor("brotli", 1)
    with pytest.raises(ValueError, match="level"):
        check_compressor("gzip", 12)


def test_gzip_level_zero_warns() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_compressor("gzip", 0)
    assert any("level 0" in str(w.message) for w in caught)


def test_empty_target_set_is_an_error() -> None:
    with pytest.raises(ValueError, match="target set is empty"):
        AlignmentScorer([], "gzip", 9)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_long_sources_take_the_primed_path_exactly(level: int, demo_files: dict) -> None:
    """Sources above the priming threshold go through a copied deflate stream; sizes stay exact."""
    text = demo_files["python_stdlib"].read_text(encoding="utf-8")[:6000]
    targets = [A, B1, B2]
    c = lambda s: len(gzip.compress(s.encode(), compresslevel=level))  # noqa: E731
    expected = [1 - (c(text + t) - min(c(text), c(t))) / max(c(text), c(t)) for t in targets]
    assert AlignmentScorer(targets, "gzip", level).score(text) == pytest.approx(sum(expected) / 3, abs=1e-12)
