"""Decontamination: pool texts that share a long word n-gram with the target's held-out test split.

ZIP-FIT ranks first what compresses best with the target, so a near-copy of a held-out test problem (HumanEval
is copied all over public code) ranks at the very top and inflates the test gain. A pool text is contaminated
when it shares `ngram_words` consecutive words with any test text: words are `\\w+` runs, lower-cased, so
whitespace, indentation and punctuation do not hide a copy. 13 words is GPT-3's contamination rule; it is long
enough that common phrases and boilerplate do not match. Results are stored per content hash and test split, so
a refresh checks only new texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from zipfit_pipeline.engine.core.hashing import set_hash
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.select.per_text import fill_missing
from zipfit_pipeline.engine.select.tables import SelectTables

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Overlap:
    test_row: int  # row index of the test text it shares words with
    ngram: str  # the shared words, space-separated


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class HeldoutIndex:
    """Every `n`-word run of the test texts, to look pool texts up against."""

    def __init__(self, test_texts: Sequence[str], test_rows: Sequence[int], n: int) -> None:
        self.n = n
        self._first_row: dict[str, int] = {}
        for text, row in zip(test_texts, test_rows):
            tokens = words(text)
            for i in range(len(tokens) - n + 1):
                self._first_row.setdefault(" ".join(tokens[i : i + n]), row)
        self._starts = {gram.split(" ", 1)[0] for gram in self._first_row}

    def first_overlap(self, text: str) -> Overlap | None:
        """The first run of `n` words of `text` that a test text also has, or None."""
        tokens = words(text)
        for i in range(len(tokens) - self.n + 1):
            if tokens[i] in self._starts:  # most runs start with a word no test run starts with
                gram = " ".join(tokens[i : i + self.n])
                if gram in self._first_row:
                    return Overlap(self._first_row[gram], gram)
        return None


def find_overlaps(
    store: Store, target: str, hashes: pa.Array, ngram_words: int, log: Callable[[str], None] = print
) -> dict[str, Overlap]:
    """The texts (by content hash) that share `ngram_words` words with `target`'s test split; only texts not yet
    checked against this test split are read, a batch at a time, and their results are stored."""
    test = IngestTables(store).target_rows(target, "test")
    test_hash = set_hash(test.column("content_hash").to_pylist())  # the test split's key, as a target set's
    index = HeldoutIndex(test.column("text").to_pylist(), test.column("row_index").to_pylist(), ngram_words)

    def insert(batch: pa.Array, results: list[Overlap | None]) -> None:
        SelectTables(store).insert_test_overlaps(
            test_hash,
            ngram_words,
            pa.table(
                {
                    "content_hash": batch,
                    "test_row": pa.array([r.test_row if r else None for r in results], pa.int64()),
                    "ngram": pa.array([r.ngram if r else None for r in results], pa.string()),
                }
            ),
        )

    fill_missing(
        store,
        "test_overlaps",
        [test_hash, ngram_words],
        hashes,
        lambda texts: [index.first_overlap(t) for t in texts],
        insert,
        "test-split overlap checks",
        log,
    )
    found = SelectTables(store).test_overlaps(test_hash, ngram_words, hashes).to_pylist()
    return {r["content_hash"]: Overlap(r["test_row"], r["ngram"]) for r in found}


def contaminated_selections(
    store: Store, model: str, target: str, ngram_words: int
) -> dict[str, tuple[Overlap, list[str]]]:
    """Every selected text (by content hash) sharing `ngram_words` words with the target's current test split, and
    the selections holding it: a re-check of what is stored, independent of the pool's decontamination."""
    documents = IngestTables(store)
    test = documents.target_rows(target, "test")
    index = HeldoutIndex(test.column("text").to_pylist(), test.column("row_index").to_pylist(), ngram_words)
    selected = SelectTables(store).selected_rows(model, target)
    hashes = pc.unique(selected.column("content_hash"))
    overlap_of = {
        h: index.first_overlap(text)
        for h, text in zip(hashes.to_pylist(), documents.texts_or_none(hashes))
        if text is not None  # no longer stored: nothing to check, and nothing a fine-tune could train on
    }
    found: dict[str, tuple[Overlap, list[str]]] = {}
    for row in selected.to_pylist():
        overlap = overlap_of.get(row["content_hash"])
        if overlap is not None:
            label = RunKey(model, target, row["method"], row["budget"], row["seed"]).label()
            found.setdefault(row["content_hash"], (overlap, []))[1].append(label)
    return found
