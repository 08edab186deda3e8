"""Select stage: rank the pool of all sources for one model and target, and keep each method's selections.

The pool is every scored document of the sources, each text once (the first in pool order: sources in the
order given, rows in file order), minus the texts that share a long n-gram with the target's held-out test
split. Budgets count tokens with the model's own tokenizer (each document's tokens plus one separator).
Scored methods (ZIP-FIT and its ablations, DSIR, D4, embedding similarity, BM25) and thresholds rank once;
`random` and `all` draw a seeded permutation per training seed, so that the spread over seeds includes the
baselines' own randomness. Each method's time is its ranking plus the per-text work it ranks by (the pool's
scoring for ZIP-FIT, its embedding for D4 and embedding similarity), whenever that work was done.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.hashing import digest, set_hash
from zipfit_pipeline.engine.core.models import DOCUMENT_START_TOKENS, text_token_lengths, tokenizer_identity
from zipfit_pipeline.engine.core.runs import THRESHOLD, WHOLE_POOL
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.score import (
    ZIPFIT,
    ScoreSet,
    ScoreTables,
    ScoringSettings,
    is_zipfit,
    pool_scores,
    score_sets,
)
from zipfit_pipeline.engine.select.bm25 import pool_bm25_scores
from zipfit_pipeline.engine.select.d4 import d4_scores
from zipfit_pipeline.engine.select.decontamination import find_overlaps
from zipfit_pipeline.engine.select.dsir import dsir_weights
from zipfit_pipeline.engine.select.embeddings import pool_embeddings, target_similarity
from zipfit_pipeline.engine.select.methods import EMBEDDING_METHODS, is_budgeted
from zipfit_pipeline.engine.select.per_text import fill_missing
from zipfit_pipeline.engine.select.ranking import (
    rank_by_score,
    select_by_budget,
    select_by_threshold,
    select_whole_pool,
)
from zipfit_pipeline.engine.select.settings import DecontaminationSettings, SelectionSettings
from zipfit_pipeline.engine.select.tables import SelectTables


@dataclass(frozen=True)
class RemovedText:
    """A pool text that shares a run with a held-out test text (by `rule`), and where ZIP-FIT ranked it before
    removal."""

    dataset: str
    doc_id: str | None
    content_hash: str
    zipfit_rank: int  # 1 = best of the pool
    test_row: int
    ngram: str
    rule: str  # "words" or "code" (shape): see `decontamination.py`


@dataclass(frozen=True)
class SelectionSet:
    """One method's selection at one budget for one seed."""

    method: str
    budget: int
    seed: int
    version: str  # the ordered content hashes it chose, hashed: what a fine-tune records it trained on
    documents: int
    tokens: int
    mean_alignment: float
    datasets: dict[str, int]

    @property
    def reached(self) -> bool:
        """Whether a budgeted selection holds its budget's tokens (a pool can be too small)."""
        return not is_budgeted(self.method) or self.tokens >= self.budget


@dataclass(frozen=True)
class SelectionResult:
    pool_documents: int  # distinct texts ranked, after decontamination
    pool_tokens: int
    contaminated: list[RemovedText]  # pool texts that overlap the test split
    removed: bool  # whether they were taken out of the pool (decontamination on) or kept
    seconds: dict[str, float]  # per method: ranking plus the per-text work it ranks by
    sets: list[SelectionSet]
    top: list[tuple[str, float]]  # ZIP-FIT's best texts at the largest budget
    digest: str  # changes exactly when any selection's chosen texts do

    def short_of_budget(self) -> list[SelectionSet]:
        return [s for s in self.sets if not s.reached]


