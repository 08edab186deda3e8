"""Select stage: rank the pool of all sources per target and keep the top within each token budget.

Budgets are counted with each model's own tokenizer, so selections are partitioned by model × target.
ZIP-FIT, DSIR, the seeded random baseline and `all` walk through the same pool (duplicates removed, first
kept); `all` takes the pool in order up to the largest budget.
"""


import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zipfit_pipeline.assets._versions import code_version, data_version
from zipfit_pipeline.assets.scoring import top_table
from zipfit_pipeline.automation import ON_NEW_DATA_OR_CODE
from zipfit_pipeline.config import ProjectConfig
from zipfit_pipeline.engine.dsir import dsir_weights
from zipfit_pipeline.engine.models import count_tokens, load_tokenizer
from zipfit_pipeline.engine.scoring import target_set_hash
from zipfit_pipeline.engine.selection import THRESHOLD, select_by_budget, select_by_threshold
from zipfit_pipeline.partitions import ProjectPartitions, model_and_target, same_target
from zipfit_pipeline.resources import ProjectResource, StoreResource

GROUP = "select"


def build_selection_assets(config: ProjectConfig, partitions: ProjectPartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.model_target,
        deps=[dg.AssetDep("alignment_scores", partition_mapping=same_target())],
        group_name=GROUP,
        code_version=code_version("selections", config.selection.model_dump(), config.scoring.compressor, config.scoring.level),
        kinds={"duckdb"},
        pool="duckdb_writer",
        automation_condition=ON_NEW_DATA_OR_CODE,
        description="Ranked selections per method (ZIP-FIT, DSIR, seeded random, all) and token budget, with each "
        "document's tokens and the cumulative tokens, counted with the model's tokenizer.",
    )
    def selections(context: dg.AssetExecutionContext, project: ProjectResource, store: StoreResource) -> dg.MaterializeResult:
        model_name, target = model_and_target(context.partition_key)
        config = project.load()
        db = store.open()
        targets = db.target_texts(target, "alignment")
        target_hash = target_set_hash(targets)
        sources = [s.name for s in config.all_sources()]
        pool = db.dataset_scores(sources, target_hash, config.scoring.compressor, config.scoring.level)
        missing = pool.filter(pc.is_null(pool.column("score")))
        if missing.num_rows:
            datasets = sorted(set(missing.column("dataset").to_pylist()))
            raise RuntimeError(f"{missing.num_rows} documents of {datasets} have no score for {target}: materialize alignment_scores first")
        pool = _first_of_each_text(pool)
        scores = np.asarray(pool.column("score").to_pylist(), dtype=np.float64)
        tokenizer = load_tokenizer(config.model_path(config.model(model_name)))
        texts = pool.column("text").to_pylist()
        tokens = np.asarray(count_tokens(tokenizer, texts), dtype=np.int64)
        rows, seconds = [], {}
        for method in config.selection.methods:
            started = time.perf_counter()
            method_scores = dsir_weights(texts, targets, config.selection.dsir.settings()) if method == "dsir" else scores
            rows += select_by_budget(method, method_scores, tokens, config.selection.budgets, config.selection.seed)
            seconds[method] = round(time.perf_counter() - started, 3)
            context.log.info(f"{method}: ranked {len(texts)} documents in {seconds[method]:.2f}s")
        if config.selection.thresholds:
            started = time.perf_counter()
            rows += select_by_threshold(scores, tokens, config.selection.thresholds)
            seconds[THRESHOLD] = round(time.perf_counter() - started, 3)
        index = np.asarray([r["pool_index"] for r in rows], dtype=np.int64)
        table = pa.table(
            {
                "method": [r["method"] for r in rows],
                "budget": pa.array([r["budget"] for r in rows], pa.int64()),
                "rank": pa.array([r["rank"] for r in rows], pa.int64()),
                "dataset": pool.column("dataset").take(index),
                "row_index": pool.column("row_index").take(index),
                "content_hash": pool.column("content_hash").take(index),
                "score": pa.array(scores[index], pa.float64()),
                "tokens": pa.array([r["tokens"] for r in rows], pa.int64()),
                "cumulative_tokens": pa.array([r["cumulative_tokens"] for r in rows], pa.int64()),
            }
        )
        db.replace_selections(model_name, target, table, seconds)
        summary = _summary(table)
        best = [r["pool_index"] for r in rows if r["method"] == "zipfit" and r["budget"] == config.selection.budgets[-1]]
        return dg.MaterializeResult(
            metadata={
                "pool_documents": pool.num_rows,
                "pool_tokens": int(tokens.sum()),
                "selection_seconds": seconds,
                **({"dsir_settings": config.selection.dsir.settings().as_metadata()} if "dsir" in config.selection.methods else {}),
                "selections": dg.MetadataValue.md(summary),
                "top_selected": dg.MetadataValue.md(top_table([texts[i] for i in best], scores[best].tolist())),
            },
            data_version=dg.DataVersion(data_version(table.select(["method", "budget", "content_hash"]).to_pydict())),
        )

    return [selections]


def _first_of_each_text(pool: pa.Table) -> pa.Table:
    """Drop repeated texts, keeping the first in pool order: a selection never trains on a text twice."""
    seen: set[str] = set()
    keep = []
    for i, h in enumerate(pool.column("content_hash").to_pylist()):
        if h not in seen:
            seen.add(h)
            keep.append(i)
    return pool.take(keep)


def _summary(table: pa.Table) -> str:
    """Markdown: documents, tokens, mean alignment and datasets per method and budget."""
    lines = ["| method | budget | documents | tokens | mean score | datasets |", "|---|---:|---:|---:|---:|---|"]
    rows = table.to_pylist()
    for method, budget in dict.fromkeys((r["method"], r["budget"]) for r in rows):
        chosen = [r for r in rows if r["method"] == method and r["budget"] == budget]
        by_dataset: dict[str, int] = {}
        for r in chosen:
            by_dataset[r["dataset"]] = by_dataset.get(r["dataset"], 0) + 1
        mix = ", ".join(f"{d} {n}" for d, n in sorted(by_dataset.items()))
        mean = float(np.mean([r["score"] for r in chosen])) if chosen else float("nan")
        lines.append(f"| {method} | {budget} | {len(chosen)} | {chosen[-1]['cumulative_tokens'] if chosen else 0} | {mean:.4f} | {mix} |")
    return "\n".join(lines)
