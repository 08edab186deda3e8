"""Decontamination: pool texts that share a long run with the target's held-out test split, by either of two rules.

ZIP-FIT ranks first what compresses best with the target, so a near-copy of a held-out test problem (HumanEval
is copied all over public code) ranks at the very top and inflates the test gain.
- Words: a pool text is contaminated when it shares `ngram_words` consecutive words with a test text: words are
  `\\w+` runs, lower-cased, so whitespace, indentation and punctuation do not hide a copy. 13 words is GPT-3's
  contamination rule; common phrases and boilerplate do not match.
- Code shape: a copy whose identifiers were renamed (docstrings too) shares no 13 words with its original, and
  ZIP-FIT still ranks it first (its structure compresses with the original's). So texts are also compared as code
  shapes (`code_shape`): names a program may rename become `V`; keywords, builtins, attribute names, numbers and
  operators stay; strings become `S`; docstrings and comments go. A pool text whose shape shares `code_tokens`
  consecutive tokens with a test text's is contaminated too, where the run holds at least MIN_SHAPE_KINDS kinds of
  token other than names, strings, numbers and commas (a list of literals is no evidence). `bench/decontamination.py`
  measures both rules' recall on disguised copies of all 164 HumanEval problems and what they remove from a
  185k-document real-text pool (README).
Results are stored per content hash, test split and rules, so a refresh checks only new texts.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.hashing import set_hash
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.select.per_text import fill_missing
from zipfit_pipeline.engine.select.settings import DecontaminationSettings
from zipfit_pipeline.engine.select.tables import SelectTables

WORD = re.compile(r"\w+")
CODE_TOKEN = re.compile(
    r"""[rRbBfFuU]{0,2}(\"\"\"|''')[\s\S]*?(?:\1|\Z)"""  # a triple-quoted string (to the end if unclosed)
    r"""|[rRbBfFuU]{0,2}"(?:\\.|[^"\\\n])*"?|[rRbBfFuU]{0,2}'(?:\\.|[^'\\\n])*'?"""  # a one-line string
    r"|#[^\n]*"  # a comment
    r"|[^\W\d]\w*|\d[\w.]*"  # a name, a number
    r"|==|!=|<=|>=|->|\*\*|//|[^\s\w]"  # an operator
)
KEPT_NAMES = frozenset(keyword.kwlist) | frozenset(dir(builtins))  # renaming these would change the program
# A run of code shape is evidence of a copy only if it holds this many kinds of token besides names, strings, numbers
# and commas: a list or table of literals (`V = [ S , S , S , ...`) is in thousands of unrelated files.
MIN_SHAPE_KINDS = 5


@dataclass(frozen=True)
class Overlap:
    test_row: int  # row index of the test text it shares a run with
    ngram: str  # the shared run, space-separated
    rule: str  # "words" or "code" (shape)


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def code_shape(text: str) -> list[str]:
    """`text` as code tokens, each name a program could rename replaced by `V` (keywords, builtins and attribute
    names stay), each string `S`, docstrings and comments dropped: a copy renamed, re-indented, re-wrapped or
    stripped of its comments and docstrings has its original's shape."""
    shape: list[str] = []
    end = 0
    for match in CODE_TOKEN.finditer(text):
        token, start = match.group(0), match.start()
        first = token[0]
        if first == "#":
            continue
        if token[-1] in "\"'" or first in "\"'":
            docstring = not shape or shape[-1] == ":" and "\n" in text[end:start]  # first on the line after a `:`
            if not docstring:
                shape.append("S")
        elif first.isalpha() or first == "_":
            shape.append(token if token in KEPT_NAMES or (shape and shape[-1] == ".") else "V")
        else:
            shape.append(token)
        end = match.end()
    return shape


def telling_shape(run: list[str]) -> bool:
    """Whether a run of code shape says something of a program (see MIN_SHAPE_KINDS)."""
    return len({t for t in run if t not in ("V", "S", ",") and not t[0].isdigit()}) >= MIN_SHAPE_KINDS


