"""The evaluate stage's tables: the test loss and pass@k of each fine-tune, with the training run whose checkpoint
they measured and the selection version that run trained on."""

from __future__ import annotations

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
    ) -> None:
        """Pass@k for each k of training run `run_id`'s checkpoint, from `samples` completions of each of `problems`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM pass_at_k WHERE {RUN_KEY_COLUMNS}", run_key_params(key))
            for k, value in values.items():
                connection.execute(
                    "INSERT INTO pass_at_k VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*run_key_params(key), run_id, selection_version, k, value, samples, problems],
                )

    def record_eval(
        self, key: RunKey, run_id: str, selection_version: str | None, test_loss: float, test_tokens: int
    ) -> None:
        """The test loss of the checkpoint that training run `run_id` saved, trained on `selection_version`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM eval_losses WHERE {RUN_KEY_COLUMNS}", run_key_params(key))
            connection.execute(
                "INSERT INTO eval_losses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*run_key_params(key), run_id, selection_version, test_loss, test_tokens],
            )

    # what the report reads ---------------------------------------------------------------------------------

    def test_losses(self, model: str | None = None, target: str | None = None) -> dict[RunKey, dict[str, Any]]:
        """The recorded test loss of every key (of one model and target, if given), with the run it measured."""
        rows = self.query(f"SELECT * FROM eval_losses WHERE {OF_MODEL_AND_TARGET}", [model, model, target, target])
        return rows_by_run_key(rows.to_pylist())

    def pass_at_k_rows(self, model: str, target: str) -> list[dict[str, Any]]:
        """(method, budget, seed, k, pass_at_k, run_id) of every recorded pass@k of a model and target."""
        return self.query(
            "SELECT method, budget, seed, k, pass_at_k, run_id FROM pass_at_k WHERE model = ? AND target = ?",
            [model, target],
        ).to_pylist()
