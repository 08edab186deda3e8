"""What the report reads: only current results, through each stage's own tables.

An eval counts when it measured the checkpoint the train stage records now, that checkpoint was trained on the
selection the select stage holds now with the project's training settings and model (by content), the eval measured
the target's test split as stored now with the project's eval settings, and its method, budget and seed are still
configured. Pass@k rows obey the same rule, with the sampling settings. A partially refreshed sweep therefore never
compares results made from different inputs: what is left out is listed with the reason and what to materialize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zipfit_pipeline.engine.core.runs import BASE, RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.evaluate import EvalTables
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.report.statistics import LengthProfile, PassAtKRow, RunResult, interval
from zipfit_pipeline.engine.select import SelectTables
from zipfit_pipeline.engine.train import TrainTables


@dataclass(frozen=True)
class CurrentInputs:
    """What a result must have been made from to be reported: the project's inputs now (digests that the stages
    record on their rows: `training_version` of the fine-tunes and of the base model, and each measuring stage's
    settings version)."""

    training_version: str
    base_version: str
    eval_version: str
    pass_at_k_version: str = ""


def load_results(
    store: Store,
    model: str,
    target: str,
    configured: Sequence[RunKey],
    inputs: CurrentInputs,
) -> tuple[RunResult, list[RunResult], list[str]]:
    """(the base model, the current runs of the configured keys, why any other eval or key is left out)."""
    trained = TrainTables(store).runs(model, target)
    selections = SelectTables(store).selection_sets(model, target)
    test_hash = IngestTables(store).split_hash(target, "test")
    found = {
        key: _lineage(row, trained.get(key), selections.get(key))
        for key, row in EvalTables(store).test_losses(model, target).items()
    }
    current, excluded = [], []
    for key in configured:
        reason = _not_current(found.get(key), key, inputs, test_hash, inputs.eval_version)
        if reason:
            excluded.append(f"{key.label()}: {reason}")
        else:
            current.append(key)
    unconfigured = len(set(found) - set(configured))
    if unconfigured:
        excluded.append(f"{unconfigured} evals of methods, budgets or seeds no longer configured")
    base_key = RunKey(model, target, BASE)
    if base_key not in current:
        why = _not_current(found.get(base_key), base_key, inputs, test_hash, inputs.eval_version)
        raise LookupError(f"no current eval of the base model {model} on {target} ({model}.base: {why})")
    curves = TrainTables(store).test_curves([found[k]["train_run"] for k in current])
    base_loss = found[base_key]["test_loss"]
    results = []
    for key in current:
        row = found[key]
        # Points measured during training count only when they measured the test split the final eval did.
        measured = curves.get(row["train_run"], []) if row["curve_test_hash"] == test_hash else []
        curve = {0: base_loss, **dict(measured), row["train_tokens"]: row["test_loss"]}
        alignment = (
            math.nan if row["mean_alignment"] is None else row["mean_alignment"]
        )  # the base model selects nothing
        results.append(
            RunResult(key, row["train_tokens"], row["test_loss"], alignment, sorted(curve.items()), bool(measured))
        )
    base = next(r for r in results if r.key == base_key)
    return base, sorted((r for r in results if r.key != base_key), key=lambda r: r.key), excluded


def _lineage(
    evaluated: dict[str, Any], trained: dict[str, Any] | None, selection: dict[str, Any] | None
) -> dict[str, Any]:
    """An eval row with the training run recorded now and the selection held now (None where there is none)."""
    return {
        "eval_run": evaluated["run_id"],
        "test_loss": evaluated.get("test_loss"),
        "measured_test": evaluated.get("test_hash"),
        "measured_with": evaluated.get("settings_version"),
        "train_run": trained["run_id"] if trained else None,
        "trained_with": trained.get("settings_version") if trained else None,
        "curve_test_hash": trained.get("curve_test_hash") if trained else None,
        "trained_on": trained["selection_version"] if trained else None,
        "train_tokens": trained["train_tokens"] if trained else None,
        "selection_now": selection["version"] if selection else None,
        "mean_alignment": selection["mean_alignment"] if selection else None,
    }


def _not_current(
    row: dict[str, Any] | None, key: RunKey, inputs: CurrentInputs, test_hash: str | None, measuring_version: str
) -> str:
    """Why a measurement (an eval, or a Pass@k row made with `measuring_version`) does not describe the current
    fine-tune of `key` measured on the current test split with the current settings ('' when it does)."""
    if row is None:
        return "not evaluated yet"
    if row["train_run"] is None:
        return "its training run is no longer recorded: materialize finetuned_model"
    if row["trained_with"] != (inputs.base_version if key.is_base else inputs.training_version):
        what = "model weights" if key.is_base else "training settings or model weights"
        return f"trained with other {what} than the project's now: materialize finetuned_model"
    if row["eval_run"] != row["train_run"]:
        return (
            f"its eval measured the checkpoint of run {row['eval_run'][:8]}, replaced since by run "
            f"{row['train_run'][:8]}: materialize eval_loss"
        )
    if row["trained_on"] is not None and row["trained_on"] != row["selection_now"]:
        return "trained on an earlier version of its selection: materialize finetuned_model"
    if row["measured_test"] != test_hash:
        return f"measured on another test split of {key.target} than the one stored now: materialize the evals"
    if row["measured_with"] != measuring_version:
        return "measured with other evaluation settings than the project's now: materialize the evals"
    return ""


def load_pass_at_k(
    store: Store, model: str, target: str, configured: Sequence[RunKey], inputs: CurrentInputs
) -> tuple[list[PassAtKRow], list[str]]:
    """pass@k per (method, budget, k) over seeds, from rows of configured runs that pass the test loss's rule with
    the sampling settings; and why the other rows of configured runs are left out."""
    trained = TrainTables(store).runs(model, target)
    selections = SelectTables(store).selection_sets(model, target)
    test_hash = IngestTables(store).split_hash(target, "test")
    wanted = set(configured)
    values: dict[tuple[str, int, int], list[float]] = {}
    excluded: dict[str, str] = {}
    rows = EvalTables(store).pass_at_k_rows(model, target)
    for row in sorted(rows, key=lambda r: (r["method"], r["budget"], r["k"], r["seed"])):
        key = RunKey(model, target, row["method"], row["budget"], row["seed"])
        if key not in wanted:
            continue
        lineage = _lineage(row, trained.get(key), selections.get(key))
        reason = _not_current(lineage, key, inputs, test_hash, inputs.pass_at_k_version)
        if reason:
            excluded[key.label()] = f"pass@k of {key.label()}: {reason.replace('the evals', 'pass_at_k')}"
        else:
            values.setdefault((row["method"], row["budget"], row["k"]), []).append(row["pass_at_k"])
    rows_out = [PassAtKRow(method, budget, k, interval(v)) for (method, budget, k), v in values.items()]
    return rows_out, list(excluded.values())


def _reported_seeds(runs: Sequence[RunResult]) -> dict[tuple[str, int], set[int]]:
    seeds: dict[tuple[str, int], set[int]] = {}
    for run in runs:
        seeds.setdefault((run.key.method, run.key.budget), set()).add(run.key.seed)
    return seeds


def load_composition(
    store: Store, model: str, target: str, runs: Sequence[RunResult]
) -> dict[tuple[str, int], dict[str, float]]:
    """Each source's share of the tokens of each reported (method, budget)'s selections, averaged over its seeds."""
    seeds = _reported_seeds(runs)
    shares: dict[tuple[str, int], dict[str, float]] = {}
    for row in SelectTables(store).token_shares(model, target):
        group = (row["method"], row["budget"])
        if row["seed"] in seeds.get(group, ()):
            found = shares.setdefault(group, {})
            found[row["dataset"]] = found.get(row["dataset"], 0.0) + float(row["share"]) / len(seeds[group])
    return shares


def load_lengths(
    store: Store, model: str, target: str, runs: Sequence[RunResult]
) -> dict[tuple[str, int], LengthProfile]:
    """How long the texts of each reported (method, budget)'s selections are, in tokens, averaged over its seeds."""
    seeds = _reported_seeds(runs)
    sums: dict[tuple[str, int], np.ndarray] = {}
    for row in SelectTables(store).length_profiles(model, target):
        group = (row["method"], row["budget"])
        if row["seed"] in seeds.get(group, ()):
            values = np.array([row[f] for f in ("texts", "median", "p10", "p90", "mean")], dtype=np.float64)
            sums[group] = sums.get(group, np.zeros(5)) + values / len(seeds[group])
    return {group: LengthProfile(*map(float, values)) for group, values in sums.items()}


def headline(store: Store) -> list[dict[str, Any]]:
    """(key, train tokens, test loss) of the base model and of every evaluated fine-tune (each seed), in key order:
    the short table `zipfit materialize` prints."""
    trained = TrainTables(store).runs()
    return [
        {"key": key, "train_tokens": trained[key]["train_tokens"], "test_loss": row["test_loss"]}
        for key, row in sorted(EvalTables(store).test_losses().items())
        if key in trained
    ]