class RunIndex:
    """Every run of `n` tokens of the test texts (that `telling` accepts), with the first test row that has it."""

    def __init__(
        self, n: int, tokenized: Iterable[tuple[list[str], int]], telling: Callable[[list[str]], bool] | None = None
    ) -> None:
        self.n, self._prefix = n, min(2, n)
        self._first_row: dict[str, int] = {}
        for tokens, row in tokenized:
            for i in range(len(tokens) - n + 1):
                if telling is None or telling(tokens[i : i + n]):
                    self._first_row.setdefault(" ".join(tokens[i : i + n]), row)
        self._starts = {tuple(gram.split(" ")[: self._prefix]) for gram in self._first_row}

    def first_run(self, tokens: list[str]) -> tuple[int, str] | None:
        """The test row and the first run of `tokens` that a test text also has, or None."""
        for i in range(len(tokens) - self.n + 1):
            if tuple(tokens[i : i + self._prefix]) in self._starts:  # most runs start as no test run does
                gram = " ".join(tokens[i : i + self.n])
                if gram in self._first_row:
                    return self._first_row[gram], gram
        return None


class HeldoutIndex:
    """The test texts' runs of `ngram_words` words and, unless `code_tokens` is None, of that many code-shape
    tokens, to look pool texts up against."""

    def __init__(
        self, test_texts: Sequence[str], test_rows: Sequence[int], ngram_words: int, code_tokens: int | None
    ) -> None:
        self._words = RunIndex(ngram_words, ((words(t), row) for t, row in zip(test_texts, test_rows)))
        self._code = (
            RunIndex(code_tokens, ((code_shape(t), row) for t, row in zip(test_texts, test_rows)), telling_shape)
            if code_tokens
            else None
        )

    def word_match(self, text: str) -> Overlap | None:
        found = self._words.first_run(words(text))
        return Overlap(*found, "words") if found else None

    def code_match(self, text: str) -> Overlap | None:
        found = self._code.first_run(code_shape(text)) if self._code else None
        return Overlap(*found, "code") if found else None

    def first_overlap(self, text: str) -> Overlap | None:
        """The first run `text` shares with a test text: by words, else by code shape; or None."""
        return self.word_match(text) or self.code_match(text)

    def first_overlaps(self, texts: list[str]) -> list[Overlap | None]:
        """`first_overlap` of each text: a batch's work, on this machine or a Ray worker (the index travels)."""
        return [self.first_overlap(text) for text in texts]


def heldout_index(test: pa.Table, settings: DecontaminationSettings) -> HeldoutIndex:
    """The index of a test split as stored (`IngestTables.target_rows`)."""
    return HeldoutIndex(
        test.column("text").to_pylist(),
        test.column("row_index").to_pylist(),
        settings.ngram_words,
        settings.code_tokens,
    )


def find_overlaps(
    store: Store,
    target: str,
    hashes: pa.Array,
    settings: DecontaminationSettings,
    log: Callable[[str], None] = print,
    compute: ComputeSettings = LOCAL,
) -> dict[str, Overlap]:
    """The texts (by content hash) that share a run with `target`'s test split by the rules of `settings`; only
    texts not yet checked against this test split with these rules are read, a batch at a time, and their results
    are stored."""
    test = IngestTables(store).target_rows(target, "test")
    test_hash = set_hash(test.column("content_hash").to_pylist())  # the test split's key, as a target set's
    index = heldout_index(test, settings)

    def insert(batch: pa.Array, results: list[Overlap | None]) -> None:
        SelectTables(store).insert_test_matches(
            test_hash,
            settings.rules(),
            pa.table(
                {
                    "content_hash": batch,
                    "test_row": pa.array([r.test_row if r else None for r in results], pa.int64()),
                    "ngram": pa.array([r.ngram if r else None for r in results], pa.string()),
                    "rule": pa.array([r.rule if r else None for r in results], pa.string()),
                }
            ),
        )

    fill_missing(
        store,
        "test_matches",
        [test_hash, settings.rules()],
        hashes,
        index.first_overlaps,
        insert,
        "test-split overlap checks",
        log,
        compute,
    )
    found = SelectTables(store).test_matches(test_hash, settings.rules(), hashes).to_pylist()
    return {r["content_hash"]: Overlap(r["test_row"], r["ngram"], r["rule"]) for r in found}


def contaminated_selections(
    store: Store, model: str, target: str, settings: DecontaminationSettings
) -> dict[str, tuple[Overlap, list[str]]]:
    """Every selected text (by content hash) sharing a run with the target's current test split by the rules of
    `settings`, and the selections holding it: a re-check of what is stored, independent of the pool's
    decontamination."""
    documents = IngestTables(store)
    index = heldout_index(documents.target_rows(target, "test"), settings)
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
