"""The select stage's tables: the selections (ranked content hashes per method, budget and seed), their versions,
each method's cost, the contaminated pool texts, and the work done once per text and stored by content hash
(token counts, test-split overlaps, DSIR features, BM25 word counts, embeddings).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import RUN_KEY_COLUMNS, Tables, rows_by_run_key, run_key_params, wanted_table

# Tables of work done once per text and stored by content hash, with the columns that key a result besides the hash
# (the tokenizer that counted, the test split checked against, DSIR's featurizer): see `SelectTables.unstored`.
PER_TEXT_TABLES = {
    "token_counts": ("tokenizer",),
    "test_matches": ("test_hash", "rules"),
    "dsir_features": ("featurizer",),
    "embeddings": ("embedder",),
    "bm25_terms": ("counter",),
}
# Of the registered `wanted` hashes, those with no row in a per-text table under its key columns, in `wanted` order.
UNSTORED_SQL = {
    table: f"""SELECT w.content_hash FROM wanted w WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE s.content_hash =
               w.content_hash AND {" AND ".join(f"s.{column} = ?" for column in columns)}) ORDER BY w.position"""
    for table, columns in PER_TEXT_TABLES.items()
}

# The seconds a per-text table's stored results took, summed over the registered `wanted` hashes, under one key.
SECONDS_SQL = {
    table: f"""SELECT coalesce(sum(seconds), 0) AS s FROM {table} WHERE {PER_TEXT_TABLES[table][0]} = ?
               AND content_hash IN (SELECT content_hash FROM wanted)"""
    for table in ("dsir_features", "bm25_terms")
}
BM25_WANTED_ROWS = "FROM bm25_terms WHERE counter = ? AND content_hash IN (SELECT content_hash FROM wanted)"


class SelectTables(Tables):
    SCHEMA = """
CREATE TABLE IF NOT EXISTS test_matches (
    content_hash VARCHAR, test_hash VARCHAR, rules VARCHAR, test_row BIGINT, ngram VARCHAR, rule VARCHAR,
    PRIMARY KEY (content_hash, test_hash, rules));
CREATE TABLE IF NOT EXISTS selections (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, rank BIGINT, dataset VARCHAR,
    doc_id VARCHAR, content_hash VARCHAR, score DOUBLE, tokens BIGINT, cumulative_tokens BIGINT,
    PRIMARY KEY (model, target, method, budget, seed, rank));
CREATE TABLE IF NOT EXISTS selection_sets (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, version VARCHAR, documents BIGINT,
    tokens BIGINT, mean_alignment DOUBLE, PRIMARY KEY (model, target, method, budget, seed));
CREATE TABLE IF NOT EXISTS contaminated_texts (
    model VARCHAR, target VARCHAR, dataset VARCHAR, doc_id VARCHAR, content_hash VARCHAR, zipfit_rank BIGINT,
    test_row BIGINT, ngram VARCHAR, removed BOOLEAN, PRIMARY KEY (model, target, content_hash));
CREATE TABLE IF NOT EXISTS selection_runs (
    model VARCHAR, target VARCHAR, method VARCHAR, seconds DOUBLE, PRIMARY KEY (model, target, method));
CREATE TABLE IF NOT EXISTS token_counts (
    content_hash VARCHAR, tokenizer VARCHAR, tokens BIGINT, PRIMARY KEY (content_hash, tokenizer));
CREATE TABLE IF NOT EXISTS dsir_features (
    content_hash VARCHAR, featurizer VARCHAR, buckets INTEGER[], counts INTEGER[],
    PRIMARY KEY (content_hash, featurizer));
CREATE TABLE IF NOT EXISTS bm25_terms (
    content_hash VARCHAR, counter VARCHAR, terms VARCHAR[], counts INTEGER[], length INTEGER, seconds DOUBLE,
    PRIMARY KEY (content_hash, counter));
CREATE TABLE IF NOT EXISTS embeddings (
    content_hash VARCHAR, embedder VARCHAR, vector FLOAT[], seconds DOUBLE, PRIMARY KEY (content_hash, embedder));
"""
    ADDED_COLUMNS = """ALTER TABLE selection_runs ADD COLUMN IF NOT EXISTS prepare_seconds DOUBLE DEFAULT 0;
