"""Partitions derived from the project file, kept coarse: datasets, tasks, models and selections.

Source datasets are dynamic partitions (`sources`), so that a file dropped into the incoming folder becomes a
partition without a code change; `register_sources` keeps them equal to the project's sources. A selection
key is `<target>.<method>.<budget>`, or `<target>.base` for the model before fine-tuning, so that training
and evaluation partitions (model × selection) map back to their target.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from zipfit_pipeline.config import ProjectConfig

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


def model_and_selection(partition_key: dg.MultiPartitionKey) -> tuple[str, str, SelectionKey]:
    """(model, selection key, parsed selection) of a model × selection partition."""
    selection = partition_key.keys_by_dimension["selection"]
    return partition_key.keys_by_dimension["model"], selection, SelectionKey.parse(selection)


def trained_selection_keys(config: ProjectConfig, target: str) -> list[str]:
    return [str(SelectionKey(target, m, b)) for m in config.selection.methods for b in config.selection.budgets]


@dataclass(frozen=True)
class ProjectPartitions:
    source: dg.DynamicPartitionsDefinition
    target: dg.StaticPartitionsDefinition
    source_target: dg.MultiPartitionsDefinition
    model_target: dg.MultiPartitionsDefinition
    model_selection: dg.MultiPartitionsDefinition
    trained_by_target: dict[str, list[str]]
    models: list[str]


def project_partitions(config: ProjectConfig) -> ProjectPartitions:
    source = dg.DynamicPartitionsDefinition(name=SOURCES)
    target = dg.StaticPartitionsDefinition([t.name for t in config.targets])
    model = dg.StaticPartitionsDefinition([m.name for m in config.models])
    trained = {t.name: trained_selection_keys(config, t.name) for t in config.targets}
    selection = dg.StaticPartitionsDefinition([k for t, keys in trained.items() for k in [f"{t}.{BASE}", *keys]])
    return ProjectPartitions(
        source=source,
        target=target,
        source_target=dg.MultiPartitionsDefinition({"source": source, "target": target}),
        model_target=dg.MultiPartitionsDefinition({"model": model, "target": target}),
        model_selection=dg.MultiPartitionsDefinition({"model": model, "selection": selection}),
        trained_by_target=trained,
        models=[m.name for m in config.models],
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


def selection_of_target(partitions: ProjectPartitions) -> dg.MultiPartitionMapping:
    """finetuned_model(model, selection) reads selections(model, target of the selection); `base` reads none."""
    return dg.MultiPartitionMapping(
        {
            "model": dg.DimensionPartitionMapping("model", dg.IdentityPartitionMapping()),
            "target": dg.DimensionPartitionMapping(
                "selection", dg.StaticPartitionMapping({t: set(keys) for t, keys in partitions.trained_by_target.items()})
            ),
        }
    )


def target_of_selection(partitions: ProjectPartitions) -> dg.StaticPartitionMapping:
    """finetuned_model(model, selection), `base` included, reads its target's test split (target_documents)."""
    return dg.StaticPartitionMapping(
        {
            target: {str(dg.MultiPartitionKey({"model": m, "selection": s})) for m in partitions.models for s in [f"{target}.{BASE}", *keys]}
            for target, keys in partitions.trained_by_target.items()
        }
    )
