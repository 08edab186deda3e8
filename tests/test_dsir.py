"""The DSIR baseline ranks exactly as `data-selection`'s own `resample(top_k=True)` chooses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from data_selection import HashedNgramDSIR
from nltk.tokenize import WordPunctTokenizer

from zipfit_pipeline.engine.dsir import DsirSettings, dsir_weights
from zipfit_pipeline.engine.loaders import RecordReader


def _texts(path: Path, limit: int, **reader: object) -> list[str]:
    return [r.text for r in RecordReader(path=str(path), **reader)][:limit]  # type: ignore[arg-type]


def test_top_k_by_our_weights_is_what_the_package_resamples(demo_files: dict[str, Path], tmp_path: Path) -> None:
    pool = _texts(demo_files["python_stdlib"], 150) + _texts(demo_files["english_prose"], 150)
    targets = _texts(demo_files["humaneval"], 40, template="{prompt}{canonical_solution}")
    settings = DsirSettings(min_example_length=60)
    weights = dsir_weights(pool, targets, settings)

    files = {}
    for name, texts in (("pool", pool), ("target", targets)):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    dsir = HashedNgramDSIR([str(files["pool"])], [str(files["target"])], cache_dir=str(tmp_path / "cache"), num_proc=1,
                           min_example_length=settings.min_example_length)
    dsir.fit_importance_estimator(num_tokens_to_fit="all")
    dsir.compute_importance_weights()
    k = 60
    dsir.resample(out_dir=str(tmp_path / "out"), num_to_sample=k, top_k=True)
    chosen = [json.loads(line)["text"] for f in sorted((tmp_path / "out").glob("*.jsonl")) for line in f.read_text().splitlines()]

    ours = np.argsort(-weights, kind="stable")[:k]
    assert sorted(chosen) == sorted(pool[i] for i in ours)
    # Texts DSIR filters out (fewer words than min_example_length) rank last, with weight -inf.
    words = np.asarray([len(WordPunctTokenizer().tokenize(t.lower())) for t in pool])
    assert np.isneginf(weights).tolist() == (words < settings.min_example_length).tolist()
    assert np.isneginf(weights).any() and np.isfinite(weights).any()
