"""The evaluate stage's tables: the test loss and pass@k of each fine-tune, with the training run whose checkpoint
they measured and the selection version that run trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import (
    OF_MODEL_AND_TARGET,
    RUN_KEY_COLUMNS,
    Tables,
    rows_by_run_key,
    run_key_params,
)

# Whether a table of per-run measurements holds a row of a given training run.
RUN_MEASURED_SQL = {
    table: f"SELECT count(*) AS n FROM {table} WHERE {RUN_KEY_COLUMNS} AND run_id = ?"
    for table in ("eval_losses", "pass_at_k")
}


@dataclass(frozen=True)
class Measured:
    """What a measurement read besides the checkpoint: the test split (its key as stored) and the settings."""

    test_hash: str | None
    settings_version: str


class EvalTables(Tables):
    SCHEMA = """
CREATE TABLE IF NOT EXISTS eval_losses (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, run_id VARCHAR,
    selection_version VARCHAR, test_loss DOUBLE, test_tokens BIGINT, PRIMARY KEY (model, target, method, budget, seed));
CREATE TABLE IF NOT EXISTS pass_at_k (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, run_id VARCHAR,
    selection_version VARCHAR, k INTEGER, pass_at_k DOUBLE, samples INTEGER, problems INTEGER,
    PRIMARY KEY (model, target, method, budget, seed, k));
"""
    # What a measurement was made with besides the checkpoint: the test split's key and the digest of the settings
    # the stage declares it reads (its code version). The report compares both with the project's now.
    ADDED_COLUMNS = """ALTER TABLE eval_losses ADD COLUMN IF NOT EXISTS test_hash VARCHAR;
ALTER TABLE eval_losses ADD COLUMN IF NOT EXISTS settings_version VARCHAR;
ALTER TABLE pass_at_k ADD COLUMN IF NOT EXISTS test_hash VARCHAR;
ALTER TABLE pass_at_k ADD COLUMN IF NOT EXISTS settings_version VARCHAR;"""

    def is_measured(self, key: RunKey, run_id: str, with_pass_at_k: bool) -> bool:
        """Whether the test loss (and Pass@k) of training run `run_id` of `key` are recorded."""
        tables = ["eval_losses", "pass_at_k"] if with_pass_at_k else ["eval_losses"]
        return all(
            self.query(RUN_MEASURED_SQL[table], [*run_key_params(key), run_id]).column("n")[0].as_py()
            for table in tables
        )

    def record_pass_at_k(
        self,
        key: RunKey,
        run_id: str,
        selection_version: str | None,
        values: dict[int, float],
        samples: int,
        problems: int,
        measured_with: Measured,
    ) -> None:
        """Pass@k for each k of training run `run_id`'s checkpoint, from `samples` completions of each of `problems`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM pass_at_k WHERE {RUN_KEY_COLUMNS}", run_key_params(key))
            for k, value in values.items():
                connection.execute(
                    """INSERT INTO pass_at_k (model, target, method, budget, seed, run_id, selection_version, k,
                       pass_at_k, samples, problems, test_hash, settings_version)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        *run_key_params(key),
                        run_id,
                        selection_version,
                        k,
                        value,
                        samples,
                        problems,
                        measured_with.test_hash,
                        measured_with.settings_version,
                    ],
                )

    def record_eval(
        self,
        key: RunKey,
        run_id: str,
        selection_version: str | None,
        test_loss: float,
        test_tokens: int,
        measured_with: Measured,
    ) -> None:
        """The test loss of the checkpoint that training run `run_id` saved, trained on `selection_version`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM eval_losses WHERE {RUN_KEY_COLUMNS}", run_key_params(key))
            connection.execute(
                """INSERT INTO eval_losses (model, target, method, budget, seed, run_id, selection_version, test_loss,
                   test_tokens, test_hash, settings_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    *run_key_params(key),
                    run_id,
                    selection_version,
                    test_loss,
                    test_tokens,
                    measured_with.test_hash,
                    measured_with.settings_version,
                ],
            )

    # what the report reads ---------------------------------------------------------------------------------

    def test_losses(self, model: str | None = None, target: str | None = None) -> dict[RunKey, dict[str, Any]]:
        """The recorded test loss of every key (of one model and target, if given), with the run it measured."""
        rows = self.query(f"SELECT * FROM eval_losses WHERE {OF_MODEL_AND_TARGET}", [model, model, target, target])
        return rows_by_run_key(rows.to_pylist())

    def pass_at_k_rows(self, model: str, target: str) -> list[dict[str, Any]]:
        """(method, budget, seed, k, pass_at_k, run_id) of every recorded pass@k of a model and target."""
        return self.query(
            "SELECT method, budget, seed, k, pass_at_k, run_id, test_hash, settings_version FROM pass_at_k "
            "WHERE model = ? AND target = ?",
            [model, target],
        ).to_pylist()
