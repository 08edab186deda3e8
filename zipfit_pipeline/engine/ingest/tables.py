"""The ingest stage's tables: documents by dataset and row, the skip counts, and the targets' splits.

Downstream stages read documents only through these methods: texts by content hash, a dataset's hashes in row
order, the pool's first document of each distinct text, a target's split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from zipfit_pipeline.engine.core.hashing import content_hash, set_hash
from zipfit_pipeline.engine.core.store import StoreError, Tables
from zipfit_pipeline.engine.ingest.records import Record

INGESTED_FILE_FIELDS = ("path", "reader", "size", "content", "rows", "skipped", "first_skipped")


class IngestTables(Tables):
    SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    dataset VARCHAR, row_index BIGINT, doc_id VARCHAR, content_hash VARCHAR, n_bytes BIGINT, text VARCHAR,
    PRIMARY KEY (dataset, row_index));
CREATE TABLE IF NOT EXISTS staged_documents (
    dataset VARCHAR, row_index BIGINT, doc_id VARCHAR, content_hash VARCHAR, n_bytes BIGINT, text VARCHAR);
CREATE TABLE IF NOT EXISTS ingest_skips (dataset VARCHAR, reason VARCHAR, n BIGINT, PRIMARY KEY (dataset, reason));
CREATE TABLE IF NOT EXISTS ingested_files (
    dataset VARCHAR PRIMARY KEY, path VARCHAR, reader VARCHAR, size BIGINT, content VARCHAR, rows BIGINT,
    skipped VARCHAR, first_skipped VARCHAR);
CREATE TABLE IF NOT EXISTS targets (
    task VARCHAR, split VARCHAR, row_index BIGINT, doc_id VARCHAR, content_hash VARCHAR, text VARCHAR,
    PRIMARY KEY (task, split, row_index));
"""

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

    def stage_stored(self, dataset: str) -> None:
        """Stage every stored document of the dataset as unchanged (without its text): what a grown file's first
        rows still are."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO staged_documents SELECT dataset, row_index, doc_id, content_hash, n_bytes, NULL "
                "FROM documents WHERE dataset = ?",
                [dataset],
            )

    def unstage_repeated_ids(self, dataset: str, first_row: int) -> list[int]:
        """Drop the staged rows from `first_row` on whose id a stored row before it already has (the first row with
        an id keeps it, as in a whole read); returns their row indexes, in order."""
        with self.transaction() as connection:
            rows = connection.execute(
                """DELETE FROM staged_documents s WHERE s.dataset = ? AND s.row_index >= ? AND s.doc_id IS NOT NULL
                   AND EXISTS (SELECT 1 FROM documents d WHERE d.dataset = s.dataset AND d.doc_id = s.doc_id
                               AND d.row_index < ?)
                   RETURNING s.row_index""",
                [dataset, first_row, first_row],
            ).fetchall()
        return sorted(r[0] for r in rows)

    def forget_ingested_file(self, dataset: str) -> None:
        """The next ingestion of the dataset reads its whole input."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM ingested_files WHERE dataset = ?", [dataset])

    def ingested_file(self, dataset: str) -> dict[str, Any] | None:
        """What the dataset's last ingestion read: (path, reader, size, content, rows, skipped, first_skipped)."""
        rows = self.query("SELECT * FROM ingested_files WHERE dataset = ?", [dataset]).to_pylist()
        return rows[0] if rows else None

    def commit_staged(self, dataset: str, skipped: dict[str, int], file: dict[str, Any] | None = None) -> None:
        """Replace the dataset's documents with what was staged, in one short transaction that touches only the rows
        that changed, and record the file they were read from (`file`: a grown file's next ingestion reads only
        its new rows; None: it reads the whole input). Fails, keeping the stored documents, if a row staged as
        unchanged has changed meanwhile."""
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
            connection.execute("DELETE FROM ingested_files WHERE dataset = ?", [dataset])
            if file is not None:
                connection.execute(
                    "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [dataset, *(file[k] for k in INGESTED_FILE_FIELDS)],
                )

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

    def split_hash(self, task: str, split: str) -> str | None:
        """The key of a target's split as stored now (its texts in row order; `set_hash`), None if not ingested: what
        an eval, a Pass@k row or a decontamination records it measured against."""
        hashes = self.target_rows(task, split).column("content_hash").to_pylist()
        return set_hash(hashes) if hashes else None

    # what downstream stages read ---------------------------------------------------------------------------

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

    def texts_or_none(self, hashes: pa.Array) -> list[str | None]:
        """The stored text of each content hash, in the order given; None where no document holds it any more."""
        rows = self.query(
            """SELECT w.position, any_value(d.text) AS text FROM wanted w LEFT JOIN documents d USING (content_hash)
               GROUP BY w.position ORDER BY w.position""",
            wanted=hashes,
        )
        return rows.column("text").to_pylist()

    def distinct_texts(self, dataset: str) -> int:
        """How many distinct texts a dataset holds."""
        return int(
            self.query(
                "SELECT count(DISTINCT content_hash) AS n FROM documents WHERE dataset = ?", [dataset]
            ).to_pylist()[0]["n"]
        )

    def distinct_hashes(self, dataset: str) -> pa.Array:
        """Distinct content hashes of a dataset, in row order of their first document (16 bytes of hex each: a
        to-do list that holds no texts)."""
        return (
            self.query(
                "SELECT content_hash FROM documents WHERE dataset = ? GROUP BY content_hash ORDER BY min(row_index)",
                [dataset],
            )
            .column("content_hash")
            .combine_chunks()
        )

    def row_hashes(self, dataset: str) -> pa.Array:
        """The content hash of every document of a dataset, in row order."""
        return (
            self.query("SELECT content_hash FROM documents WHERE dataset = ? ORDER BY row_index", [dataset])
            .column("content_hash")
            .combine_chunks()
        )

    def pool_documents(self, datasets: Sequence[str]) -> pa.Table:
        """Each distinct text of the datasets as (dataset, row_index, doc_id, content_hash) of its first document in
        (dataset order, row order): the selection pool, without texts."""
        return self.query(
            """SELECT dataset, row_index, doc_id, content_hash FROM documents WHERE list_contains(?, dataset)
               QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY list_position(?, dataset), row_index) = 1
               ORDER BY list_position(?, dataset), row_index""",
            [list(datasets), list(datasets), list(datasets)],
        )


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
