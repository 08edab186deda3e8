"""Partitions derived from the project file, kept coarse: datasets, tasks, models and selections.

Source datasets are dynamic partitions (`sources`), so that a file dropped into the incoming folder becomes a
partition without a code change; `register_sources` keeps them equal to the project's sources. Training and
evaluation are partitioned by finetune × target, a finetune being `<model>.<method>.<budget>` or
`<model>.base` (the model before fine-tuning, which reads no selection). In the store, a run is keyed by
model and selection key `<target>.<method>.<budget>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.selection import THRESHOLD, method_budgets, threshold_key

BASE = "base"
SOURCES = "sources"


@dataclass(frozen=True)
class SelectionKey:
    target: str
    method: str
    budget: int | None = None

    def __str__(self) -> str:
        return f"{self.target}.{self.method}" if self.budget is None else f"{self.target}.{self.method}.{self.budget}"

    @classmethod
    def parse(cls, key: str) -> SelectionKey:
        parts = key.split(".")
        return cls(parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None)


def model_and_target(partition_key: dg.MultiPartitionKey) -> tuple[str, str]:
    """(model, target) of a model × target partition."""
    keys = partition_key.keys_by_dimension
    return keys["model"], keys["target"]


def model_and_selection(partition_key: dg.MultiPartitionKey) -> tuple[str, str, SelectionKey]:
    """(model, selection key, parsed selection) of a finetune × target partition."""
    keys = partition_key.keys_by_dimension
    model, method, *budget = keys["finetune"].split(".")
    selection = SelectionKey(keys["target"], method, int(budget[0]) if budget else None)
    return model, str(selection), selection


def finetune_keys(config: ProjectConfig, model: str, with_base: bool) -> list[str]:
    """The `finetune` dimension: `<model>.<method>.<budget>` per selection, and `<model>.base` for the model as it is."""
    selection = config.selection
    picks = [(m, b) for m in selection.methods for b in method_budgets(m, selection.budgets)]
    picks += [(THRESHOLD, threshold_key(t)) for t in selection.thresholds]
    trained = [f"{model}.{method}.{budget}" for method, budget in picks]
    return [f"{model}.{BASE}", *trained] if with_base else trained


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
    finetune = dg.StaticPartitionsDefinition([k for m in config.models for k in finetune_keys(config, m.name, with_base=True)])
    return ProjectPartitions(
        source=source,
        target=target,
        source_target=dg.MultiPartitionsDefinition({"source": source, "target": target}),
        model_target=dg.MultiPartitionsDefinition({"model": model, "target": target}),
        finetune_target=dg.MultiPartitionsDefinition({"finetune": finetune, "target": target}),
        trained_by_model={m.name: finetune_keys(config, m.name, with_base=False) for m in config.models},
    )


def register_sources(instance: dg.DagsterInstance, config: ProjectConfig) -> tuple[list[str], list[str]]:
    """Make the `sources` partitions equal to the project's sources; returns (added, removed)."""
    wanted = [s.name for s in config.all_sources()]
    existing = set(instance.get_dynamic_partitions(SOURCES))
    added = [name for name in wanted if name not in existing]
    removed = sorted(existing - set(wanted))
    if added:
        instance.add_dynamic_partitions(SOURCES, added)
    for name in removed:
        instance.delete_dynamic_partition(SOURCES, name)
    return added, removed


def same_target() -> dg.MultiPartitionMapping:
    """selections(model, target) read the scores of every source for their target."""
    return dg.MultiPartitionMapping({"target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping())})


def selection_of_finetune(partitions: ProjectPartitions) -> dg.MultiPartitionMapping:
    """finetuned_model(finetune, target) reads selections(model of the finetune, target); `base` reads none."""
    return dg.MultiPartitionMapping(
        {
            "model": dg.DimensionPartitionMapping(
                "finetune", dg.StaticPartitionMapping({m: set(keys) for m, keys in partitions.trained_by_model.items()})
            ),
            "target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping()),
        }
    )


def target_of_finetune() -> dg.MultiToSingleDimensionPartitionMapping:
    """finetuned_model(finetune, target), `base` included, reads its target's test split."""
    return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="target")


def finetunes_of_model(partitions: ProjectPartitions) -> dg.MultiPartitionMapping:
    """comparison_report(model, target) reads eval_loss of every finetune of that model (base included) on it."""
    return dg.MultiPartitionMapping(
        {
            "finetune": dg.DimensionPartitionMapping(
                "model", dg.StaticPartitionMapping({f: m for m, keys in partitions.trained_by_model.items() for f in [f"{m}.{BASE}", *keys]})
            ),
            "target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping()),
        }
    )
