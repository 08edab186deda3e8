"""The DSIR baseline (Xie et al., 2023) through the `data-selection` package, for the paper's comparison.

`HashedNgramDSIR` fits hashed unigram+bigram distributions on the whole pool and on all target tokens; each
pool text's log importance weight, log p_target(x) - log p_pool(x), is what `resample(top_k=True)` ranks by.
We return those weights so DSIR fills token budgets exactly like ZIP-FIT's scores do. Texts shorter than
`min_example_length` words are never chosen by DSIR; their weight is -inf, so they rank last.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from zipfit_pipeline.engine.settings import DsirSettings

TOKENIZER = "wordpunct"  # the package's default word tokenizer


def dsir_metadata(settings: DsirSettings) -> dict[str, object]:
    """What a user needs to reproduce the baseline with the package itself."""
    return {**settings.model_dump(), "tokenizer": TOKENIZER, "package": "data-selection", "class": "HashedNgramDSIR",
            "fit": "all pool and target tokens", "ranking": "log importance weight, top_k"}


def dsir_weights(pool: Sequence[str], targets: Sequence[str], settings: DsirSettings = DsirSettings()) -> np.ndarray:
    """Log importance weight of every pool text (-inf for texts DSIR filters out as too short)."""
    from data_selection import HashedNgramDSIR

    def texts_of(name: str) -> Iterator[str]:
        return iter(pool if name == "pool" else targets)

    logging.getLogger("nltk").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dsir-") as cache:
        dsir = HashedNgramDSIR(
            raw_datasets=["pool"], target_datasets=["target"], cache_dir=cache,
            raw_load_dataset_fn=texts_of, raw_parse_example_fn=None,  # in memory, texts as they are
            target_load_dataset_fn=texts_of, target_parse_example_fn=None,
            num_proc=1, ngrams=settings.ngrams, num_buckets=settings.num_buckets,
            tokenizer=TOKENIZER, min_example_length=settings.min_example_length,
        )
        dsir.fit_importance_estimator(num_tokens_to_fit="all")
        dsir.compute_importance_weights()
        weights = np.load(Path(dsir.log_importance_weights_dir) / "0.npy")
        lengths = np.load(Path(dsir.perexample_metadata_dir) / "0.npy")
    keep = dsir.perexample_metadata_filter(lengths)
    return np.where(keep, weights.astype(np.float64), -np.inf)
