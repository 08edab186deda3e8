"""What each asset reads, declared once; its code version, the inputs it records and the staleness of its partitions
all derive from this declaration.

- `READS`: the project settings that change an asset's output (fields of its own stage's section, and any field of
  another section it depends on, named here). A read is a field (`scoring.level`) or a whole section (`selection`),
  less the fields that change no result. The code version is the engine version plus their digest; the evaluate
  stages record that version on every row they write, and the report reads only rows with the current one.
- `INPUTS`: what a partition reads from outside the project file and the upstream assets, by content: its own
  settings entry (a source's or target's), its input file, the model's weights and tokenizer files, the embedder,
  the target's test split as stored, the compressor build and code path, the sandbox's interpreter. Each
  materialization records them (`declared_inputs`); a partition whose inputs differ now is out of date
  (`store_state.changed_inputs`), per partition, so changing one source's path re-ingests that source only.

Upstream data arrives through Dagster's data versions (the asset graph's edges); nothing is declared twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine import ENGINE_VERSION
from zipfit_pipeline.engine.core.artifacts import artifact_identity
from zipfit_pipeline.engine.core.hashing import digest
from zipfit_pipeline.engine.core.runs import WHOLE_POOL
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.evaluate import sandbox_interpreter
from zipfit_pipeline.engine.ingest import DatasetSpec, IngestTables
from zipfit_pipeline.engine.report import CurrentInputs
from zipfit_pipeline.engine.score import score_build
from zipfit_pipeline.engine.select import EMBEDDING_METHODS, embedder_identity
from zipfit_pipeline.engine.train import TrainingSettings, training_version
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    COMPARISON_REPORT,
    EVAL_LOSS,
    FINETUNED_MODEL,
    PASS_AT_K,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)


@dataclass(frozen=True)
class Read:
    path: str  # `scoring.level` (one field) or `training` (a whole section)
    exclude: frozenset[str] = frozenset()  # fields of a whole section that change no result


READS: dict[str, tuple[Read, ...]] = {
    SOURCE_DOCUMENTS: (),
    TARGET_DOCUMENTS: (),
    # The target-set ablation's subsets are score sets: the score stage computes them.
    ALIGNMENT_SCORES: (
        Read("scoring.compressor"),
        Read("scoring.level"),
        Read("scoring.variants"),
        Read("selection.target_subsets"),
        Read("selection.target_subset_seed"),
    ),
    # Selections rank by the score sets, and draw the random baselines once per training seed.
    SELECTIONS: (
        Read("selection"),
        Read("scoring.compressor"),
        Read("scoring.level"),
        Read("scoring.variants"),
        Read("training.seeds"),
    ),
    # Each partition trains with its own seed: adding a seed adds partitions, it does not retrain the others.
    FINETUNED_MODEL: (Read("training", TrainingSettings.NOT_IN_RESULT),),
    EVAL_LOSS: (Read("training.eval_max_length"),),
    PASS_AT_K: (Read("pass_at_k", frozenset({"enabled"})),),
    # The report lists the configured runs (methods, budgets, thresholds, ablations, seeds) and what it shows of the
    # selection settings; what a run was made from reaches it through the evals' data versions and row provenance.
    COMPARISON_REPORT: (
        Read("selection.methods"),
        Read("selection.budgets"),
        Read("selection.thresholds"),
        Read("selection.all_max_tokens"),
        Read("selection.target_subsets"),
        Read("selection.decontamination.ngram_words"),
        Read("selection.decontamination.code_tokens"),
        Read("scoring.variants"),
        Read("training.seeds"),
    ),
}


def code_version(asset: str, config: ProjectConfig) -> str:
    """Engine version plus a short digest of the settings `asset` declares it reads, stable across processes."""
    return f"{ENGINE_VERSION}-{digest(ENGINE_VERSION, asset, *(_value(config, read) for read in READS[asset]))[:12]}"


# Inputs of one partition, by name: (project, the partition's keys by dimension, the store) -> {input: digest}.
Inputs = Callable[[ProjectConfig, dict[str, str], Store], dict[str, str]]


def _local_file(config: ProjectConfig, spec: DatasetSpec) -> str:
    return artifact_identity(config.input_path(spec))


def _source(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    """A source's entry in the project file and its file by content (a dropped file is the incoming sensor's)."""
    spec = config.source(keys["source"])
    incoming = spec.name in {s.name for s in config.incoming_sources()}
    return {"source settings": digest(spec.model_dump()), **({} if incoming else {"file": _local_file(config, spec)})}


def _target(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    spec = config.target(keys["target"])
    return {"target settings": digest(spec.model_dump()), "file": _local_file(config, spec)}


def _compressors(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    """The builds and code paths (native or pure Python) that compute the score sets' sizes."""
    sets = {(config.scoring.compressor, config.scoring.level), *config.scoring.variant_pairs()}
    return {"compressors": ", ".join(sorted(f"{c}-{level} {score_build(c, level)}" for c, level in sets))}


