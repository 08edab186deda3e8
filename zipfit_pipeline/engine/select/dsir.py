"""The DSIR baseline (Xie et al., 2023) with the `data-selection` package's own featurization, stored per text.

`HashedNgramDSIR` hashes each text's lower-cased wordpunct unigrams and bigrams into buckets, fits the pool's
and the target's bucket distributions, and ranks by each text's log importance weight
`log_diff · features`, `log_diff = log(p_target + 1e-8) - log(p_pool + 1e-8)` (what `resample(top_k=True)`
takes the top of). Everything but `log_diff` is per text, so each text's counts are computed once, with the
package's `get_ngram_counts`, on all cores, and stored by content hash. A re-selection featurizes only new
texts; the pool's distribution is the sum of stored counts, and the weights are one pass over them. Texts shorter
than `min_example_length` words (the package's length, from the same counts) are never chosen: weight -inf.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.select.per_text import fill_missing, seconds_each
from zipfit_pipeline.engine.select.settings import DsirSettings
from zipfit_pipeline.engine.select.tables import SelectTables

TOKENIZER = "wordpunct"  # the package's default word tokenizer
SMOOTHING = 1e-8  # the package's, in log_diff
PARALLEL_FROM = 2000  # new texts below this are featurized in-process (a worker costs a second to start)
WEIGHT_BATCH_ROWS = 4096  # stored features read at a time when computing weights


def dsir_metadata(settings: DsirSettings) -> dict[str, object]:
    """What a user needs to reproduce the baseline with the package itself."""
    return {
        **settings.model_dump(),
        "tokenizer": TOKENIZER,
        "package": "data-selection",
        "class": "HashedNgramDSIR",
        "fit": "all pool and target tokens",
        "ranking": "log importance weight, top_k",
    }


def featurizer_identity(settings: DsirSettings) -> str:
    """A digest of what decides a text's stored counts: the package and tokenizer versions and the hashing settings
    (short, because it is part of every stored row's key)."""
    described = (
        f"data-selection {version('data-selection')} nltk {version('nltk')} {TOKENIZER} "
        f"ngrams={settings.ngrams} buckets={settings.num_buckets}"
    )
    return hashlib.blake2b(described.encode(), digest_size=8).hexdigest()


def ngram_counts(texts: Sequence[str], ngrams: int, num_buckets: int) -> tuple[pa.Array, pa.Array]:
    """Each text's non-zero hashed n-gram buckets and their counts, as two aligned list arrays."""
    from data_selection.hashed_ngram_dsir import get_ngram_counts, wpt

    logging.getLogger("nltk").setLevel(logging.WARNING)
    buckets, counts = [], []
    for text in texts:
        dense = get_ngram_counts(text, n=ngrams, num_buckets=num_buckets, tokenizer=wpt.tokenize)
        hit = np.flatnonzero(dense)
        buckets.append(hit.astype(np.int32))
        counts.append(dense[hit].astype(np.int32))
    return _lists(buckets), _lists(counts)


@dataclass(frozen=True)
class NgramCounts:
    """A batch's hashed n-gram counts and the seconds they took per text, wherever it runs."""

    ngrams: int
    num_buckets: int

    def __call__(self, texts: list[str]) -> tuple[pa.Array, pa.Array, float]:
        started = time.perf_counter()
        return (*ngram_counts(texts, self.ngrams, self.num_buckets), seconds_each(started, len(texts)))


def store_features(
    store: Store,
    hashes: pa.Array,
    settings: DsirSettings,
    log: Callable[[str], None] = print,
    compute: ComputeSettings = LOCAL,
) -> int:
    """Featurize and store every given text that has no stored counts yet, on all cores (or on Ray); returns how
    many."""
    key = featurizer_identity(settings)
    work = NgramCounts(settings.ngrams, settings.num_buckets)
    todo = len(SelectTables(store).unstored("dsir_features", [key], hashes))
    cores = compute.local_workers() if todo >= PARALLEL_FROM and compute.backend == "local" else 1
    spawn = multiprocessing.get_context("spawn")
    # This process takes one share of each batch and cores - 1 workers the others: all cores, one worker fewer.
    with ProcessPoolExecutor(cores - 1, mp_context=spawn) if cores > 1 else nullcontext() as pool:

        def on_all_cores(texts: list[str]) -> tuple[pa.Array, pa.Array, float]:
            started = time.perf_counter()
            step = -(-len(texts) // cores)
            pieces = [texts[i : i + step] for i in range(0, len(texts), step)]
            elsewhere = pool.map(work, pieces[1:]) if pool else []  # submitted before this process takes its share
            parts = [work(pieces[0]), *elsewhere]
            buckets, counts = pa.concat_arrays([p[0] for p in parts]), pa.concat_arrays([p[1] for p in parts])
            return buckets, counts, seconds_each(started, len(texts))

        return fill_missing(
            store,
            "dsir_features",
            [key],
            hashes,
            work,
            lambda batch, found: SelectTables(store).insert_dsir_features(key, batch, *found),
            f"DSIR n-gram counts ({cores} process{'es' if cores > 1 else ''})",
            log,
            compute,
            on_all_cores,
        )


def log_diff(pool_counts: np.ndarray, target_counts: np.ndarray) -> np.ndarray:
    """The package's `log_diff`, from integer bucket counts summed over the pool and over the targets."""
    raw_probs = pool_counts / pool_counts.sum()
    target_probs = target_counts / target_counts.sum()
    return np.log(target_probs + SMOOTHING) - np.log(raw_probs + SMOOTHING)


def dsir_weights(
    store: Store,
    hashes: pa.Array,
    targets: Sequence[str],
    settings: DsirSettings | None = None,
    log: Callable[[str], None] = print,
    compute: ComputeSettings = LOCAL,
) -> tuple[np.ndarray, float]:
    """Log importance weight of every given pool text (-inf for texts DSIR filters out as too short), in order; and
    the seconds the stored n-gram counts of those texts took (the per-text work DSIR ranks by, like ZIP-FIT's
    scoring: charged on every selection, whenever it was done)."""
    settings = settings or DsirSettings()
    store_features(store, hashes, settings, log, compute)
    key = featurizer_identity(settings)
    totals = SelectTables(store).dsir_feature_totals(key, hashes)
    pool_counts = np.zeros(settings.num_buckets, dtype=np.int64)
    pool_counts[totals.column("bucket").to_numpy()] = totals.column("total").to_numpy()
    target_buckets, target_n = ngram_counts(targets, settings.ngrams, settings.num_buckets)
    target_counts = np.bincount(
        target_buckets.flatten().to_numpy(), weights=target_n.flatten().to_numpy(), minlength=settings.num_buckets
    ).astype(np.int64)
    diff = log_diff(pool_counts, target_counts)

    found, weights, words = [], [], []
    for batch in SelectTables(store).dsir_features(key, hashes, WEIGHT_BATCH_ROWS):
        found.append(pa.concat_arrays([batch.column("content_hash")]))  # a copy: a slice would keep the whole batch
        batch_weights, batch_words = _weights_and_words(
            batch.column("buckets"), batch.column("counts"), diff, settings.ngrams
        )
        weights.append(batch_weights)
        words.append(batch_words)
    row_of = pc.index_in(hashes, value_set=pa.concat_arrays(found) if found else pa.array([], pa.string()))
    if row_of.null_count:
        raise LookupError(f"{row_of.null_count} pool texts have no stored DSIR counts in {store.path}: select again")
    rows = row_of.to_numpy()
    keep = np.concatenate(words)[rows] >= settings.min_example_length
    seconds = SelectTables(store).work_seconds("dsir_features", key, hashes)
    return np.where(keep, np.concatenate(weights)[rows], -np.inf), seconds


def _weights_and_words(
    buckets: pa.ListArray, counts: pa.ListArray, diff: np.ndarray, ngrams: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each text's `log_diff · features` and the package's word count `(sum(features) + n(n-1)/2) // n`."""
    lengths = pc.list_value_length(buckets).to_numpy(zero_copy_only=False)
    text_of = np.repeat(np.arange(len(buckets)), lengths)
    n = counts.flatten().to_numpy().astype(np.float64)
    weights = np.bincount(text_of, weights=diff[buckets.flatten().to_numpy()] * n, minlength=len(buckets))
    words = (np.bincount(text_of, weights=n, minlength=len(buckets)) + ngrams * (ngrams - 1) / 2) // ngrams
    return weights, words


def _lists(parts: list[np.ndarray]) -> pa.Array:
    offsets = np.zeros(len(parts) + 1, dtype=np.int32)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    values = np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int32()))
