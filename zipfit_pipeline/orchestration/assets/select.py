"""Select stage: rank the decontaminated pool of all sources per model and target, keep each method's selections.

Budgets are counted with each model's own tokenizer, so selections are partitioned by model × target. The work
is the engine's `select_for_model`; this asset turns its result into metadata and checks that fine-tunes wait on.
"""

import dagster as dg

from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.core.models import load_tokenizer
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.select import (
    EMBEDDING_METHODS,
    SelectionResult,
    SelectionSet,
    contaminated_selections,
    dsir_metadata,
    model_name,
    select_for_model,
)
from zipfit_pipeline.orchestration.asset_keys import ALIGNMENT_SCORES, SELECTIONS
from zipfit_pipeline.orchestration.assets.checks import partition_check
from zipfit_pipeline.orchestration.assets.score import top_table
from zipfit_pipeline.orchestration.assets.versions import code_version
from zipfit_pipeline.orchestration.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.orchestration.partitions import ProjectPartitions, model_and_target, same_target
from zipfit_pipeline.orchestration.resources import StoreResource
from zipfit_pipeline.orchestration.store_state import record_partition_run

GROUP = "select"
DECONTAMINATED = "decontaminated"
BUDGETS_REACHED = "budgets_reached"


def contaminated_table(result: SelectionResult, limit: int = 20) -> str:
    """Markdown: the pool texts that share a run with a test text, the rule that found it, and where ZIP-FIT ranked
    them."""
    lines = [
        "| ZIP-FIT rank before removal | dataset | id | test row | rule | shared run |",
        "|---:|---|---|---:|---|---|",
    ]
    lines += [
        f"| {r.zipfit_rank} | {r.dataset} | {r.doc_id} | {r.test_row} | {r.rule} | `{r.ngram}` |"
        for r in result.contaminated[:limit]
    ]
    return "\n".join(lines) if result.contaminated else "none"


def summary_table(result: SelectionResult) -> str:
    """Markdown: documents, tokens, mean alignment and datasets of each selection; seeds that chose the same texts
    share a row."""
    lines = [
        "| method | budget | seeds | documents | tokens | mean score | datasets |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    same_texts: dict[tuple[str, int, str], list[SelectionSet]] = {}
    for s in result.sets:
        same_texts.setdefault((s.method, s.budget, s.version), []).append(s)
    for sets in same_texts.values():
        s, seeds = sets[0], ", ".join(str(each.seed) for each in sets)
        mix = ", ".join(f"{d} {n}" for d, n in s.datasets.items())
        lines.append(
            f"| {s.method} | {s.budget} | {seeds} | {s.documents} | {s.tokens} | {s.mean_alignment:.4f} | {mix} |"
        )
    return "\n".join(lines)


def build_selection_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    settings = config.selection
    decontamination = settings.decontamination

    @dg.asset(
        name=SELECTIONS,
        partitions_def=partitions.model_target,
        deps=[dg.AssetDep(ALIGNMENT_SCORES, partition_mapping=same_target())],
        group_name=GROUP,
        code_version=code_version(SELECTIONS, config),
        kinds={"duckdb"},
        pool="duckdb_writer",
        automation_condition=ON_NEW_DATA_OR_CODE,
        check_specs=[
            partition_check(
                DECONTAMINATED,
                SELECTIONS,
                partitions.model_target,
                blocking=True,
                description=(
                    f"No selected text shares {decontamination.describe()} with the target's held-out "
                    "test split (fine-tunes do not start otherwise; a warning only where decontamination "
                    "is turned off)."
                ),
            ),
            partition_check(
                BUDGETS_REACHED,
                SELECTIONS,
                partitions.model_target,
                blocking=True,
                description=(
                    "Every budgeted selection holds its budget's tokens, so every method trains on the same number."
                ),
            ),
        ],
        description="Ranked selections per method (ZIP-FIT and its compressor and target-set ablations, DSIR, D4, "
        "embedding similarity, BM25, seeded random, all), token budget and seed, from the pool of all sources "
        "without the texts that overlap the target's test split; tokens counted with the model's tokenizer.",
    )
    def selections(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        model, target = model_and_target(context.partition_key)
        db = store.open()
        tokenizer = load_tokenizer(config.model_path(config.model(model)))
        sources = [s.name for s in config.all_sources()]
        result = select_for_model(
            db,
            model,
            tokenizer,
            target,
            sources,
            config.scoring,
            config.selection_settings(),
            config.training.seeds,
            log=context.log.info,
            compute=config.compute,
        )
        return dg.MaterializeResult(
            metadata={
                "pool_documents": result.pool_documents,
                "pool_tokens": result.pool_tokens,
                "selection_seconds": result.seconds,
                **({"dsir_settings": dsir_metadata(settings.dsir)} if "dsir" in settings.methods else {}),
                **{
                    f"{name}_settings": getattr(settings, name).model_dump()
                    for name in ("d4", "bm25")
                    if name in settings.methods
                },
                **(
                    {"embedding_settings": {**settings.embedding.model_dump(), "model": model_name(settings.embedding)}}
                    if any(m in EMBEDDING_METHODS for m in settings.methods)
                    else {}
                ),
                "decontamination": {
                    **decontamination.model_dump(),
                    "contaminated": len(result.contaminated),
                    "removed": len(result.contaminated) if result.removed else 0,
                },
                "contaminated_texts": dg.MetadataValue.md(contaminated_table(result)),
                "selections": dg.MetadataValue.md(summary_table(result)),
                "top_selected": dg.MetadataValue.md(top_table([t for t, _ in result.top], [s for _, s in result.top])),
                **record_partition_run(context, db, config),
            },
            data_version=dg.DataVersion(result.digest),
            check_results=[_decontaminated(db, model, target), _budgets_reached(result)],
        )

    def _decontaminated(db: Store, model: str, target: str) -> dg.AssetCheckResult:
        found = contaminated_selections(db, model, target, decontamination)
        examples = [
            {"content_hash": h, "test_row": o.test_row, "rule": o.rule, "shared_run": o.ngram, "selections": labels[:5]}
            for h, (o, labels) in list(found.items())[:10]
        ]
        return dg.AssetCheckResult(
            check_name=DECONTAMINATED,
            passed=not found,
            severity=dg.AssetCheckSeverity.ERROR if decontamination.enabled else dg.AssetCheckSeverity.WARN,
            metadata={"contaminated_texts": len(found), "examples": dg.MetadataValue.json(examples)},
            description=None
            if not found
            else f"{len(found)} selected texts share {decontamination.describe()} with "
            f"a test text of {target}" + ("" if decontamination.enabled else " (decontamination is turned off)"),
        )

    def _budgets_reached(result: SelectionResult) -> dg.AssetCheckResult:
        short = [f"{s.method}.{s.budget} (seed {s.seed}): {s.tokens} tokens" for s in result.short_of_budget()]
        return dg.AssetCheckResult(
            check_name=BUDGETS_REACHED,
            passed=not short,
            metadata={"short": dg.MetadataValue.json(short)},
            description=None
            if not short
            else f"the pool ({result.pool_tokens} tokens) is too small for: {', '.join(short[:5])}",
        )

    return [selections]