def _test_split(store: Store, target: str) -> str:
    return IngestTables(store).split_hash(target, "test") or "not ingested"


def _selection(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    """Budgets count with the model's tokenizer; decontamination reads the test split; D4 and embedding similarity
    rank by the embedder's vectors."""
    embeds = any(m in EMBEDDING_METHODS for m in config.selection.methods)
    return {
        "tokenizer": artifact_identity(config.model_path(config.model(keys["model"])), "tokenizer"),
        "test split": _test_split(store, keys["target"]),
        **({"embedder": embedder_identity(config.selection_settings().embedding)} if embeds else {}),
    }


def _model(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    """A fine-tune (and the base model's record) reads the pretrained model's weights and tokenizer files; `all`
    trains up to its cap, which may change while its selection (the seeded order's prefix) does not."""
    model, method = keys["finetune"].split(".")[:2]
    cap = {"all_max_tokens": str(config.selection.all_max_tokens)} if method == WHOLE_POOL else {}
    return {"model": artifact_identity(config.model_path(config.model(model))), **cap}


def _measured(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    """Evals measure on the target's test split (the model reaches them through the fine-tune's data version)."""
    return {"test split": _test_split(store, keys["target"])}


def _sampled(config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    return {**_measured(config, keys, store), "sandbox interpreter": sandbox_interpreter()}


INPUTS: dict[str, Inputs] = {
    SOURCE_DOCUMENTS: _source,
    TARGET_DOCUMENTS: _target,
    ALIGNMENT_SCORES: _compressors,
    SELECTIONS: _selection,
    FINETUNED_MODEL: _model,
    EVAL_LOSS: _measured,
    PASS_AT_K: _sampled,
    COMPARISON_REPORT: lambda config, keys, store: {},
}


def declared_inputs(asset: str, config: ProjectConfig, keys: dict[str, str], store: Store) -> dict[str, str]:
    """The inputs `asset`'s partition with `keys` (by dimension) reads now, by content."""
    return INPUTS[asset](config, keys, store)


def current_inputs(config: ProjectConfig, model: str) -> CurrentInputs:
    """What a reported result of `model` must have been made from: the versions the stages record on their rows,
    computed from the same declarations."""
    pretrained = config.model_path(config.model(model))
    return CurrentInputs(
        training_version=training_version(config.training, pretrained),
        base_version=training_version(config.training, pretrained, base=True),
        eval_version=code_version(EVAL_LOSS, config),
        pass_at_k_version=code_version(PASS_AT_K, config),
    )


def _value(config: ProjectConfig, read: Read) -> Any:
    value: Any = config
    for name in read.path.split("."):
        value = getattr(value, name)
    return value.model_dump(exclude=set(read.exclude)) if isinstance(value, BaseModel) else value
