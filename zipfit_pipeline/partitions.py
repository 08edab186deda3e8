"""Partitions derived from the project file, kept coarse: datasets, tasks, models and selections.

A selection key is `<target>.<method>.<budget>`, or `<target>.base` for the model before fine-tuning,
so that training and evaluation partitions (model × selection) map back to their target's selections.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from zipfit_pipeline.config import ProjectConfig

BASE = "base"


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


def selection_keys(config: ProjectConfig, target: str) -> list[str]:
    keys = [str(SelectionKey(target, BASE))]
    keys += [str(SelectionKey(target, m, b)) for m in config.selection.methods for b in config.selection.budgets]
    return keys


@dataclass(frozen=True)
class ProjectPartitions:
    source: dg.StaticPartitionsDefinition
    target: dg.StaticPartitionsDefinition
    source_target: dg.MultiPartitionsDefinition
    model_target: dg.MultiPartitionsDefinition
    model_selection: dg.MultiPartitionsDefinition
    selections_by_target: dict[str, list[str]]


def project_partitions(config: ProjectConfig) -> ProjectPartitions:
    source = dg.StaticPartitionsDefinition([s.name for s in config.sources])
    target = dg.StaticPartitionsDefinition([t.name for t in config.targets])
    model = dg.StaticPartitionsDefinition([m.name for m in config.models])
    by_target = {t.name: selection_keys(config, t.name) for t in config.targets}
    selection = dg.StaticPartitionsDefinition([k for keys in by_target.values() for k in keys])
    return ProjectPartitions(
        source=source,
        target=target,
        source_target=dg.MultiPartitionsDefinition({"source": source, "target": target}),
        model_target=dg.MultiPartitionsDefinition({"model": model, "target": target}),
        model_selection=dg.MultiPartitionsDefinition({"model": model, "selection": selection}),
        selections_by_target=by_target,
    )


def same_target() -> dg.MultiPartitionMapping:
    """selections(model, target) read the scores of every source for their target."""
    return dg.MultiPartitionMapping({"target": dg.DimensionPartitionMapping("target", dg.IdentityPartitionMapping())})


def selection_of_target(partitions: ProjectPartitions) -> dg.MultiPartitionMapping:
    """finetuned_model(model, selection) reads selections(model, target of the selection)."""
    return dg.MultiPartitionMapping(
        {
            "model": dg.DimensionPartitionMapping("model", dg.IdentityPartitionMapping()),
            "target": dg.DimensionPartitionMapping(
                "selection", dg.StaticPartitionMapping({t: set(keys) for t, keys in partitions.selections_by_target.items()})
            ),
        }
    )
