"""The store's core: one DuckDB file, its connections, transactions, write lock, schema version and identity.

Each stage keeps its own tables in the file and reads and writes them only through its repository (`Tables`, in
`<stage>/tables.py`), which creates them the first time it opens the store. A stage reads another stage's results
through that stage's repository. Everything is addressed by content, never by row position (rows move when a
source is re-ingested). Every write is one transaction; connections are short-lived, because DuckDB allows one
writing process per file: a multi-hour scoring run and a fine-tune recording its result from another process take
turns.

The store knows itself: an id made when the file is created, and for every asset partition the run that last
wrote it (`partition_runs`). Comparing those with the Dagster instance's history tells a deleted, replaced or
restored store from the one the history describes (see `orchestration/store_state.py`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from zipfit_pipeline.engine.core.runs import RunKey

STORE_SCHEMA_VERSION = 2  # bumped when a table changes incompatibly; an older store is refused with what to do
CORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS partition_runs (
    asset VARCHAR, partition VARCHAR, run_id VARCHAR, written TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (asset, partition));
ALTER TABLE partition_runs ADD COLUMN IF NOT EXISTS provenance VARCHAR;
"""
LOCK_RETRY_SECONDS = 300.0
# A fine-tune's row in the tables of the stages after selection; parameters from `run_key_params`.
RUN_KEY_COLUMNS = "model = ? AND target = ? AND method = ? AND budget = ? AND seed = ?"
# Rows of one model and target, or of all when both parameters are null: [model, model, target, target].
OF_MODEL_AND_TARGET = "(? IS NULL OR model = ?) AND (? IS NULL OR target = ?)"
# DuckDB caches table blocks up to 80% of RAM by default; a cap bounds what a long scan keeps resident.
DEFAULT_MEMORY_LIMIT = "512MB"


class StoreError(RuntimeError):
    """The store's file cannot be opened or written; the message names the file and what to check."""


class StoreLocked(StoreError):
    """Another process held the store's write lock for longer than this one would wait."""


class Store:
    """One DuckDB file. Methods open a connection, do one transaction and close it, so that no process holds the
    file (DuckDB's one-writer lock) longer than one read or one write: a multi-hour scoring run and a fine-tune
    recording its result from another process take turns. Each stage's repository (`Tables`) works through it.
    """

    def __init__(
        self,
        path: str | Path,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        lock_wait: float = LOCK_RETRY_SECONDS,
        owner: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.owner_file = owner  # the project file recorded as the owner of a store this object creates
        self.memory_limit = memory_limit
        self.lock_wait = lock_wait  # how long to wait for another process's write lock before failing
        self._schema_ready = False
        self._tables_made: set[type[Tables]] = set()  # the stages whose tables this object has made sure of

    @contextmanager
    def connect(self, tables: type[Tables] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, waiting while another process holds the file's write lock; with the tables of `tables` (a
        stage's repository) made if this object has not yet made sure of them."""
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
            if tables is not None and tables not in self._tables_made:
                connection.execute(tables.SCHEMA)
                if tables.ADDED_COLUMNS:
                    connection.execute(tables.ADDED_COLUMNS)
                self._tables_made.add(tables)
            yield connection
        finally:
            connection.close()

    def _prepare(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Make the core's tables in a new store; refuse a store whose tables another version of the schema made."""
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
        connection.execute(CORE_SCHEMA)
        connection.execute(
            "INSERT INTO store_info VALUES ('schema_version', ?), ('store_id', ?) ON CONFLICT DO NOTHING",
            [str(STORE_SCHEMA_VERSION), uuid.uuid4().hex],
        )
        if self.owner_file is not None:
            connection.execute(
                "INSERT INTO store_info VALUES ('project', ?) ON CONFLICT DO NOTHING", [str(self.owner_file)]
            )

    @contextmanager
    def transaction(self, tables: type[Tables] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: a killed or failing write leaves the file as it was."""
        with self.connect(tables) as connection:
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

    def query(
        self, sql: str, params: Sequence[Any] = (), wanted: pa.Array | None = None, tables: type[Tables] | None = None
    ) -> pa.Table:
        """A read-only query as an Arrow table (always parameterised; never built from names). Given content hashes
        as `wanted`, the query reads them as the table `wanted(content_hash, position)`, position their index."""
        with self.connect(tables) as connection:
            if wanted is not None:
                connection.register("wanted", wanted_table(wanted))
            return connection.sql(sql, params=list(params)).to_arrow_table()

    # identity --------------------------------------------------------------------------------------------

    def store_id(self) -> str:
        """Made once when the file is created: a copy keeps it, a new or another project's store has another."""
        return str(self.query("SELECT value FROM store_info WHERE key = 'store_id'").to_pylist()[0]["value"])

    def owner(self) -> Path | None:
        """The project file this store belongs to (see `ownership.py`), None if none is recorded."""
        rows = self.query("SELECT value FROM store_info WHERE key = 'project'").to_pylist()
        return Path(rows[0]["value"]) if rows else None

    def set_owner(self, project_file: Path) -> None:
        with self.transaction() as connection:
            connection.execute("INSERT OR REPLACE INTO store_info VALUES ('project', ?)", [str(project_file)])

    def record_partition_run(self, asset: str, partition: str, run_id: str, provenance: str = "") -> None:
        """That run `run_id` wrote (or rewrote) the rows of this asset partition, from inputs whose digest is
        `provenance` (its code version and declared inputs)."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO partition_runs (asset, partition, run_id, provenance) VALUES (?, ?, ?, ?)",
                [asset, partition, run_id, provenance],
            )

    def partition_runs(self) -> dict[tuple[str, str], str]:
        """The run that last wrote each asset partition held here, by (asset, partition)."""
        rows = self.query("SELECT asset, partition, run_id FROM partition_runs").to_pylist()
        return {(r["asset"], r["partition"]): r["run_id"] for r in rows}


class Tables:
    """One stage's repository: its tables (`SCHEMA`, made the first time it opens the store) and every query of
    them. Other stages read these tables only through its methods."""

    SCHEMA: ClassVar[str]
    # Columns added since a schema version was first released: older stores of that version gain them on opening.
    ADDED_COLUMNS: ClassVar[str] = ""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def path(self) -> Path:
        return self.store.path

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.store.transaction(type(self)) as connection:
            yield connection

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.store.connect(type(self)) as connection:
            yield connection

    def query(self, sql: str, params: Sequence[Any] = (), wanted: pa.Array | None = None) -> pa.Table:
        return self.store.query(sql, params, wanted, type(self))


def _rollback(connection: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed commit has already ended it)."""
    try:
        connection.rollback()
    except duckdb.Error:
        pass


def wanted_table(hashes: pa.Array) -> pa.Table:
    """Content hashes a query joins against, with their index (to return results in the order given)."""
    return pa.table({"content_hash": hashes, "position": pa.array(range(len(hashes)), pa.int64())})


def rows_by_run_key(rows: list[dict[str, Any]]) -> dict[RunKey, dict[str, Any]]:
    """Rows of a table of the stages after selection, by the fine-tune (model, target, method, budget, seed) they
    belong to."""
    return {RunKey(r["model"], r["target"], r["method"], r["budget"], r["seed"]): r for r in rows}


def run_key_params(key: RunKey) -> list[Any]:
    """Parameters of RUN_KEY_COLUMNS, in its order."""
    return [key.model, key.target, key.method, key.budget, key.seed]
