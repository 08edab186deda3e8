"""Our scores and ranking equal the authors' `zip-fit==1.0.9` on 300 real documents × 20 targets, on both paths."""

import json

import numpy as np
import pytest
from zip_fit.zipfit import ZIPFIT

from zipfit_pipeline.engine.score import native
from zipfit_pipeline.engine.score.alignment import alignment_scores
from zipfit_pipeline.engine.select.ranking import rank_by_score


def _corpus(demo_files: dict) -> tuple[list[str], list[str]]:
    sources: list[str] = []
    for name in ("python_stdlib", "english_prose"):
        rows = [json.loads(line) for line in demo_files[name].read_text(encoding="utf-8").splitlines()]
        distinct = [t for t in dict.fromkeys(r["text"] for r in rows) if t not in sources]
        sources += distinct[:150]
    problems = [json.loads(line) for line in demo_files["humaneval"].read_text(encoding="utf-8").splitlines()]
    targets = [
        f"Problem description: {p['prompt']} \nCanonical solution: {p['canonical_solution']}" for p in problems[:20]
    ]
    assert len(set(sources)) == len(sources) == 300
    return sources, targets


@pytest.mark.parametrize("path", [native.NATIVE, native.PURE_PYTHON])
@pytest.mark.parametrize(("compressor", "level"), [("gzip", 1), ("gzip", 6), ("gzip", 9), ("lz4", 0), ("zstd", 3)])
def test_scores_and_ranking_equal_reference(
    compressor: str, level: int, path: str, demo_files: dict, tmp_path, request: pytest.FixtureRequest
) -> None:
    if path == native.PURE_PYTHON:
        request.getfixturevalue("pure_python")
    elif level not in native.NATIVE_LEVELS.get(compressor, ()):
        pytest.skip(f"{compressor} has no native path")
    else:
        pytest.importorskip("zipfit_pipeline._joint_sizes", reason="the native extension is not built (no C compiler)")
    assert native.code_path(compressor, level) == path
    sources, targets = _corpus(demo_files)
    reference = ZIPFIT(
        "unused",
        "unused",
        k=len(sources),
        output_file=str(tmp_path / "out.jsonl"),
        compression_algorithm=compressor,
        compress_level=level,
    )
    ranked = reference.rank_sequences_by_alignment(sources, targets)
    reference_scores = dict(ranked)
    ours = alignment_scores(sources, targets, compressor, level, workers=2, chunk_size=32)

    expected = np.asarray([reference_scores[s] for s in sources])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)

    # The whole ranking: ours breaks ties by source order; the reference's sort keeps its arrival order,
    # so compare position by position up to the members of each group of equal scores.
    order = rank_by_score(ours)
    our_ranking = [sources[i] for i in order]
    ref_ranking = [text for text, _ in ranked]
    assert len(our_ranking) == len(ref_ranking) == len(sources)
    position = 0
    while position < len(sources):
        end = position + 1
        while end < len(sources) and abs(ours[order[end]] - ours[order[position]]) <= 1e-12:
            end += 1
        assert set(our_ranking[position:end]) == set(ref_ranking[position:end])
        position = end