ALTER TABLE dsir_features ADD COLUMN IF NOT EXISTS seconds DOUBLE DEFAULT 0;
ALTER TABLE contaminated_texts ADD COLUMN IF NOT EXISTS rule VARCHAR;"""

    # work done once per text -------------------------------------------------------------------------------

    def unstored(self, table: str, key: Sequence[Any], hashes: pa.Array) -> pa.Array:
        """The content hashes, of those given, with no row in a per-text table under `key` (its PER_TEXT_TABLES
        columns), in the order given: what a selection still has to compute."""
        return self.query(UNSTORED_SQL[table], key, wanted=hashes).column("content_hash").combine_chunks()

    def token_counts(self, tokenizer: str, hashes: pa.Array) -> pa.Array:
        """The stored token count (see `tokenizer_identity`) of each given text, in the order given; null if
        uncounted."""
        rows = self.query(
            "SELECT t.tokens FROM wanted w LEFT JOIN token_counts t ON t.content_hash = w.content_hash "
            "AND t.tokenizer = ? ORDER BY w.position",
            [tokenizer],
            wanted=hashes,
        )
        return rows.column("tokens").combine_chunks()

    def insert_token_counts(self, tokenizer: str, hashes: pa.Array, tokens: Sequence[int]) -> None:
        with self.transaction() as connection:
            connection.register("counted", pa.table({"content_hash": hashes, "tokens": pa.array(tokens, pa.int64())}))
            connection.execute(
                "INSERT INTO token_counts SELECT content_hash, ?, tokens FROM counted ON CONFLICT DO NOTHING",
                [tokenizer],
            )
            connection.unregister("counted")

    def insert_dsir_features(
        self, featurizer: str, hashes: pa.Array, buckets: pa.Array, counts: pa.Array, seconds_each: float
    ) -> None:
        """Each text's hashed n-gram counts as two aligned lists: the buckets it hits and how often; and the seconds
        each took to count (its batch's time per text), charged to every selection that ranks by them."""
        with self.transaction() as connection:
            connection.register("featurized", pa.table({"content_hash": hashes, "buckets": buckets, "counts": counts}))
            connection.execute(
                "INSERT INTO dsir_features (content_hash, featurizer, buckets, counts, seconds) "
                "SELECT content_hash, ?, buckets, counts, ? FROM featurized ON CONFLICT DO NOTHING",
                [featurizer, seconds_each],
            )
            connection.unregister("featurized")

    def insert_embeddings(self, embedder: str, hashes: pa.Array, vectors: np.ndarray, seconds_each: float) -> None:
        """Unit vectors of the given texts, and the seconds each took to embed (its batch's time per text)."""
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        offsets = pa.array(np.arange(0, vectors.size + 1, max(1, vectors.shape[1]), dtype=np.int32))
        with self.transaction() as connection:
            connection.register(
                "embedded", pa.table({"content_hash": hashes, "vector": pa.ListArray.from_arrays(offsets, flat)})
            )
            connection.execute(
                "INSERT INTO embeddings SELECT content_hash, ?, vector, ? FROM embedded ON CONFLICT DO NOTHING",
                [embedder, seconds_each],
            )
            connection.unregister("embedded")

    def embeddings(self, embedder: str, hashes: pa.Array) -> tuple[np.ndarray, float]:
        """(the stored vector of each given text, in order, as an n x d array; the seconds embedding them took)."""
        rows = self.query(
            "SELECT e.vector, e.seconds FROM wanted w JOIN embeddings e ON e.content_hash = w.content_hash "
            "AND e.embedder = ? ORDER BY w.position",
            [embedder],
            wanted=hashes,
        )
        if rows.num_rows != len(hashes):
            raise LookupError(
                f"{len(hashes) - rows.num_rows} pool texts have no stored embedding in {self.path}: select again"
            )
        vectors = rows.column("vector").combine_chunks()
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return flat.reshape(len(hashes), -1), float(np.sum(rows.column("seconds").to_numpy()))

    def dsir_feature_totals(self, featurizer: str, hashes: pa.Array) -> pa.Table:
        """(bucket, total) of the given texts' stored counts summed: the pool's n-gram distribution, without its
        texts."""
        return self.query(
            """SELECT bucket, sum(n)::BIGINT AS total FROM (
                   SELECT unnest(buckets) AS bucket, unnest(counts) AS n FROM dsir_features
                   WHERE featurizer = ? AND content_hash IN (SELECT content_hash FROM wanted))
               GROUP BY bucket""",
            [featurizer],
            wanted=hashes,
        )

    def work_seconds(self, table: str, key: str, hashes: pa.Array) -> float:
        """The seconds that the given texts' stored results in a per-text table (`dsir_features`, `bm25_terms`) took
        under `key`, whenever they were computed."""
        return float(self.query(SECONDS_SQL[table], [key], wanted=hashes).column("s")[0].as_py())

    def dsir_features(self, featurizer: str, hashes: pa.Array, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """(content_hash, buckets, counts) of the given texts, `batch_rows` at a time, in no particular order. One
        streaming read (a semi-join: only the hashes are hashed, never the lists): the consumer should be quick, as
        the store is open meanwhile."""
        with self.connect() as connection:
            connection.register("wanted", wanted_table(hashes))
            reader = connection.sql(
                "SELECT content_hash, buckets, counts FROM dsir_features WHERE featurizer = ? "
                "AND content_hash IN (SELECT content_hash FROM wanted)",
                params=[featurizer],
            ).to_arrow_reader(batch_rows)
            yield from reader
            connection.unregister("wanted")

    # decontamination -------------------------------------------------------------------------------------

    def test_matches(self, test_hash: str, rules: str, hashes: pa.Array) -> pa.Table:
        """(content_hash, test_row, ngram, rule) of the given texts found to share a run with this test split by
        `rules` (`DecontaminationSettings.rules`)."""
        return self.query(
            "SELECT o.content_hash, o.test_row, o.ngram, o.rule FROM test_matches o JOIN wanted w USING "
            "(content_hash) WHERE o.test_hash = ? AND o.rules = ? AND o.ngram IS NOT NULL",
            [test_hash, rules],
            wanted=hashes,
        )

    def insert_test_matches(self, test_hash: str, rules: str, checked: pa.Table) -> None:
        """Results of checking texts against a test split: (content_hash, test_row, ngram, rule), nulls where
        clean."""
        with self.transaction() as connection:
            connection.register("checked", checked)
            connection.execute(
                "INSERT INTO test_matches SELECT content_hash, ?, ?, test_row, ngram, rule FROM checked "
                "ON CONFLICT DO NOTHING",
                [test_hash, rules],
            )
            connection.unregister("checked")

    # selections ------------------------------------------------------------------------------------------

    def replace_selections(
        self,
        model: str,
        target: str,
        selections: pa.Table,
        sets: pa.Table,
        seconds: dict[str, tuple[float, float]],
        contaminated: pa.Table,
    ) -> None:
        """The selections of every method, budget and seed, their versions, how long each method took (ranking, and
        the per-text work it ranks by: scoring, embedding), and the pool texts found to overlap the test split
        (removed, unless decontamination is off)."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM selections WHERE model = ? AND target = ?", [model, target])
            connection.execute("DELETE FROM selection_sets WHERE model = ? AND target = ?", [model, target])
            connection.execute("DELETE FROM selection_runs WHERE model = ? AND target = ?", [model, target])
            connection.execute("DELETE FROM contaminated_texts WHERE model = ? AND target = ?", [model, target])
            connection.register("new_contaminated", contaminated)
            connection.execute(
                "INSERT INTO contaminated_texts (model, target, dataset, doc_id, content_hash, zipfit_rank, test_row, "
                "ngram, removed, rule) SELECT ?, ?, dataset, doc_id, content_hash, zipfit_rank, test_row, ngram, "
                "removed, rule FROM new_contaminated",
                [model, target],
            )
            connection.unregister("new_contaminated")
            for method, (ranking, prepare) in seconds.items():
                connection.execute(
                    "INSERT INTO selection_runs (model, target, method, seconds, prepare_seconds) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [model, target, method, ranking, prepare],
                )
            connection.register("new_selections", selections)
            connection.execute(
                """INSERT INTO selections SELECT ?, ?, method, budget, seed, rank, dataset, doc_id, content_hash,
                   score, tokens, cumulative_tokens FROM new_selections""",
                [model, target],
            )
            connection.unregister("new_selections")
            connection.register("new_sets", sets)
            connection.execute(
                "INSERT INTO selection_sets SELECT ?, ?, method, budget, seed, version, documents, tokens, "
                "mean_alignment FROM new_sets",
                [model, target],
            )
            connection.unregister("new_sets")

    def selection_set(self, key: RunKey) -> dict[str, Any] | None:
        """The current selection a fine-tune trains on: version, documents, tokens and mean alignment."""
        rows = self.query(f"SELECT * FROM selection_sets WHERE {RUN_KEY_COLUMNS}", run_key_params(key)).to_pylist()
        return rows[0] if rows else None

    def selected_hashes(self, key: RunKey) -> pa.Array:
        """The content hashes a selection chose, in rank order."""
        return (
            self.query(
                f"SELECT content_hash FROM selections WHERE {RUN_KEY_COLUMNS} ORDER BY rank", run_key_params(key)
            )
            .column("content_hash")
            .combine_chunks()
        )

    def selected_rows(self, model: str, target: str) -> pa.Table:
        """(method, budget, seed, content_hash) of every selected document of a model and target."""
        return self.query(
            "SELECT method, budget, seed, content_hash FROM selections WHERE model = ? AND target = ? "
            "ORDER BY method, budget, seed, rank",
            [model, target],
        )

    # what the report reads ---------------------------------------------------------------------------------

    def selection_sets(self, model: str, target: str) -> dict[RunKey, dict[str, Any]]:
        """The current selection (version, mean alignment, ...) of every (method, budget, seed) of a model and
        target."""
        rows = self.query("SELECT * FROM selection_sets WHERE model = ? AND target = ?", [model, target])
        return rows_by_run_key(rows.to_pylist())

    def token_shares(self, model: str, target: str) -> list[dict[str, Any]]:
        """(method, budget, seed, dataset, share): each source's share of the tokens of each selection."""
        return self.query(
            """SELECT method, budget, seed, dataset,
                      sum(tokens) / sum(sum(tokens)) OVER (PARTITION BY method, budget, seed) AS share
               FROM selections WHERE model = ? AND target = ? GROUP BY method, budget, seed, dataset
               ORDER BY method, budget, seed, dataset""",
            [model, target],
        ).to_pylist()

    def length_profiles(self, model: str, target: str) -> list[dict[str, Any]]:
        """(method, budget, seed, texts, median, p10, p90, mean): the token lengths of each selection's texts."""
        return self.query(
            """SELECT method, budget, seed, count(*) AS texts, quantile_cont(tokens, 0.5) AS median,
                      quantile_cont(tokens, 0.1) AS p10, quantile_cont(tokens, 0.9) AS p90, avg(tokens) AS mean
               FROM selections WHERE model = ? AND target = ? GROUP BY method, budget, seed
               ORDER BY method, budget, seed""",
            [model, target],
        ).to_pylist()

    def contaminated_texts(self, model: str, target: str) -> list[dict[str, Any]]:
        """The pool texts the last selection found to overlap the test split, best ZIP-FIT rank first."""
        return self.query(
            "SELECT dataset, doc_id, zipfit_rank, test_row, ngram, rule, removed FROM contaminated_texts "
            "WHERE model = ? AND target = ? ORDER BY zipfit_rank",
            [model, target],
        ).to_pylist()

    def method_seconds(self, model: str, target: str) -> dict[str, float]:
        """What each method's selection cost: its ranking plus the per-text work it ranks by."""
        return {
            r["method"]: r["seconds"]
            for r in self.query(
                "SELECT method, seconds + coalesce(prepare_seconds, 0) AS seconds FROM selection_runs "
                "WHERE model = ? AND target = ?",
                [model, target],
            ).to_pylist()
        }


class Bm25Tables(SelectTables):
    """BM25's queries of the select stage's tables: each text's stored word counts, and the pool's statistics."""

    def insert_bm25_terms(
        self, counter: str, hashes: pa.Array, terms: pa.Array, counts: pa.Array, lengths: pa.Array, seconds_each: float
    ) -> None:
        """Each text's distinct words with their counts, and its length, as BM25 counts them (`bm25.TermCounts`);
        and the seconds each took to count."""
        with self.transaction() as connection:
            connection.register(
                "counted", pa.table({"content_hash": hashes, "terms": terms, "counts": counts, "length": lengths})
            )
            connection.execute(
                "INSERT INTO bm25_terms SELECT content_hash, ?, terms, counts, length, ? FROM counted "
                "ON CONFLICT DO NOTHING",
                [counter, seconds_each],
            )
            connection.unregister("counted")

    def bm25_statistics(self, counter: str, hashes: pa.Array, terms: list[str]) -> tuple[int, dict[str, int]]:
        """The given texts' summed length, and in how many of them each of `terms` occurs (terms in none are
        left out)."""
        with self.connect() as connection:
            connection.register("wanted", wanted_table(hashes))
            connection.register("query_terms", pa.table({"term": pa.array(terms, pa.string())}))
            total = connection.execute(
                f"SELECT coalesce(sum(length), 0)::BIGINT {BM25_WANTED_ROWS}", [counter]
            ).fetchone()
            frequencies = connection.execute(
                f"SELECT term, count(*) FROM (SELECT unnest(terms) AS term {BM25_WANTED_ROWS}) "
                "WHERE term IN (SELECT term FROM query_terms) GROUP BY term",
                [counter],
            ).fetchall()
        return int(total[0]) if total else 0, dict(frequencies)

    def bm25_hits(self, counter: str, hashes: pa.Array, factors: pa.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """(position, factor, tf, length): each given text's occurrences of the words of `factors` (term, factor),
        the text by its position in `hashes`, ordered by position and word; `batch_rows` at a time, in one
        streaming read (DuckDB sorts on disk what does not fit in its memory)."""
        with self.connect() as connection:
            connection.register("wanted", wanted_table(hashes))
            connection.register("factors", factors)
            reader = connection.sql(
                """SELECT h.position, f.factor, h.tf, h.length FROM (
                       SELECT w.position, unnest(b.terms) AS term, unnest(b.counts) AS tf, b.length
                       FROM bm25_terms b JOIN wanted w ON b.content_hash = w.content_hash WHERE b.counter = ?) h
                   JOIN factors f ON f.term = h.term ORDER BY h.position, h.term""",
                params=[counter],
            ).to_arrow_reader(batch_rows)
            yield from reader
            connection.unregister("wanted")