def select_for_model(
    store: Store,
    model: str,
    tokenizer: Any,
    target: str,
    sources: Sequence[str],
    scoring: ScoringSettings,
    settings: SelectionSettings,
    seeds: Sequence[int],
    log: Callable[[str], None] = print,
    compute: ComputeSettings = LOCAL,
) -> SelectionResult:
    """Rank the decontaminated pool with every configured method and store the selections, per budget and seed.

    Ranking reads columns (hashes, scores, token counts, DSIR weights, embeddings), not the pool's texts (BM25's
    index aside): the per-text work behind them is stored by content hash and done only for texts that lack it
    (`per_text`)."""
    documents = IngestTables(store)
    targets = documents.target_texts(target, "alignment")
    score_set_of = {
        s.method: s for s in score_sets(targets, scoring, settings.target_subsets, settings.target_subset_seed)
    }
    pool = _scored_pool(store, sources, target, score_set_of[ZIPFIT])
    contaminated = _contaminated(store, pool, target, settings.decontamination, log, compute)
    if contaminated:
        log(
            f"{len(contaminated)} pool texts share {settings.decontamination.describe()} with {target}'s "
            f"test split; ZIP-FIT ranked them {', '.join(str(r.zipfit_rank) for r in contaminated[:10])}"
            + ("; removed" if settings.decontamination.enabled else "; kept, because decontamination is off")
        )
    if settings.decontamination.enabled and contaminated:
        gone = pa.array([r.content_hash for r in contaminated])
        pool = pool.filter(pc.invert(pc.is_in(pool.column("content_hash"), gone)))
    hashes = pool.column("content_hash").combine_chunks()
    scores = pool.column("score").to_numpy().astype(np.float64)
    tokens = pool_tokens(store, tokenizer, hashes, log, compute)

    methods = settings.method_names(scoring)
    # Embedded (or read) before any method is timed: its cost is charged from the seconds stored with each vector.
    vectors, embedding_seconds = (
        _embeddings(store, hashes, settings, log, compute)
        if any(m in EMBEDDING_METHODS for m in methods)
        else (np.empty((0, 0)), 0.0)
    )

    def ranked_by(method: str) -> tuple[np.ndarray, float]:
        """The scores `method` ranks the pool by, and the seconds of stored per-text work they stand on."""
        if method == THRESHOLD or is_zipfit(method):
            score_set = score_set_of[ZIPFIT if method == THRESHOLD else method]
            found = scores if score_set.method == ZIPFIT else _pool_scores(store, sources, target, hashes, score_set)
            return found, ScoreTables(store).seconds(sources, score_set)
        if method == "d4":
            result = d4_scores(vectors, settings.d4)
            log(
                f"d4: {result.duplicates:,} near-duplicates dropped (cosine > {settings.d4.duplicate_similarity}), "
                f"{result.clusters:,} clusters"
            )
            return result.scores, embedding_seconds
        if method == "embedding":
            return target_similarity(vectors, targets, settings.embedding), embedding_seconds
        if method == "dsir":
            return dsir_weights(store, hashes, targets, settings.dsir, log, compute)
        if method == "bm25":
            return pool_bm25_scores(store, hashes, targets, settings.bm25, log, compute)
        return scores, 0.0  # random orders and `all` take any array of the pool's length

    rows: list[dict[str, Any]] = []
    timed: dict[str, tuple[float, float]] = {}
    for method in [*methods, *([THRESHOLD] if settings.thresholds else [])]:
        started = time.perf_counter()
        method_scores, prepare = ranked_by(method)
        rows += _method_rows(method, method_scores, tokens, settings, seeds)
        timed[method] = (round(time.perf_counter() - started, 3), round(prepare, 3))
        log(
            f"{method}: ranked {len(hashes)} documents in {timed[method][0]:.2f}s"
            + (f" (+{prepare:.2f}s of per-text work)" if prepare else "")
        )

    table = _selections_table(pool, scores, rows)
    sets = _sets(table)
    SelectTables(store).replace_selections(
        model,
        target,
        table,
        _sets_table(sets),
        timed,
        _contaminated_table(contaminated, settings.decontamination.enabled),
    )
    best = [
        r["pool_index"]
        for r in rows
        if (r["method"], r["budget"], r["seed"]) == (ZIPFIT, settings.budgets[-1], seeds[0])
    ][:5]
    return SelectionResult(
        pool_documents=pool.num_rows,
        pool_tokens=int(tokens.sum()),
        contaminated=contaminated,
        removed=settings.decontamination.enabled,
        seconds={m: round(sum(t), 3) for m, t in timed.items()},
        sets=sets,
        top=list(zip(documents.texts_of(hashes.take(pa.array(best, pa.int64()))), scores[best].tolist())),
        digest=digest(table.select(["method", "budget", "seed", "content_hash"]).to_pydict()),
    )


