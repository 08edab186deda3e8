"""The DuckDB store: documents, targets, scores, selections, training runs and eval losses in one file.

Everything is addressed by content, never by row position (rows move when a source is re-ingested):
- scores by (content hash, target-set hash, compressor, level, engine version, compressor build), so a text
  is scored once whatever dataset it comes from, and scores of two library builds never mix;
- selections by the content hashes they chose, so a fine-tune trains on exactly those texts;
- training runs by a run id and the version of the selection they trained on; eval rows by the run they measured.
Every write is one transaction; connections are short-lived, because DuckDB allows one writing process per file.

The store knows itself: an id made when the file is created, and for every asset partition the run that last
wrote it (`partition_runs`). Comparing those with the Dagster instance's history tells a deleted, replaced or
restored store from the one the history describes (see `store_state.py`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from zipfit_pipeline.engine import ENGINE_VERSION
from zipfit_pipeline.engine.compression import compressor_build
from zipfit_pipeline.engine.loaders import Record, content_hash
from zipfit_pipeline.engine.runs import RunKey

STORE_SCHEMA_VERSION = 2  # bumped when a table changes incompatibly; an older store is refused with what to do
SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS documents (
    dataset VARCHAR, row_index BIGINT, doc_id VARCHAR, content_hash VARCHAR, n_bytes BIGINT, text VARCHAR,
    PRIMARY KEY (dataset, row_index));
CREATE TABLE IF NOT EXISTS staged_documents (
    dataset VARCHAR, row_index BIGINT, doc_id VARCHAR, content_hash VARCHAR, n_bytes BIGINT, text VARCHAR);
CREATE TABLE IF NOT EXISTS ingest_skips (dataset VARCHAR, reason VARCHAR, n BIGINT, PRIMARY KEY (dataset, reason));
CREATE TABLE IF NOT EXISTS targets (
    task VARCHAR, split VARCHAR, row_index BIGINT, doc_id VARCHAR, content_hash VARCHAR, text VARCHAR,
    PRIMARY KEY (task, split, row_index));
CREATE TABLE IF NOT EXISTS score_sets (
    target_hash VARCHAR, compressor VARCHAR, level INTEGER, engine_version VARCHAR, build VARCHAR,
    n_targets INTEGER, PRIMARY KEY (target_hash, compressor, level, engine_version, build));
CREATE TABLE IF NOT EXISTS scores (
    content_hash VARCHAR, target_hash VARCHAR, compressor VARCHAR, level INTEGER, engine_version VARCHAR, build VARCHAR,
    score DOUBLE, PRIMARY KEY (content_hash, target_hash, compressor, level, engine_version, build));
CREATE TABLE IF NOT EXISTS scoring_runs (
    dataset VARCHAR, target_hash VARCHAR, compressor VARCHAR, level INTEGER, engine_version VARCHAR, build VARCHAR,
    texts_scored BIGINT, seconds DOUBLE, finished TIMESTAMP DEFAULT current_timestamp, code_path VARCHAR);
CREATE TABLE IF NOT EXISTS test_overlaps (
    content_hash VARCHAR, test_hash VARCHAR, ngram_words INTEGER, test_row BIGINT, ngram VARCHAR,
    PRIMARY KEY (content_hash, test_hash, ngram_words));
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
CREATE TABLE IF NOT EXISTS training_runs (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, run_id VARCHAR,
    selection_version VARCHAR, checkpoint VARCHAR, train_tokens BIGINT, steps INTEGER, final_train_loss DOUBLE,
    seconds DOUBLE, device VARCHAR,
    PRIMARY KEY (model, target, method, budget, seed));
CREATE TABLE IF NOT EXISTS loss_curves (
    run_id VARCHAR, kind VARCHAR, tokens BIGINT, loss DOUBLE, PRIMARY KEY (run_id, kind, tokens));
CREATE TABLE IF NOT EXISTS token_counts (
    content_hash VARCHAR, tokenizer VARCHAR, tokens BIGINT, PRIMARY KEY (content_hash, tokenizer));
CREATE TABLE IF NOT EXISTS dsir_features (
    content_hash VARCHAR, featurizer VARCHAR, buckets INTEGER[], counts INTEGER[],
    PRIMARY KEY (content_hash, featurizer));
CREATE TABLE IF NOT EXISTS embeddings (
    content_hash VARCHAR, embedder VARCHAR, vector FLOAT[], seconds DOUBLE, PRIMARY KEY (content_hash, embedder));
CREATE TABLE IF NOT EXISTS partition_runs (
    asset VARCHAR, partition VARCHAR, run_id VARCHAR, written TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (asset, partition));
CREATE TABLE IF NOT EXISTS eval_losses (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, run_id VARCHAR,
    selection_version VARCHAR, test_loss DOUBLE, test_tokens BIGINT, PRIMARY KEY (model, target, method, budget, seed));
CREATE TABLE IF NOT EXISTS pass_at_k (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, run_id VARCHAR,
    selection_version VARCHAR, k INTEGER, pass_at_k DOUBLE, samples INTEGER, problems INTEGER,
    PRIMARY KEY (model, target, method, budget, seed, k));
"""
# Columns added since a schema version was first released: older stores of that version gain them on opening.
ADDED_COLUMNS = """ALTER TABLE scoring_runs ADD COLUMN IF NOT EXISTS code_path VARCHAR;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS released BOOLEAN DEFAULT false;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS settings_version VARCHAR;
ALTER TABLE selection_runs ADD COLUMN IF NOT EXISTS prepare_seconds DOUBLE DEFAULT 0;"""
# A fine-tune's row in the training, eval and selection tables; parameters from `_run_key`.
RUN_KEY_COLUMNS = "model = ? AND target = ? AND method = ? AND budget = ? AND seed = ?"
# Whether a table of per-run measurements holds a row of a given training run.
RUN_MEASURED_SQL = {
    table: f"SELECT count(*) AS n FROM {table} WHERE {RUN_KEY_COLUMNS} AND run_id = ?"
    for table in ("eval_losses", "pass_at_k")
}
# The one join that finds a document's score under a score key; every score query uses it with `_score_key`.
SCORE_OF_DOCUMENT = (
    "s.content_hash = d.content_hash AND s.target_hash = ? AND s.compressor = ? AND s.level = ? "
    "AND s.engine_version = ? AND s.build = ?"
)
SCORED_DOCUMENTS_OF_DATASET = f"FROM documents d JOIN scores s ON {SCORE_OF_DOCUMENT} WHERE d.dataset = ?"
# Tables of work done once per text and stored by content hash, with the columns that key a result besides the hash
# (the tokenizer that counted, the test split checked against, DSIR's featurizer): see `Store.unstored`.
PER_TEXT_TABLES = {
    "token_counts": ("tokenizer",),
    "test_overlaps": ("test_hash", "ngram_words"),
    "dsir_features": ("featurizer",),
    "embeddings": ("embedder",),
}
# Of the registered `wanted` hashes, those with no row in a per-text table under its key columns, in `wanted` order.
UNSTORED_SQL = {
    table: f"""SELECT w.content_hash FROM wanted w WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE s.content_hash =
               w.content_hash AND {" AND ".join(f"s.{column} = ?" for column in columns)}) ORDER BY w.position"""
    for table, columns in PER_TEXT_TABLES.items()
}
LOCK_RETRY_SECONDS = 300.0
# DuckDB caches table blocks up to 80% of RAM by default; a cap bounds what a long scan keeps resident.
DEFAULT_MEMORY_LIMIT = "512MB"


