"""The DSIR baseline: weights from stored per-text counts are the package's own, and rank as its
`resample(top_k=True)`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from data_selection import HashedNgramDSIR
from nltk.tokenize import WordPunctTokenizer

from zipfit_pipeline.engine.core.compute import ComputeSettings
from zipfit_pipeline.engine.core.hashing import content_hash
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record, RecordReader
from zipfit_pipeline.engine.select.dsir import DsirSettings, dsir_weights, featurizer_identity, ngram_counts


def _texts(path: Path, limit: int, **reader: object) -> list[str]:
    return [r.text for r in RecordReader(path=str(path), **reader)][:limit]  # type: ignore[arg-type]


def _store_of(path: Path, pool: list[str]) -> tuple[Store, pa.Array]:
    store = Store(path)
    IngestTables(store).replace_documents("pool", [Record(i, None, t) for i, t in enumerate(pool)], {})
    return store, pa.array([content_hash(t) for t in pool])


def _package_run(pool: list[str], targets: list[str], settings: DsirSettings, folder: Path) -> HashedNgramDSIR:
    """The package's own pipeline on files of the same texts: fit on all tokens, then weights."""
    files = {}
    for name, texts in (("pool", pool), ("target", targets)):
        files[name] = folder / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    dsir = HashedNgramDSIR(
        [str(files["pool"])],
        [str(files["target"])],
        cache_dir=str(folder / "cache"),
        num_proc=1,
        min_example_length=settings.min_example_length,
    )
    dsir.fit_importance_estimator(num_tokens_to_fit="all")
    dsir.compute_importance_weights()
    return dsir


@pytest.fixture
def pool_and_targets(demo_files: dict[str, Path]) -> tuple[list[str], list[str]]:
    pool = list(dict.fromkeys(_texts(demo_files["python_stdlib"], 150) + _texts(demo_files["english_prose"], 150)))
    return pool, _texts(demo_files["humaneval"], 40, template="{prompt}{canonical_solution}")


def test_weights_from_stored_counts_are_the_packages_and_top_k_is_what_it_resamples(
    pool_and_targets: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    pool, targets = pool_and_targets
    settings = DsirSettings(min_example_length=60)
    store, hashes = _store_of(tmp_path / "store.duckdb", pool)
    weights, _ = dsir_weights(store, hashes, targets, settings, log=lambda _: None)

    dsir = _package_run(pool, targets, settings, tmp_path)
    theirs = np.load(Path(dsir.log_importance_weights_dir) / "0.npy")
    kept = dsir.perexample_metadata_filter(np.load(Path(dsir.perexample_metadata_dir) / "0.npy"))
    np.testing.assert_allclose(weights[kept], theirs[kept], rtol=1e-12, atol=1e-12)
    k = 60
    dsir.resample(out_dir=str(tmp_path / "out"), num_to_sample=k, top_k=True)
    chosen = [
        json.loads(line)["text"]
        for f in sorted((tmp_path / "out").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    ours = np.argsort(-weights, kind="stable")[:k]
    assert sorted(chosen) == sorted(pool[i] for i in ours)
    # Texts DSIR filters out (fewer words than min_example_length) rank last, with weight -inf.
    words = np.asarray([len(WordPunctTokenizer().tokenize(t.lower())) for t in pool])
    assert np.isneginf(weights).tolist() == (words < settings.min_example_length).tolist() == (~kept).tolist()
    assert np.isneginf(weights).any() and np.isfinite(weights).any()


def test_a_reselection_featurizes_only_new_texts_and_refits_on_the_whole_pool(
    pool_and_targets: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    """After new documents, only they are featurized; the weights of the grown pool are still the package's (the
    pool's distribution comes from every stored count, old and new)."""
    pool, targets = pool_and_targets
    settings = DsirSettings(min_example_length=0)
    store, hashes = _store_of(tmp_path / "store.duckdb", pool[:200])
    _, first_seconds = dsir_weights(store, hashes, targets, settings, log=lambda _: None)
    store, hashes = _store_of(tmp_path / "store.duckdb", pool)
    lines: list[str] = []
    weights, seconds = dsir_weights(store, hashes, targets, settings, log=lines.append)
    assert lines == [f"DSIR n-gram counts (1 process): 200 stored, {len(pool) - 200} computed now"]
    # The cost charged is the counting of the whole pool, whenever it was done (as ZIP-FIT's stored scoring is):
    # asking again computes nothing and is charged the same.
    assert seconds > first_seconds > 0
    assert dsir_weights(store, hashes, targets, settings, log=lambda _: None)[1] == seconds
    theirs = np.load(Path(_package_run(pool, targets, settings, tmp_path).log_importance_weights_dir) / "0.npy")
    np.testing.assert_allclose(weights, theirs, rtol=1e-12, atol=1e-12)

    key = featurizer_identity(settings)
    featurized = store.query("SELECT count(*) AS n FROM dsir_features WHERE featurizer = ?", [key])
    assert featurized.to_pylist()[0]["n"] == len(pool)
    stored = store.query(
        "SELECT buckets, counts FROM dsir_features WHERE content_hash = ?", [content_hash(pool[0])]
    ).to_pylist()[0]
    buckets, counts = ngram_counts([pool[0]], settings.ngrams, settings.num_buckets)
    assert (stored["buckets"], stored["counts"]) == (buckets[0].as_py(), counts[0].as_py())


def test_featurizing_on_several_processes_stores_what_one_process_does(
    pool_and_targets: tuple[list[str], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zipfit_pipeline.engine.select import dsir

    pool, targets = pool_and_targets
    one, hashes = _store_of(tmp_path / "one.duckdb", pool)
    first, _ = dsir_weights(one, hashes, targets, log=lambda _: None)
    monkeypatch.setattr(dsir, "PARALLEL_FROM", 4)  # this small pool on every core
    several, hashes = _store_of(tmp_path / "several.duckdb", pool)
    lines: list[str] = []
    two_cores = ComputeSettings(workers=2)
    assert dsir_weights(several, hashes, targets, log=lines.append, compute=two_cores)[0].tolist() == first.tolist()
    assert lines == [f"DSIR n-gram counts (2 processes): 0 stored, {len(pool)} computed now"]
    query = "SELECT content_hash, buckets, counts FROM dsir_features ORDER BY content_hash"  # not the seconds
    assert several.query(query).to_pylist() == one.query(query).to_pylist()