def pool_tokens(
    store: Store, tokenizer: Any, hashes: pa.Array, log: Callable[[str], None], compute: ComputeSettings = LOCAL
) -> np.ndarray:
    """Tokens each pool text costs in training (its own plus the document's start token). A text is tokenized once
    per tokenizer: counts are stored by content hash, so a re-selection after new documents counts only those."""
    identity, counts = tokenizer_identity(tokenizer), SelectTables(store)
    fill_missing(
        store,
        "token_counts",
        [identity],
        hashes,
        TokenCounts(tokenizer),
        lambda batch, lengths: counts.insert_token_counts(identity, batch, lengths),
        "token counts",
        log,
        compute,
    )
    return counts.token_counts(identity, hashes).to_numpy().astype(np.int64) + DOCUMENT_START_TOKENS


@dataclass(frozen=True)
class TokenCounts:
    """A batch's token counts with the model's tokenizer, wherever it runs (the tokenizer travels with it)."""

    tokenizer: Any

    def __call__(self, texts: list[str]) -> list[int]:
        return text_token_lengths(self.tokenizer, texts)


def _scored_pool(store: Store, sources: Sequence[str], target: str, score_set: ScoreSet) -> pa.Table:
    pool = pool_scores(store, sources, score_set)
    missing = pool.filter(pc.is_null(pool.column("score")))
    if missing.num_rows:
        datasets = sorted(set(missing.column("dataset").to_pylist()))
        what = "" if score_set.method == ZIPFIT else f" ({score_set.describe()})"
        raise LookupError(
            f"{missing.num_rows} documents of {datasets} have no score for {target}{what}: "
            "materialize alignment_scores first"
        )
    if not pool.num_rows:
        raise LookupError(f"the pool of {list(sources)} holds no documents: materialize source_documents first")
    return pool


def _pool_scores(
    store: Store, sources: Sequence[str], target: str, hashes: pa.Array, score_set: ScoreSet
) -> np.ndarray:
    """A ZIP-FIT ablation's scores of the (decontaminated) pool's texts, in pool order."""
    scored = _scored_pool(store, sources, target, score_set)
    at = pc.index_in(hashes, value_set=scored.column("content_hash").combine_chunks()).to_numpy(zero_copy_only=False)
    return scored.column("score").to_numpy().astype(np.float64)[at.astype(np.int64)]


def _embeddings(
    store: Store,
    hashes: pa.Array,
    settings: SelectionSettings,
    log: Callable[[str], None],
    compute: ComputeSettings,
) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors, seconds = pool_embeddings(store, hashes, settings.embedding, log, compute)
    log(
        f"embeddings of {len(hashes):,} pool texts ready in {time.perf_counter() - started:.2f}s (embedding them took "
        f"{seconds:.2f}s, whenever it was done)"
    )
    return vectors, seconds


def _contaminated(
    store: Store,
    pool: pa.Table,
    target: str,
    settings: DecontaminationSettings,
    log: Callable[[str], None],
    compute: ComputeSettings,
) -> list[RemovedText]:
    """Pool texts sharing a run with the test split by the rules of `settings`, best ZIP-FIT rank first."""
    hashes = pool.column("content_hash").combine_chunks()
    overlaps = find_overlaps(store, target, hashes, settings, log, compute)
    if not overlaps:
        return []
    rank = np.empty(len(hashes), dtype=np.int64)
    rank[rank_by_score(pool.column("score").to_numpy())] = np.arange(1, len(hashes) + 1)
    at = np.flatnonzero(pc.is_in(hashes, value_set=pa.array(list(overlaps))).to_numpy(zero_copy_only=False))
    rows = pool.select(["dataset", "doc_id", "content_hash"]).take(pa.array(at)).to_pylist()
    found = [
        RemovedText(
            r["dataset"],
            r["doc_id"],
            r["content_hash"],
            int(rank[i]),
            overlaps[r["content_hash"]].test_row,
            overlaps[r["content_hash"]].ngram,
            overlaps[r["content_hash"]].rule,
        )
        for i, r in zip(at, rows)
    ]
    return sorted(found, key=lambda r: r.zipfit_rank)