class StoreError(RuntimeError):
    """The store's file cannot be opened or written; the message names the file and what to check."""


class StoreLocked(StoreError):
    """Another process held the store's write lock for longer than this one would wait."""


class Store:
    """One DuckDB file. Methods open a connection, do one transaction and close it, so that no process holds the
    file (DuckDB's one-writer lock) longer than one read or one write: a multi-hour scoring run and a fine-tune
    recording its result from another process take turns.
    """

    def __init__(
        self,
        path: str | Path,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        lock_wait: float = LOCK_RETRY_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.memory_limit = memory_limit
        self.lock_wait = lock_wait  # how long to wait for another process's write lock before failing
        self._schema_ready = False

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, waiting while another process holds the file's write lock."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the store's folder {self.path.parent}: {error.strerror}") from error
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                connection = duckdb.connect(str(self.path), config={"memory_limit": self.memory_limit})
                break
            except duckdb.IOException as error:
                locked = "lock" in str(error).lower()
                if not locked:
                    raise StoreError(
                        f"cannot open the store {self.path}: {error}. Check that the folder is writable "
                        "(`store:` in the project file says where it is)"
                    ) from error
                if time.monotonic() > deadline:
                    raise StoreLocked(
                        f"the store {self.path} stayed locked by another process for {self.lock_wait:.0f} s: {error}"
                    ) from error
                time.sleep(0.2)
        try:
            if not self._schema_ready:
                self._prepare(connection)
                self._schema_ready = True
            yield connection
        finally:
            connection.close()

    def _prepare(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Create the tables of a new store; refuse a store whose tables another version of the schema made."""
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        found = None
        if "store_info" in tables:
            row = connection.execute("SELECT value FROM store_info WHERE key = 'schema_version'").fetchone()
            found = int(row[0]) if row else None
        elif "documents" in tables:
            found = 1  # the first schema had no store_info table
        if found is not None and found != STORE_SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {found}, this zipfit-pipeline reads version "
                f"{STORE_SCHEMA_VERSION}: move the file aside (or delete it, `make clean` for the demo) and "
                "materialize again"
            )
        connection.execute(SCHEMA)
        connection.execute(ADDED_COLUMNS)
        connection.execute(
            "INSERT INTO store_info VALUES ('schema_version', ?), ('store_id', ?) ON CONFLICT DO NOTHING",
            [str(STORE_SCHEMA_VERSION), uuid.uuid4().hex],
        )

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: a killed or failing write leaves the file as it was."""
        with self.connect() as connection:
            connection.begin()
            try:
                yield connection
                connection.commit()
            except duckdb.Error as error:
                _rollback(connection)
                if isinstance(error, duckdb.IOException | duckdb.TransactionException | duckdb.FatalException):
                    raise StoreError(
                        f"cannot write to the store {self.path} (is the disk full or read-only?): "
                        f"{error}. Nothing of this write was kept"
                    ) from error
                raise
            except BaseException:
                _rollback(connection)
                raise

    def query(self, sql: str, params: Sequence[Any] = (), wanted: pa.Array | None = None) -> pa.Table:
        """A read-only query as an Arrow table (always parameterised; never built from names). Given content hashes
        as `wanted`, the query reads them as the table `wanted(content_hash, position)`, position their index."""
        with self.connect() as connection:
            if wanted is not None:
                connection.register("wanted", _wanted_table(wanted))
            return connection.sql(sql, params=list(params)).to_arrow_table()

    # identity --------------------------------------------------------------------------------------------

    def store_id(self) -> str:
        """Made once when the file is created: a copy keeps it, a new or another project's store has another."""
        return str(self.query("SELECT value FROM store_info WHERE key = 'store_id'").to_pylist()[0]["value"])

    def record_partition_run(self, asset: str, partition: str, run_id: str) -> None:
        """That run `run_id` wrote (or rewrote) the rows of this asset partition."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO partition_runs (asset, partition, run_id) VALUES (?, ?, ?)",
                [asset, partition, run_id],
            )

    def partition_runs(self) -> dict[tuple[str, str], str]:
        """The run that last wrote each asset partition held here, by (asset, partition)."""
        rows = self.query("SELECT asset, partition, run_id FROM partition_runs").to_pylist()
        return {(r["asset"], r["partition"]): r["run_id"] for r in rows}

    # ingestion -------------------------------------------------------------------------------------------

    def replace_documents(self, dataset: str, records: Sequence[Record], skipped: dict[str, int]) -> None:
        """Make `records` the dataset's documents at once (small inputs and tests; ingestion stages in chunks)."""
        self.start_staging(dataset)
        self.stage_documents(dataset, records)
        self.commit_staged(dataset, skipped)

    def start_staging(self, dataset: str) -> None:
        """Forget what an earlier, unfinished ingestion of the dataset staged (one ingestion per dataset at a time)."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM staged_documents WHERE dataset = ?", [dataset])

    def stage_documents(self, dataset: str, records: Sequence[Record]) -> None:
        """One chunk of a new version of the dataset, in one short transaction. Rows already stored as they are
        (same row, id and text) are staged without their text, so re-reading a grown file writes only what is new."""
        with self.transaction() as connection:
            connection.register("chunk", _records_table(records))
            connection.execute(
                """INSERT INTO staged_documents
                   SELECT ?, c.row_index, c.doc_id, c.content_hash, c.n_bytes,
                          CASE WHEN d.row_index IS NULL THEN c.text END
                   FROM chunk c LEFT JOIN documents d ON d.dataset = ? AND d.row_index = c.row_index
                        AND d.content_hash = c.content_hash AND d.doc_id IS NOT DISTINCT FROM c.doc_id""",
                [dataset, dataset],
            )
            connection.unregister("chunk")

    def commit_staged(self, dataset: str, skipped: dict[str, int]) -> None:
        """Replace the dataset's documents with what was staged, in one short transaction that touches only the rows
        that changed. Fails, keeping the stored documents, if a row staged as unchanged has changed meanwhile."""
        with self.transaction() as connection:
            moved = connection.execute(
                """SELECT count(*) FROM staged_documents s WHERE s.dataset = ? AND s.text IS NULL AND NOT EXISTS (
                       SELECT 1 FROM documents d WHERE d.dataset = s.dataset AND d.row_index = s.row_index
                       AND d.content_hash = s.content_hash AND d.doc_id IS NOT DISTINCT FROM s.doc_id)""",
                [dataset],
            ).fetchone()
            if moved and moved[0]:
                raise StoreError(
                    f"{moved[0]} stored documents of {dataset} changed while it was ingested (another "
                    "ingestion of it?): nothing was replaced; ingest it again"
                )
            connection.execute(
                """DELETE FROM documents d WHERE d.dataset = ? AND NOT EXISTS (
                       SELECT 1 FROM staged_documents s WHERE s.dataset = d.dataset AND s.text IS NULL
                       AND s.row_index = d.row_index)""",
                [dataset],
            )
            connection.execute(
                "INSERT INTO documents SELECT dataset, row_index, doc_id, content_hash, n_bytes, text "
                "FROM staged_documents WHERE dataset = ? AND text IS NOT NULL",
                [dataset],
            )
            connection.execute("DELETE FROM staged_documents WHERE dataset = ?", [dataset])
            connection.execute("DELETE FROM ingest_skips WHERE dataset = ?", [dataset])
            for reason, n in sorted(skipped.items()):
                connection.execute("INSERT INTO ingest_skips VALUES (?, ?, ?)", [dataset, reason, n])

    def dataset_summary(self, dataset: str) -> dict[str, Any]:
        """Documents, distinct texts, bytes and a digest of every (row, content hash) of a stored dataset."""
        return self.query(
            """SELECT count(*) AS documents, count(DISTINCT content_hash) AS distinct_texts,
                      coalesce(sum(n_bytes), 0)::BIGINT AS bytes,
                      md5(coalesce(string_agg(row_index || ':' || content_hash, ',' ORDER BY row_index), '')) AS digest
               FROM documents WHERE dataset = ?""",
            [dataset],
        ).to_pylist()[0]

    def replace_targets(self, task: str, splits: Mapping[str, Sequence[Record]]) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM targets WHERE task = ?", [task])
            for split, records in splits.items():
                connection.register("new_targets", _records_table(records))
                connection.execute(
                    "INSERT INTO targets SELECT ?, ?, row_index, doc_id, content_hash, text FROM new_targets",
                    [task, split],
                )
                connection.unregister("new_targets")

    def target_rows(self, task: str, split: str) -> pa.Table:
        """(row_index, doc_id, content_hash, text) of a target's split, in row order."""
        return self.query(
            "SELECT row_index, doc_id, content_hash, text FROM targets WHERE task = ? AND split = ? ORDER BY row_index",
            [task, split],
        )

    def target_texts(self, task: str, split: str) -> list[str]:
        return self.target_rows(task, split).column("text").to_pylist()

    # scoring ---------------------------------------------------------------------------------------------

    def register_score_set(self, target_hash: str, compressor: str, level: int, n_targets: int) -> None:
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO score_sets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [*_score_key(target_hash, compressor, level), n_targets],
            )

    def score_builds(self, target_hash: str, compressor: str, level: int) -> list[str]:
        """The compressor builds that have scored against this target set (this engine version)."""
        rows = self.query(
            "SELECT build FROM score_sets WHERE target_hash = ? AND compressor = ? AND level = ? AND "
            "engine_version = ? ORDER BY build",
            [target_hash, compressor, level, ENGINE_VERSION],
        )
        return rows.column("build").to_pylist()

    def unscored_hashes(self, dataset: str, target_hash: str, compressor: str, level: int) -> pa.Array:
        """Distinct content hashes of a dataset with no score yet, in row order of their first document.

        Hashes only (16 bytes of hex each), so a scoring run keeps its to-do list without holding the store
        open: the texts are read a batch at a time by `texts_of`."""
        return (
            self.query(
                f"""SELECT content_hash FROM documents d
                WHERE dataset = ? AND NOT EXISTS (SELECT 1 FROM scores s WHERE {SCORE_OF_DOCUMENT})
                GROUP BY content_hash ORDER BY min(row_index)""",
                [dataset, *_score_key(target_hash, compressor, level)],
            )
            .column("content_hash")
            .combine_chunks()
        )

    def texts_of(self, hashes: pa.Array) -> list[str]:
        """The stored text of each content hash, in the order given (one short read)."""
        rows = self.query(
            """SELECT w.position, any_value(d.text) AS text FROM wanted w JOIN documents d USING (content_hash)
                             GROUP BY w.position ORDER BY w.position""",
            wanted=hashes,
        )
        if rows.num_rows != len(hashes):
            raise LookupError(
                f"{len(hashes) - rows.num_rows} texts this run needs are no longer stored in {self.path} (a "
                "source was re-ingested meanwhile): run again"
            )
        return rows.column("text").to_pylist()

    def distinct_texts(self, dataset: str) -> int:
        """How many distinct texts a dataset holds."""
        return int(
            self.query(
                "SELECT count(DISTINCT content_hash) AS n FROM documents WHERE dataset = ?", [dataset]
            ).to_pylist()[0]["n"]
        )

    def insert_scores(
        self, target_hash: str, compressor: str, level: int, hashes: list[str], scores: Sequence[float]
    ) -> None:
        table = pa.table({"content_hash": hashes, "score": pa.array(scores, pa.float64())})
        with self.transaction() as connection:
            connection.register("new_scores", table)
            connection.execute(
                "INSERT INTO scores SELECT content_hash, ?, ?, ?, ?, ?, score FROM new_scores ON CONFLICT DO NOTHING",
                _score_key(target_hash, compressor, level),
            )
            connection.unregister("new_scores")

    def record_scoring_run(
        self, dataset: str, target_hash: str, compressor: str, level: int, scored: int, seconds: float, code_path: str
    ) -> None:
        """How long scoring took (so that ZIP-FIT's cost can be compared with the baselines') and on which code path
        (native or python) the scores were computed."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO scoring_runs (dataset, target_hash, compressor, level, engine_version, build, "
                "texts_scored, seconds, code_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [dataset, *_score_key(target_hash, compressor, level), scored, seconds, code_path],
            )

    def scoring_seconds(self, datasets: Sequence[str], target_hash: str, compressor: str, level: int) -> float:
        """Seconds spent scoring these datasets against this target set, over every run (reruns add little)."""
        rows = self.query(
            "SELECT coalesce(sum(seconds), 0) AS s FROM scoring_runs WHERE list_contains(?, dataset) "
            "AND target_hash = ? AND compressor = ? AND level = ? AND engine_version = ? AND build = ?",
            [list(datasets), *_score_key(target_hash, compressor, level)],
        )
        return float(rows.to_pylist()[0]["s"])

    def dataset_scores(self, datasets: Sequence[str], target_hash: str, compressor: str, level: int) -> pa.Table:
        """Each distinct text of the datasets with its score (null if unscored), as (dataset, row_index, doc_id,
        content_hash, score) of its first document in (dataset order, row order): the selection pool, without texts."""
        return self.query(
            f"""SELECT d.dataset, d.row_index, d.doc_id, d.content_hash, s.score
                FROM documents d LEFT JOIN scores s ON {SCORE_OF_DOCUMENT}
                WHERE list_contains(?, d.dataset)
                QUALIFY row_number() OVER (
                    PARTITION BY d.content_hash ORDER BY list_position(?, d.dataset), d.row_index) = 1
                ORDER BY list_position(?, d.dataset), d.row_index""",
            [*_score_key(target_hash, compressor, level), list(datasets), list(datasets), list(datasets)],
        )

    def score_summary(
        self, dataset: str, target_hash: str, compressor: str, level: int, quantiles: Sequence[float], top_n: int
    ) -> dict[str, Any]:
        """Counts, quantiles, a digest of every (text, score) and the best texts, computed inside DuckDB."""
        params = [*_score_key(target_hash, compressor, level), dataset]
        summary = self.query(
            f"""SELECT count(*) AS documents, avg(s.score) AS mean, quantile_cont(s.score, ?) AS quantiles,
                md5(string_agg(d.content_hash || ':' || CAST(s.score AS VARCHAR), ',' ORDER BY d.row_index)) AS digest
                {SCORED_DOCUMENTS_OF_DATASET}""",
            [list(quantiles), *params],
        ).to_pylist()[0]
        top = self.query(
            f"SELECT d.text, s.score {SCORED_DOCUMENTS_OF_DATASET} ORDER BY s.score DESC, d.row_index LIMIT ?",
            [*params, top_n],
        )
        return {**summary, "top_texts": top.column("text").to_pylist(), "top_scores": top.column("score").to_pylist()}

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

    def insert_dsir_features(self, featurizer: str, hashes: pa.Array, buckets: pa.Array, counts: pa.Array) -> None:
        """Each text's hashed n-gram counts as two aligned lists: the buckets it hits and how often."""
        with self.transaction() as connection:
            connection.register("featurized", pa.table({"content_hash": hashes, "buckets": buckets, "counts": counts}))
            connection.execute(
                "INSERT INTO dsir_features SELECT content_hash, ?, buckets, counts FROM featurized "
                "ON CONFLICT DO NOTHING",
                [featurizer],
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

    def dsir_features(self, featurizer: str, hashes: pa.Array, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """(content_hash, buckets, counts) of the given texts, `batch_rows` at a time, in no particular order. One
        streaming read (a semi-join: only the hashes are hashed, never the lists): the consumer should be quick, as
        the store is open meanwhile."""
        with self.connect() as connection:
            connection.register("wanted", _wanted_table(hashes))
            reader = connection.sql(
                "SELECT content_hash, buckets, counts FROM dsir_features WHERE featurizer = ? "
                "AND content_hash IN (SELECT content_hash FROM wanted)",
                params=[featurizer],
            ).to_arrow_reader(batch_rows)
            yield from reader
            connection.unregister("wanted")

    # decontamination -------------------------------------------------------------------------------------

    def test_overlaps(self, test_hash: str, ngram_words: int, hashes: pa.Array) -> pa.Table:
        """(content_hash, test_row, ngram) of the given texts found to share words with this test split."""
        return self.query(
            "SELECT o.content_hash, o.test_row, o.ngram FROM test_overlaps o JOIN wanted w USING "
            "(content_hash) WHERE o.test_hash = ? AND o.ngram_words = ? AND o.ngram IS NOT NULL",
            [test_hash, ngram_words],
            wanted=hashes,
        )

    def insert_test_overlaps(self, test_hash: str, ngram_words: int, checked: pa.Table) -> None:
        """Results of checking texts against a test split: (content_hash, test_row, ngram), nulls where clean."""
        with self.transaction() as connection:
            connection.register("checked", checked)
            connection.execute(
                "INSERT INTO test_overlaps SELECT content_hash, ?, ?, test_row, ngram FROM checked "
                "ON CONFLICT DO NOTHING",
                [test_hash, ngram_words],
            )
            connection.unregister("checked")

    # selection, training, evaluation -----------------------------------------------------------------------

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
                "INSERT INTO contaminated_texts SELECT ?, ?, dataset, doc_id, content_hash, zipfit_rank, "
                "test_row, ngram, removed FROM new_contaminated",
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
        rows = self.query(f"SELECT * FROM selection_sets WHERE {RUN_KEY_COLUMNS}", _run_key(key)).to_pylist()
        return rows[0] if rows else None

    def selected_texts(self, key: RunKey) -> list[str]:
        """The texts a selection chose, found by content hash, in rank order.

        Rows move when a source is re-ingested, hashes do not: a fine-tune trains on exactly what was selected.
        A selected text that no document holds any more fails, rather than training on something else.
        """
        rows = self.query(
            f"""SELECT s.content_hash, t.text FROM (SELECT rank, content_hash FROM selections WHERE {RUN_KEY_COLUMNS}) s
                LEFT JOIN (SELECT content_hash, any_value(text) AS text FROM documents WHERE content_hash IN
                           (SELECT content_hash FROM selections WHERE {RUN_KEY_COLUMNS}) GROUP BY content_hash) t
                USING (content_hash) ORDER BY s.rank""",
            [*_run_key(key), *_run_key(key)],
        ).to_pylist()
        gone = [r["content_hash"] for r in rows if r["text"] is None]
        if gone:
            raise LookupError(
                f"the selection {key} chose {len(gone)} texts that no stored document holds any more (a source "
                f"was re-ingested or removed since, e.g. text {gone[0]}): materialize selections again"
            )
        return [r["text"] for r in rows]

    def selected_documents(self, model: str, target: str) -> pa.Table:
        """(method, budget, seed, content_hash, text) of every selected document of a model and target."""
        return self.query(
            """SELECT s.method, s.budget, s.seed, s.content_hash, t.text FROM selections s
               JOIN (SELECT content_hash, any_value(text) AS text FROM documents GROUP BY content_hash) t
               USING (content_hash)
               WHERE s.model = ? AND s.target = ? ORDER BY s.method, s.budget, s.seed, s.rank""",
            [model, target],
        )

    def record_training(self, key: RunKey, row: dict[str, Any], curves: dict[str, list[tuple[int, float]]]) -> None:
        """Make `row` (its run id, selection version, checkpoint and figures) the current fine-tune of `key`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM training_runs WHERE {RUN_KEY_COLUMNS}", _run_key(key))
            connection.execute(
                """INSERT INTO training_runs (model, target, method, budget, seed, run_id, selection_version,
                   checkpoint, train_tokens, steps, final_train_loss, seconds, device, settings_version)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    *_run_key(key),
                    row["run_id"],
                    row["selection_version"],
                    row["checkpoint"],
                    row["train_tokens"],
                    row["steps"],
                    row["final_train_loss"],
                    row["seconds"],
                    row["device"],
                    row.get("settings_version"),
                ],
            )
            connection.execute("DELETE FROM loss_curves WHERE run_id = ?", [row["run_id"]])
            for kind, points in curves.items():
                for tokens, loss in dict(points).items():
                    connection.execute(
                        "INSERT INTO loss_curves VALUES (?, ?, ?, ?)", [row["run_id"], kind, tokens, loss]
                    )

    def training_run(self, key: RunKey) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM training_runs WHERE {RUN_KEY_COLUMNS}", _run_key(key)).to_pylist()
        return rows[0] if rows else None

    def loss_curve(self, run_id: str, kind: str) -> list[tuple[int, float]]:
        """(tokens, loss) points of a training run's `train` or `test` curve."""
        rows = self.query(
            "SELECT tokens, loss FROM loss_curves WHERE run_id = ? AND kind = ? ORDER BY tokens", [run_id, kind]
        )
        return list(zip(rows.column("tokens").to_pylist(), rows.column("loss").to_pylist()))

    def release_checkpoint(self, key: RunKey, run_id: str) -> None:
        """Mark the checkpoint of run `run_id` deleted on purpose (`keep_checkpoints: false`): its figures stay
        current."""
        with self.transaction() as connection:
            connection.execute(
                f"UPDATE training_runs SET released = true WHERE {RUN_KEY_COLUMNS} AND run_id = ?",
                [*_run_key(key), run_id],
            )

    def is_measured(self, key: RunKey, run_id: str, with_pass_at_k: bool) -> bool:
        """Whether the test loss (and Pass@k) of training run `run_id` of `key` are recorded."""
        tables = ["eval_losses", "pass_at_k"] if with_pass_at_k else ["eval_losses"]
        return all(
            self.query(RUN_MEASURED_SQL[table], [*_run_key(key), run_id]).column("n")[0].as_py() for table in tables
        )

    def record_pass_at_k(
        self,
        key: RunKey,
        run_id: str,
        selection_version: str | None,
        values: dict[int, float],
        samples: int,
        problems: int,
    ) -> None:
        """Pass@k for each k of training run `run_id`'s checkpoint, from `samples` completions of each of `problems`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM pass_at_k WHERE {RUN_KEY_COLUMNS}", _run_key(key))
            for k, value in values.items():
                connection.execute(
                    "INSERT INTO pass_at_k VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*_run_key(key), run_id, selection_version, k, value, samples, problems],
                )

    def record_eval(
        self, key: RunKey, run_id: str, selection_version: str | None, test_loss: float, test_tokens: int
    ) -> None:
        """The test loss of the checkpoint that training run `run_id` saved, trained on `selection_version`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM eval_losses WHERE {RUN_KEY_COLUMNS}", _run_key(key))
            connection.execute(
                "INSERT INTO eval_losses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*_run_key(key), run_id, selection_version, test_loss, test_tokens],
            )


def _run_key(key: RunKey) -> list[Any]:
    """Parameters of RUN_KEY_COLUMNS, in its order."""
    return [key.model, key.target, key.method, key.budget, key.seed]


def _rollback(connection: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed commit has already ended it)."""
    try:
        connection.rollback()
    except duckdb.Error:
        pass


def _score_key(target_hash: str, compressor: str, level: int) -> list[Any]:
    """Parameters of SCORE_OF_DOCUMENT, in its order: a score is only valid for this engine version and library
    build."""
    return [target_hash, compressor, level, ENGINE_VERSION, compressor_build(compressor)]


def _wanted_table(hashes: pa.Array) -> pa.Table:
    """Content hashes a query joins against, with their index (to return results in the order given)."""
    return pa.table({"content_hash": hashes, "position": pa.array(range(len(hashes)), pa.int64())})


def _records_table(records: Sequence[Record]) -> pa.Table:
    texts = [r.text for r in records]
    return pa.table(
        {
            "row_index": pa.array([r.row_index for r in records], pa.int64()),
            "doc_id": pa.array([r.doc_id for r in records], pa.string()),
            "content_hash": pa.array([content_hash(t) for t in texts], pa.string()),
            "n_bytes": pa.array([len(t.encode("utf-8")) for t in texts], pa.int64()),
            "text": pa.array(texts, pa.string()),
        }
    )
