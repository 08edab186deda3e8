"""`zipfit prepare-demo | materialize | register-sources | size-pools | recover | take-over`: the pipeline's runs,
its Dagster instance and what the project owns, from the project file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # opened only by `materialize`
    from zipfit_pipeline.engine.core.store import Store


def cmd_prepare_demo(args: argparse.Namespace) -> int:
    from zipfit_pipeline.demo.inputs import build_demo_data
    from zipfit_pipeline.demo.models import prepare_smollm2
    from zipfit_pipeline.orchestration.instance import prepare_dagster_home

    root = Path(args.root)
    files = build_demo_data(root / "data" / "demo")
    print("demo inputs:", ", ".join(str(f) for f in files.values()))
    print("demo model:", prepare_smollm2(root / "data" / "models" / "smollm2-135m"))
    # Before anything opens it (`dg check defs`, `dg dev`): Dagster warns about a home without a dagster.yaml.
    print("dagster instance:", prepare_dagster_home(root / "zipfit.yaml"))
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.engine.core.store import Store
    from zipfit_pipeline.orchestration.definitions import build_definitions
    from zipfit_pipeline.orchestration.instance import project_instance
    from zipfit_pipeline.orchestration.materialize_all import materialize_all

    config_file = str(Path(args.config).resolve())
    config = load_project(config_file)  # read once, for the definitions and the run alike
    defs = build_definitions(config_file, config)
    with project_instance(Path(config_file)) as instance:
        done = materialize_all(defs, instance, only_out_of_date=args.stale, project=config)
    if args.stale and not done:
        print("everything is up to date")
    store = Store(config.resolve(config.store))
    print(f"\nresults: {store.path} (DuckDB); checkpoints under {config.resolve(config.artifacts)}")
    print(headline(store))
    for report in sorted((config.resolve(config.artifacts) / "reports").glob("*/*/report.md")):
        print(f"\ncomparison report: {report} (and its plots beside it)")
        print(report.read_text(encoding="utf-8").split("\n\n![")[0])
    return 0


def cmd_register_sources(args: argparse.Namespace) -> int:
    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.orchestration.instance import project_instance
    from zipfit_pipeline.orchestration.partitions import SOURCES, register_sources

    with project_instance(Path(args.config)) as instance:
        added, removed = register_sources(instance, load_project(args.config))
        print(f"source partitions: {', '.join(instance.get_dynamic_partitions(SOURCES)) or 'none'}")
    print(f"added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}")
    return 0


def cmd_size_pools(args: argparse.Namespace) -> int:
    from zipfit_pipeline.orchestration.accelerators import ACCELERATOR_POOL, size_accelerator_pool
    from zipfit_pipeline.orchestration.instance import project_instance

    with project_instance(Path(args.config)) as instance:
        print(f"pool {ACCELERATOR_POOL}: {size_accelerator_pool(instance)} slot(s), one per visible GPU")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from zipfit_pipeline.orchestration.instance import project_instance
    from zipfit_pipeline.orchestration.recovery import recover_killed_runs

    with project_instance(Path(args.config)) as instance:
        print("\n".join(recover_killed_runs(instance)) or "no killed runs")
    return 0


def headline(store: Store) -> str:
    """Test cross-entropy of the base model and of every fine-tune (each seed), as a table."""
    from zipfit_pipeline.engine.report import headline as evaluated_runs

    lines = [f"{'model':<16} {'target':<12} {'run':<24} {'train tokens':>12} {'test CE':>8}"]
    lines += [
        f"{key.model:<16} {key.target:<12} {key.label():<24} {r['train_tokens']:>12} {r['test_loss']:>8.4f}"
        for r in evaluated_runs(store)
        for key in [r["key"]]
    ]
    return "\n".join(lines)


def cmd_take_over(args: argparse.Namespace) -> int:
    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.ownership import check_ownership

    config = load_project(args.config, check_owner=False)
    file = Path(args.config).resolve()  # as `load_project` resolves it: the owner recorded
    changed = check_ownership(file, config.resolve(config.store), config.resolve(config.artifacts), take_over=True)
    print("\n".join(changed) or f"{file} already owns its store and artifacts folder")
    return 0