def _method_rows(
    method: str,
    scores: np.ndarray,
    tokens: np.ndarray,
    settings: SelectionSettings,
    seeds: Sequence[int],
) -> list[dict[str, Any]]:
    """Every seed's rows of one method; methods that do not depend on the seed rank once and repeat."""
    if method == "random":
        per_seed = {seed: select_by_budget(method, scores, tokens, settings.budgets, seed) for seed in seeds}
    elif method == WHOLE_POOL:
        per_seed = {seed: select_whole_pool(tokens, seed, settings.all_max_tokens) for seed in seeds}
    else:
        if method == THRESHOLD:
            once = select_by_threshold(scores, tokens, settings.thresholds)
        else:
            once = select_by_budget(method, scores, tokens, settings.budgets, seeds[0])
        per_seed = dict.fromkeys(seeds, once)
    return [{**row, "seed": seed} for seed, chosen in per_seed.items() for row in chosen]


def _selections_table(pool: pa.Table, scores: np.ndarray, rows: list[dict[str, Any]]) -> pa.Table:
    index = np.asarray([r["pool_index"] for r in rows], dtype=np.int64)
    return pa.table(
        {
            "method": [r["method"] for r in rows],
            "budget": pa.array([r["budget"] for r in rows], pa.int64()),
            "seed": pa.array([r["seed"] for r in rows], pa.int32()),
            "rank": pa.array([r["rank"] for r in rows], pa.int64()),
            "dataset": pool.column("dataset").take(index),
            "doc_id": pool.column("doc_id").take(index),
            "content_hash": pool.column("content_hash").take(index),
            "score": pa.array(scores[index], pa.float64()),
            "tokens": pa.array([r["tokens"] for r in rows], pa.int64()),
            "cumulative_tokens": pa.array([r["cumulative_tokens"] for r in rows], pa.int64()),
        }
    )


def _sets(table: pa.Table) -> list[SelectionSet]:
    grouped: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for row in table.select(
        ["method", "budget", "seed", "dataset", "content_hash", "score", "cumulative_tokens"]
    ).to_pylist():
        grouped.setdefault((row["method"], row["budget"], row["seed"]), []).append(row)
    return [
        SelectionSet(
            method,
            budget,
            seed,
            version=set_hash([r["content_hash"] for r in chosen]),
            documents=len(chosen),
            tokens=chosen[-1]["cumulative_tokens"],
            mean_alignment=float(np.mean([r["score"] for r in chosen])),
            datasets=dict(sorted(Counter(r["dataset"] for r in chosen).items())),
        )
        for (method, budget, seed), chosen in grouped.items()
    ]


def _contaminated_table(contaminated: list[RemovedText], removed: bool) -> pa.Table:
    return pa.table(
        {
            "dataset": pa.array([r.dataset for r in contaminated], pa.string()),
            "doc_id": pa.array([r.doc_id for r in contaminated], pa.string()),
            "content_hash": pa.array([r.content_hash for r in contaminated], pa.string()),
            "zipfit_rank": pa.array([r.zipfit_rank for r in contaminated], pa.int64()),
            "test_row": pa.array([r.test_row for r in contaminated], pa.int64()),
            "ngram": pa.array([r.ngram for r in contaminated], pa.string()),
            "rule": pa.array([r.rule for r in contaminated], pa.string()),
            "removed": pa.array([removed] * len(contaminated), pa.bool_()),
        }
    )


def _sets_table(sets: list[SelectionSet]) -> pa.Table:
    return pa.table(
        {
            "method": [s.method for s in sets],
            "budget": pa.array([s.budget for s in sets], pa.int64()),
            "seed": pa.array([s.seed for s in sets], pa.int32()),
            "version": [s.version for s in sets],
            "documents": pa.array([s.documents for s in sets], pa.int64()),
            "tokens": pa.array([s.tokens for s in sets], pa.int64()),
            "mean_alignment": pa.array([s.mean_alignment for s in sets], pa.float64()),
        }
    )
