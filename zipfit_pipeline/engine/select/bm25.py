"""The lexical baseline: each pool text's BM25 score against each target text, averaged over the targets.

The pool is the BM25 corpus (its document frequencies and lengths), each target text a query, scored by the
`bm25s` package (Lucene's variant, with its tokenizer and stopword list). The mean over targets mirrors ZIP-FIT's
alignment. Corpus statistics depend on the whole pool, so the index is rebuilt at each selection (seconds for
10^5 texts); nothing is stored per text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zipfit_pipeline.engine.select.settings import Bm25Settings


def bm25_scores(pool: Sequence[str], targets: Sequence[str], settings: Bm25Settings) -> np.ndarray:
    """Mean over targets of each pool text's BM25 score, in pool order."""
    import bm25s

    tokenizer = bm25s.tokenization.Tokenizer(stopwords=settings.stopwords or [])
    corpus = tokenizer.tokenize(list(pool), show_progress=False, return_as="tuple")
    retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method="lucene")
    retriever.index(corpus, show_progress=False)
    queries = tokenizer.tokenize(list(targets), update_vocab=False, show_progress=False, return_as="ids")
    # bm25s gives a text with no known word the id of the empty document (""): as a query it would score the pool's
    # content-free texts above zero. A target sharing no word with the pool scores 0 for every text.
    empty = tokenizer.word_to_id.get("")
    total = np.zeros(len(pool), dtype=np.float64)
    for query in queries:
        words = [i for i in query if i != empty]
        if words:
            total += retriever.get_scores_from_ids(words)
    return total / max(1, len(targets))
