"""The train stage's tables: the current fine-tune of each (model, target, method, budget, seed), with the selection
version and settings it trained on and its checkpoint, and its loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zipfit_pipeline.engine.core.runs import BASE, RunKey
from zipfit_pipeline.engine.core.store import (
    OF_MODEL_AND_TARGET,
    RUN_KEY_COLUMNS,
    Tables,
    rows_by_run_key,
    run_key_params,
)


class TrainTables(Tables):
    SCHEMA = """
CREATE TABLE IF NOT EXISTS training_runs (
    model VARCHAR, target VARCHAR, method VARCHAR, budget BIGINT, seed INTEGER, run_id VARCHAR,
    selection_version VARCHAR, checkpoint VARCHAR, train_tokens BIGINT, steps INTEGER, final_train_loss DOUBLE,
    seconds DOUBLE, device VARCHAR,
    PRIMARY KEY (model, target, method, budget, seed));
CREATE TABLE IF NOT EXISTS loss_curves (
    run_id VARCHAR, kind VARCHAR, tokens BIGINT, loss DOUBLE, PRIMARY KEY (run_id, kind, tokens));
CREATE TABLE IF NOT EXISTS checkpoint_folders (run_id VARCHAR PRIMARY KEY, started TIMESTAMP DEFAULT current_timestamp);
"""
    ADDED_COLUMNS = """ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS released BOOLEAN DEFAULT false;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS settings_version VARCHAR;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS curve_test_hash VARCHAR;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS token_budget BIGINT;"""

    def record_training(self, key: RunKey, row: dict[str, Any], curves: dict[str, list[tuple[int, float]]]) -> None:
        """Make `row` (its run id, selection version, checkpoint and figures) the current fine-tune of `key`."""
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM training_runs WHERE {RUN_KEY_COLUMNS}", run_key_params(key))
            connection.execute(
                """INSERT INTO training_runs (model, target, method, budget, seed, run_id, selection_version,
                   checkpoint, train_tokens, steps, final_train_loss, seconds, device, settings_version,
                   curve_test_hash, token_budget)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    *run_key_params(key),
                    row["run_id"],
                    row["selection_version"],
                    row["checkpoint"],
                    row["train_tokens"],
                    row["steps"],
                    row["final_train_loss"],
                    row["seconds"],
                    row["device"],
                    row.get("settings_version"),
                    row.get("curve_test_hash"),  # the test split the mid-training curve points measured
                    row.get("token_budget"),  # the tokens it was to train on (a budget, or `all` up to its cap)
                ],
            )
            connection.execute("DELETE FROM loss_curves WHERE run_id = ?", [row["run_id"]])
            for kind, points in curves.items():
                for tokens, loss in dict(points).items():
                    connection.execute(
                        "INSERT INTO loss_curves VALUES (?, ?, ?, ?)", [row["run_id"], kind, tokens, loss]
                    )

    def training_run(self, key: RunKey) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM training_runs WHERE {RUN_KEY_COLUMNS}", run_key_params(key)).to_pylist()
        return rows[0] if rows else None

    def loss_curve(self, run_id: str, kind: str) -> list[tuple[int, float]]:
        """(tokens, loss) points of a training run's `train` or `test` curve."""
        rows = self.query(
            "SELECT tokens, loss FROM loss_curves WHERE run_id = ? AND kind = ? ORDER BY tokens", [run_id, kind]
        )
        return list(zip(rows.column("tokens").to_pylist(), rows.column("loss").to_pylist()))

    def own_checkpoint_folder(self, key: RunKey, run_id: str) -> None:
        """That this store's fine-tune `run_id` of `key` is about to write its run folder (named by the run id), and
        that the folder of `key`'s current run is its own too (a store from before this table): clean-up deletes
        only folders recorded here, never another project's."""
        with self.transaction() as connection:
            connection.execute("INSERT OR IGNORE INTO checkpoint_folders (run_id) VALUES (?)", [run_id])
            connection.execute(
                "INSERT OR IGNORE INTO checkpoint_folders (run_id) "
                f"SELECT run_id FROM training_runs WHERE {RUN_KEY_COLUMNS}",
                run_key_params(key),
            )

    def owned_checkpoint_folders(self) -> set[str]:
        return set(self.query("SELECT run_id FROM checkpoint_folders").column("run_id").to_pylist())

    def forget_checkpoint_folders(self, run_ids: list[str]) -> None:
        with self.transaction() as connection:
            connection.execute("DELETE FROM checkpoint_folders WHERE list_contains(?, run_id)", [run_ids])

    def release_checkpoint(self, key: RunKey, run_id: str) -> None:
        """Mark the checkpoint of run `run_id` deleted on purpose (`keep_checkpoints: false`): its figures stay
        current."""
        with self.transaction() as connection:
            connection.execute(
                f"UPDATE training_runs SET released = true WHERE {RUN_KEY_COLUMNS} AND run_id = ?",
                [*run_key_params(key), run_id],
            )

    def runs(self, model: str | None = None, target: str | None = None) -> dict[RunKey, dict[str, Any]]:
        """The current fine-tune of every key (of one model and target, if given)."""
        rows = self.query(f"SELECT * FROM training_runs WHERE {OF_MODEL_AND_TARGET}", [model, model, target, target])
        return rows_by_run_key(rows.to_pylist())

    def gone_checkpoints(self) -> dict[RunKey, str]:
        """Fine-tunes (not `base`, the pretrained model) whose recorded checkpoint folder is missing, other than on
        purpose (released), with that folder."""
        return {
            key: row["checkpoint"]
            for key, row in self.runs().items()
            if key.method != BASE and not row["released"] and not Path(row["checkpoint"]).is_dir()
        }

    def test_curves(self, run_ids: list[str]) -> dict[str, list[tuple[int, float]]]:
        """(tokens, test loss) points measured during each given run, in token order."""
        curves: dict[str, list[tuple[int, float]]] = {}
        for point in self.query(
            "SELECT run_id, tokens, loss FROM loss_curves WHERE kind = 'test' AND list_contains(?, run_id) "
            "ORDER BY tokens",
            [run_ids],
        ).to_pylist():
            curves.setdefault(point["run_id"], []).append((point["tokens"], point["loss"]))
        return curves
