"""The lexical baseline: each pool text's BM25 score against each target text, averaged over the targets.

BM25 is Lucene's variant with `bm25s`'s tokenization (lower-cased `(?u)\\b\\w\\w+\\b` words, its stopword list): the
pool is the corpus, each target text a query, and the mean over targets mirrors ZIP-FIT's alignment. Everything
BM25 needs of a text is its word counts and length, so they are counted once and stored by content hash (table
`bm25_terms`), like DSIR's n-gram counts; the pool's statistics (its size, mean length, each target word's
document frequency) are sums over the stored rows, computed by DuckDB. A re-selection after new documents counts
only their words. Scores equal those of a `bm25s` index of the same pool to float32 precision (bm25s keeps
float32); the sums here are float64, in pool order, so they are the same on every run.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import pyarrow as pa

from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.select.per_text import fill_missing, seconds_each
from zipfit_pipeline.engine.select.settings import Bm25Settings
from zipfit_pipeline.engine.select.tables import Bm25Tables

WORDS = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default splitter
HIT_BATCH_ROWS = 1 << 20  # (text, word) rows of the pool read at a time when scoring


def stopwords(settings: Bm25Settings) -> tuple[str, ...]:
    from bm25s.tokenization import _infer_stopwords

    return tuple(sorted(_infer_stopwords(settings.stopwords or []) or []))


@dataclass(frozen=True)
class TermCounts:
    """Each text's distinct words, their counts and its length, as bm25s counts them (a text left with no word once
    stopwords are dropped is one empty token to bm25s, so its length is 1); wherever it runs."""

    stopwords: tuple[str, ...]

    def __call__(self, texts: list[str]) -> tuple[pa.Array, pa.Array, pa.Array, float]:
        """(terms, counts, lengths, the seconds the batch took per text)."""
        started = time.perf_counter()
        stop = set(self.stopwords)
        terms, counts, lengths = [], [], []
        for text in texts:
            words = WORDS.findall(text.lower())
            kept = Counter(w for w in words if w not in stop)
            terms.append(list(kept))
            counts.append(list(kept.values()))
            lengths.append(sum(kept.values()) or 1)
        return (
            pa.array(terms, pa.list_(pa.string())),
            pa.array(counts, pa.list_(pa.int32())),
            pa.array(lengths, pa.int32()),
            seconds_each(started, len(texts)),
        )


def counter_identity(settings: Bm25Settings) -> str:
    """A digest of what decides a text's stored counts: the splitter, lower-casing and the stopword list."""
    described = f"bm25s {version('bm25s')} {WORDS.pattern} lower stopwords={','.join(stopwords(settings))}"
    return hashlib.blake2b(described.encode(), digest_size=8).hexdigest()


def query_weights(targets: Sequence[str], settings: Bm25Settings) -> dict[str, int]:
    """Each target word and how often it occurs over all targets: a word twice in a query counts twice."""
    terms, counts, _, _ = TermCounts(stopwords(settings))(list(targets))
    weights: Counter[str] = Counter()
    for words, n in zip(terms.to_pylist(), counts.to_pylist()):
        weights.update(dict(zip(words, n)))
    return dict(weights)


def pool_bm25_scores(
    store: Store,
    hashes: pa.Array,
    targets: Sequence[str],
    settings: Bm25Settings,
    log: Callable[[str], None] = print,
    compute: ComputeSettings = LOCAL,
) -> tuple[np.ndarray, float]:
    """Mean over targets of each pool text's BM25 score, in pool order, from stored word counts (counting only
    texts that have none); and the seconds counting the pool's words took, whenever it was done (charged to every
    selection, as DSIR's n-gram counts are)."""
    key = counter_identity(settings)
    tables = Bm25Tables(store)
    fill_missing(
        store,
        "bm25_terms",
        [key],
        hashes,
        TermCounts(stopwords(settings)),
        lambda batch, found: tables.insert_bm25_terms(key, batch, *found),
        "BM25 word counts",
        log,
        compute,
    )
    weights = query_weights(targets, settings)
    total_length, frequencies = tables.bm25_statistics(key, hashes, list(weights))
    factors = _factors(frequencies, weights, len(hashes))
    hits = tables.bm25_hits(key, hashes, factors, HIT_BATCH_ROWS)
    scores = _scores(hits, len(hashes), total_length, settings) / max(1, len(targets))
    return scores, tables.work_seconds("bm25_terms", key, hashes)


def bm25_scores(pool: Sequence[str], targets: Sequence[str], settings: Bm25Settings) -> np.ndarray:
    """The same scores for texts in memory (the CLI's `zipfit score --method bm25`), without a store."""
    terms, counts, lengths, _ = TermCounts(stopwords(settings))(list(pool))
    weights = query_weights(targets, settings)
    rows = [
        (i, term, n, length)
        for i, (words, ns, length) in enumerate(zip(terms.to_pylist(), counts.to_pylist(), lengths.to_pylist()))
        for term, n in sorted(zip(words, ns))  # the store's order: by position, then word
        if term in weights
    ]
    factor = _factors(dict(Counter(r[1] for r in rows)), weights, len(pool))
    factor_of = dict(zip(factor.column("term").to_pylist(), factor.column("factor").to_pylist()))
    hits = pa.table(
        {
            "position": pa.array([r[0] for r in rows], pa.int64()),
            "factor": pa.array([factor_of[r[1]] for r in rows], pa.float64()),
            "tf": pa.array([r[2] for r in rows], pa.int32()),
            "length": pa.array([r[3] for r in rows], pa.int32()),
        }
    )
    total = int(np.sum(lengths.to_numpy()))
    return _scores([hits], len(pool), total, settings) / max(1, len(targets))


def _factors(frequencies: dict[str, int], weights: dict[str, int], documents: int) -> pa.Table:
    """(term, factor) of each target word found in the pool: its weight times Lucene's idf,
    log(1 + (N - df + 0.5) / (df + 0.5))."""
    terms = sorted(frequencies)
    idf = [np.log(1 + (documents - frequencies[t] + 0.5) / (frequencies[t] + 0.5)) for t in terms]
    return pa.table(
        {"term": pa.array(terms, pa.string()), "factor": pa.array([weights[t] * f for t, f in zip(terms, idf)])}
    )


def _scores(
    hits: Iterable[pa.Table | pa.RecordBatch], documents: int, total_length: int, settings: Bm25Settings
) -> np.ndarray:
    """Sum over target words of factor x tf / (tf + k1 (1 - b + b length / mean length)) per text, from hits
    (position, factor, tf, length); added one hit at a time in the order given, so the sums do not depend on how
    the hits were batched."""
    mean_length = total_length / max(1, documents)
    scores = np.zeros(documents, dtype=np.float64)
    for hit in hits:
        tf = hit.column("tf").to_numpy().astype(np.float64)
        length = hit.column("length").to_numpy().astype(np.float64)
        each = (
            hit.column("factor").to_numpy()
            * tf
            / (tf + settings.k1 * (1 - settings.b + settings.b * length / mean_length))
        )
        np.add.at(scores, hit.column("position").to_numpy(), each)
    return scores
