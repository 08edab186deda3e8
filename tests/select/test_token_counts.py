"""Token counts are stored per text and tokenizer: a re-selection tokenizes only the texts it has not seen."""

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zipfit_pipeline.engine.core.hashing import content_hash
from zipfit_pipeline.engine.core.models import count_tokens, load_tokenizer, tokenizer_identity
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record
from zipfit_pipeline.engine.select.stage import pool_tokens

TEXTS = [f"def f{i}(x):\n    return x * {i} + {'y' * i}\n" for i in range(12)]


class RecordingTokenizer:
    """The real tokenizer, recording every text it is asked to tokenize (counting goes through its Rust backend)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seen = inner, []
        self.backend_tokenizer = RecordingBackend(self)

    def __call__(self, texts: list[str], **options: Any) -> Any:
        self.seen += texts
        return self.inner(texts, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RecordingBackend:
    def __init__(self, owner: RecordingTokenizer) -> None:
        self.owner = owner

    def encode_batch_fast(self, texts: list[str], **options: Any) -> Any:
        self.owner.seen += texts
        return self.owner.inner.backend_tokenizer.encode_batch_fast(texts, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.owner.inner.backend_tokenizer, name)


def _counts(store: Store, tokenizer: Any, texts: list[str]) -> np.ndarray:
    IngestTables(store).replace_documents("pool", [Record(i, None, t) for i, t in enumerate(texts)], {})
    hashes = pa.array([content_hash(t) for t in texts])
    return pool_tokens(store, tokenizer, hashes, log=lambda _: None)


def test_a_text_is_tokenized_once_per_tokenizer(tmp_path: Path, tiny_model: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    tokenizer = RecordingTokenizer(load_tokenizer(str(tiny_model)))
    assert _counts(store, tokenizer, TEXTS[:10]).tolist() == count_tokens(tokenizer.inner, TEXTS[:10])
    assert tokenizer.seen == TEXTS[:10]

    tokenizer.seen = []
    assert _counts(store, tokenizer, TEXTS).tolist() == count_tokens(tokenizer.inner, TEXTS)
    assert tokenizer.seen == TEXTS[10:]  # only the two new texts

    other = RecordingTokenizer(load_tokenizer(str(tiny_model)))
    other.inner.add_tokens(["return x"])  # another vocabulary could count otherwise: nothing is reused
    assert tokenizer_identity(other) != tokenizer_identity(tokenizer)
    assert _counts(store, other, TEXTS).tolist() == count_tokens(other.inner, TEXTS)
    assert other.seen == TEXTS
