"""The score stage's tables: score sets, one score per (text, score set, engine version, compressor build), and
how long each scoring run took on which code path.

A score is valid only for the engine version and library build that computed it (`_key`): scores of two builds
never mix. Texts are joined by content hash (`wanted`), so the score stage needs no other stage's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from zipfit_pipeline.engine import ENGINE_VERSION
from zipfit_pipeline.engine.core.store import Tables
from zipfit_pipeline.engine.score.native import score_build
from zipfit_pipeline.engine.score.score_set import ScoreSet

# A text's score under a score key; every score query uses it with `_key`.
SCORE_OF_TEXT = (
    "s.content_hash = w.content_hash AND s.target_hash = ? AND s.compressor = ? AND s.level = ? "
    "AND s.engine_version = ? AND s.build = ?"
)
SCORED_TEXTS = f"FROM wanted w JOIN scores s ON {SCORE_OF_TEXT}"  # the given texts that have a score


class ScoreTables(Tables):
    SCHEMA = """
CREATE TABLE IF NOT EXISTS score_sets (
    target_hash VARCHAR, compressor VARCHAR, level INTEGER, engine_version VARCHAR, build VARCHAR,
    n_targets INTEGER, PRIMARY KEY (target_hash, compressor, level, engine_version, build));
CREATE TABLE IF NOT EXISTS scores (
    content_hash VARCHAR, target_hash VARCHAR, compressor VARCHAR, level INTEGER, engine_version VARCHAR, build VARCHAR,
    score DOUBLE, PRIMARY KEY (content_hash, target_hash, compressor, level, engine_version, build));
CREATE TABLE IF NOT EXISTS scoring_runs (
    dataset VARCHAR, target_hash VARCHAR, compressor VARCHAR, level INTEGER, engine_version VARCHAR, build VARCHAR,
    texts_scored BIGINT, seconds DOUBLE, finished TIMESTAMP DEFAULT current_timestamp, code_path VARCHAR);
"""
    ADDED_COLUMNS = "ALTER TABLE scoring_runs ADD COLUMN IF NOT EXISTS code_path VARCHAR;"

    def register(self, score_set: ScoreSet) -> None:
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO score_sets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [*_key(score_set), len(score_set.targets)],
            )

    def builds(self, score_set: ScoreSet) -> list[str]:
        """The compressor builds that have scored this score set (this engine version)."""
        rows = self.query(
            "SELECT build FROM score_sets WHERE target_hash = ? AND compressor = ? AND level = ? AND "
            "engine_version = ? ORDER BY build",
            [score_set.target_hash, score_set.compressor, score_set.level, ENGINE_VERSION],
        )
        return rows.column("build").to_pylist()

    def unscored(self, score_set: ScoreSet, hashes: pa.Array) -> pa.Array:
        """Of the given content hashes, those with no score in this set yet, in the order given."""
        return (
            self.query(
                f"""SELECT w.content_hash FROM wanted w WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE {SCORE_OF_TEXT})
                    ORDER BY w.position""",
                _key(score_set),
                wanted=hashes,
            )
            .column("content_hash")
            .combine_chunks()
        )

    def insert(self, score_set: ScoreSet, hashes: list[str], scores: Sequence[float]) -> None:
        table = pa.table({"content_hash": hashes, "score": pa.array(scores, pa.float64())})
        with self.transaction() as connection:
            connection.register("new_scores", table)
            connection.execute(
                "INSERT INTO scores SELECT content_hash, ?, ?, ?, ?, ?, score FROM new_scores ON CONFLICT DO NOTHING",
                _key(score_set),
            )
            connection.unregister("new_scores")

    def record_run(self, dataset: str, score_set: ScoreSet, scored: int, seconds: float, code_path: str) -> None:
        """How long scoring took (so that ZIP-FIT's cost can be compared with the baselines') and on which code path
        (native or python) the scores were computed."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO scoring_runs (dataset, target_hash, compressor, level, engine_version, build, "
                "texts_scored, seconds, code_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [dataset, *_key(score_set), scored, seconds, code_path],
            )

    def seconds(self, datasets: Sequence[str], score_set: ScoreSet) -> float:
        """Seconds spent scoring these datasets in this set, over every run (reruns add little)."""
        rows = self.query(
            "SELECT coalesce(sum(seconds), 0) AS s FROM scoring_runs WHERE list_contains(?, dataset) "
            "AND target_hash = ? AND compressor = ? AND level = ? AND engine_version = ? AND build = ?",
            [list(datasets), *_key(score_set)],
        )
        return float(rows.to_pylist()[0]["s"])

    def scores_of(self, score_set: ScoreSet, hashes: pa.Array) -> pa.Array:
        """The score of each given text in this set, in the order given; null where it has none."""
        return (
            self.query(
                f"SELECT s.score FROM wanted w LEFT JOIN scores s ON {SCORE_OF_TEXT} ORDER BY w.position",
                _key(score_set),
                wanted=hashes,
            )
            .column("score")
            .combine_chunks()
        )

    def summary(
        self, score_set: ScoreSet, row_hashes: pa.Array, quantiles: Sequence[float], top_n: int
    ) -> dict[str, Any]:
        """Counts, quantiles, a digest of every (text, score) in the order given (a dataset's rows) and the hashes of
        the best texts, computed inside DuckDB."""
        summary = self.query(
            f"""SELECT count(*) AS documents, avg(s.score) AS mean, quantile_cont(s.score, ?) AS quantiles,
                md5(string_agg(w.content_hash || ':' || CAST(s.score AS VARCHAR), ',' ORDER BY w.position)) AS digest
                {SCORED_TEXTS}""",
            [list(quantiles), *_key(score_set)],
            wanted=row_hashes,
        ).to_pylist()[0]
        top = self.query(
            f"SELECT w.content_hash, s.score {SCORED_TEXTS} ORDER BY s.score DESC, w.position LIMIT ?",
            [*_key(score_set), top_n],
            wanted=row_hashes,
        )
        return {
            **summary,
            "top_hashes": top.column("content_hash").combine_chunks(),
            "top_scores": top.column("score").to_pylist(),
        }


def _key(score_set: ScoreSet) -> list[Any]:
    """The parameters of SCORE_OF_TEXT, in its order: a score is only valid for this engine version and build."""
    return [
        score_set.target_hash,
        score_set.compressor,
        score_set.level,
        ENGINE_VERSION,
        score_build(score_set.compressor, score_set.level),
    ]
