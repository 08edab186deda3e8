"""Partitions derived from the project file, kept coarse: datasets, tasks, models and fine-tunes.

Source datasets are dynamic partitions (`sources`), so that a file dropped into the incoming folder becomes a
partition without a code change; `register_sources` keeps them equal to the project's sources. Training and
evaluation are partitioned by finetune × target, a finetune being `<model>.<method>.<budget>.s<seed>`,
`<model>.all.s<seed>`, or `<model>.base` (the model before fine-tuning, which reads no selection). Partition
keys become the engine's `RunKey` here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.core.runs import BASE, RunKey
from zipfit_pipeline.orchestration.dagster_beta import known_beta_apis

SOURCES = "sources"


def model_and_target(partition_key: dg.MultiPartitionKey) -> tuple[str, str]:
    """(model, target) of a model × target partition."""
    keys = partition_key.keys_by_dimension
    return keys["model"], keys["target"]


def partition_dimensions(partition_key: str) -> dict[str, str]:
    """A partition's keys by dimension; a one-dimensional partition (a source or a target) under both names, since
    only the asset knows which it is and each reads its own."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        return dict(partition_key.keys_by_dimension)
    return {"source": partition_key, "target": partition_key}


def finetune_partition(key: RunKey) -> str:
    """The `finetune` dimension's key of a run: `smollm2-135m.zipfit.2000.s0`, `smollm2-135m.base`."""
    return f"{key.model}.{key.label()}"


def finetune_target_key(key: RunKey) -> dg.MultiPartitionKey:
    """The finetune × target partition of a run (what `run_key` reads back)."""
    return dg.MultiPartitionKey({"finetune": finetune_partition(key), "target": key.target})


def run_key(partition_key: dg.MultiPartitionKey) -> RunKey:
    """The run of a finetune × target partition (the inverse of `finetune_partition`)."""
    keys = partition_key.keys_by_dimension
    model, method, *rest = keys["finetune"].split(".")
    if method == BASE:
        return RunKey(model, keys["target"], BASE)
    *budget, seed = rest
    return RunKey(model, keys["target"], method, int(budget[0]) if budget else 0, int(seed.removeprefix("s")))


def configured_runs(config: ProjectConfig, model: str, target: str, with_base: bool = True) -> list[RunKey]:
    """Every fine-tune the project asks for: each selection once per seed, and the base model."""
    selection = config.selection
    trained = [
        RunKey(model, target, method, budget, seed)
        for method, budget in selection.selections(config.scoring)
        for seed in config.training.seeds
    ]
    return [RunKey(model, target, BASE), *trained] if with_base else trained


def finetune_keys(config: ProjectConfig, model: str, with_base: bool) -> list[str]:
    """The `finetune` dimension's keys of a model (the same for every target)."""
    return [finetune_partition(key) for key in configured_runs(config, model, config.targets[0].name, with_base)]


@dataclass(frozen=True)
class ProjectPartitions:
    source: dg.DynamicPartitionsDefinition
    target: dg.StaticPartitionsDefinition
    source_target: dg.MultiPartitionsDefinition
    model_target: dg.MultiPartitionsDefinition
    finetune_target: dg.MultiPartitionsDefinition
    trained_by_model: dict[str, list[str]]


def project_partitions(config: ProjectConfig) -> ProjectPartitions:
    source = dg.DynamicPartitionsDefinition(name=SOURCES)
    target = dg.StaticPartitionsDefinition([t.name for t in config.targets])
    model = dg.StaticPartitionsDefinition([m.name for m in config.models])
    finetune = dg.StaticPartitionsDefinition(
        [k for m in config.models for k in finetune_keys(config, m.name, with_base=True)]
    )
    return ProjectPartitions(
        source=source,
        target=target,
        source_target=dg.MultiPartitionsDefinition({"source": source, "target": target}),
        model_target=dg.MultiPartitionsDefinition({"model": model, "target": target}),
        finetune_target=dg.MultiPartitionsDefinition({"finetune": finetune, "target": target}),
        trained_by_model={m.name: finetune_keys(config, m.name, with_base=False) for m in config.models},
    )


def register_sources(instance: dg.DagsterInstance, config: ProjectConfig) -> tuple[list[str], list[str]]:
    """Make the `sources` partitions equal to the project's sources; returns (added, removed).

    A file dropped into the incoming folder is added once it has been still for `incoming.stable_seconds`."""
    specs = config.all_sources()
    wanted = [s.name for s in specs]
    existing = set(instance.get_dynamic_partitions(SOURCES))
    added = [s.name for s in specs if s.name not in existing and config.is_still(s)]
    removed = sorted(existing - set(wanted))
    if added:
        instance.add_dynamic_partitions(SOURCES, added)
    for name in removed:
        instance.delete_dynamic_partition(SOURCES, name)
    return added, removed


def same_target() -> dg.MultiPartitionMapping:
    """selections(model, target) read the scores of every source for their target."""
    with known_beta_apis():
        return dg.MultiPartitionMapping(
            {"target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping())}
        )


def selection_of_finetune(partitions: ProjectPartitions) -> dg.MultiPartitionMapping:
    """finetuned_model(finetune, target) reads selections(model of the finetune, target); `base` reads none."""
    with known_beta_apis():
        return dg.MultiPartitionMapping(
            {
                "model": dg.DimensionPartitionMapping(
                    "finetune",
                    dg.StaticPartitionMapping({m: set(keys) for m, keys in partitions.trained_by_model.items()}),
                ),
                "target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping()),
            }
        )


def finetunes_of_model(partitions: ProjectPartitions) -> dg.MultiPartitionMapping:
    """comparison_report(model, target) reads eval_loss of every finetune of that model (base included) on it."""
    with known_beta_apis():
        return dg.MultiPartitionMapping(
            {
                "finetune": dg.DimensionPartitionMapping(
                    "model",
                    dg.StaticPartitionMapping(
                        {f: m for m, keys in partitions.trained_by_model.items() for f in [f"{m}.{BASE}", *keys]}
                    ),
                ),
                "target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping()),
            }
        )
