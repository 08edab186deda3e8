"""`zipfit`: the engine without Dagster (score, select, train, eval), the demo (prepare-demo), and the pipeline's
runs (materialize, register-sources, recover)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from zipfit_pipeline.engine.alignment import alignment_scores
from zipfit_pipeline.engine.compression import check_compressor
from zipfit_pipeline.engine.loaders import RecordReader
from zipfit_pipeline.engine.models import count_tokens, load_tokenizer
from zipfit_pipeline.engine.selection import rank_by_score, top_k, within_budget
from zipfit_pipeline.engine.runs import RunKey
from zipfit_pipeline.engine.settings import TrainSettings


def read_table(path: str) -> pa.Table:
    return pq.read_table(path) if path.endswith(".parquet") else pa_json.read_json(path)


def write_table(table: pa.Table, path: str) -> None:
    """Parquet for `.parquet`, JSON lines otherwise; written to a temporary name, then renamed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if out.suffix == ".parquet":
        pq.write_table(table, partial)
    else:
        with partial.open("w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row) + "\n")
    partial.replace(out)


def read_texts(kind: str, path: str, text_field: str, template: str | None) -> list:
    """The records of a file; skipped rows are reported on stderr by reason."""
    reader = RecordReader(path, text_field=text_field, template=template, id_field="id", require_id=False)
    records = list(reader)
    if reader.skipped:
        print(f"{kind}: skipped rows of {path}: {reader.skip_summary()}", file=sys.stderr)
    return records


def cmd_score(args: argparse.Namespace) -> int:
    check_compressor(args.compressor, args.level)
    sources = read_texts("source", args.source, args.text_field, args.template)
    targets = read_texts("target", args.target, args.target_field or args.text_field, args.target_template)
    workers = args.workers or os.cpu_count() or 1
    scores = alignment_scores([r.text for r in sources], [t.text for t in targets], args.compressor, args.level, workers, args.chunk_size)
    columns = {"row_index": pa.array([r.row_index for r in sources], pa.int64())}
    if any(r.doc_id is not None for r in sources):
        columns["id"] = pa.array([r.doc_id for r in sources], pa.string())
    columns["score"] = pa.array(scores, pa.float64())
    write_table(pa.table(columns), args.output)
    print(f"scored {len(sources)} sources against {len(targets)} targets ({args.compressor}-{args.level}) -> {args.output}", file=sys.stderr)
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    table = read_table(args.scores)
    order = rank_by_score(np.asarray(table.column("score").to_pylist(), dtype=np.float64))
    if args.source:  # the texts go into the output, so that `zipfit train` can read it
        records = read_texts("source", args.source, args.text_field, args.template)
        by_row = {r.row_index: r.text for r in records}
        table = table.append_column("text", pa.array([by_row[i] for i in table.column("row_index").to_pylist()], pa.string()))
    if args.top_k is not None:
        chosen = top_k(order, args.top_k)
        ranked = table.take(chosen)
    else:
        if not (args.tokenizer and args.source):
            print("--budget-tokens needs --tokenizer and --source (the texts the scores belong to)", file=sys.stderr)
            return 2
        texts = table.column("text").to_pylist()
        tokens = np.asarray(count_tokens(load_tokenizer(args.tokenizer), texts), dtype=np.int64)
        chosen = within_budget(order, tokens, args.budget_tokens)
        ranked = table.take(chosen).append_column("tokens", pa.array(tokens[chosen])).append_column(
            "cumulative_tokens", pa.array(np.cumsum(tokens[chosen]))
        )
    ranked = ranked.add_column(0, "rank", pa.array(np.arange(len(chosen)), pa.int64()))
    write_table(ranked, args.output)
    print(f"selected {len(chosen)} of {table.num_rows} -> {args.output}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from zipfit_pipeline.engine.evaluation import device_for_run
    from zipfit_pipeline.engine.models import load_model_and_tokenizer, save_checkpoint
    from zipfit_pipeline.engine.training import finetune

    texts = [r.text for r in read_texts("selection", args.selection, args.text_field, args.template)]
    model, tokenizer = load_model_and_tokenizer(args.model)
    budget = args.budget_tokens or sum(count_tokens(tokenizer, texts))
    settings = TrainSettings(**{name: vars(args)[name] for name in TrainSettings.model_fields if vars(args).get(name) is not None})
    device = torch.device(args.device) if args.device else device_for_run()
    result = finetune(model, tokenizer, texts, budget, settings, args.seed, device, log=lambda line: print(line, file=sys.stderr))
    output = save_checkpoint(model, tokenizer, Path(args.output))
    print(json.dumps({"checkpoint": str(output), "documents": len(texts), "train_tokens": result.train_tokens,
                      "steps": result.steps, "final_train_loss": result.final_train_loss, "seconds": round(result.seconds, 1),
                      "device": result.device, "seed": args.seed}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from zipfit_pipeline.engine.evaluation import device_for_run, heldout_loss
    from zipfit_pipeline.engine.models import load_model_and_tokenizer

    texts = [r.text for r in read_texts("test", args.test, args.text_field, args.template)]
    model, tokenizer = load_model_and_tokenizer(args.checkpoint)
    loss, tokens = heldout_loss(model.to(device_for_run()), tokenizer, texts, args.max_length, args.batch_size)
    print(json.dumps({"checkpoint": args.checkpoint, "test_loss": loss, "test_tokens": tokens, "test_documents": len(texts)}))
    return 0


def cmd_prepare_demo(args: argparse.Namespace) -> int:
    from zipfit_pipeline.engine.demo_data import build_demo_data
    from zipfit_pipeline.engine.models import prepare_smollm2

    root = Path(args.root)
    files = build_demo_data(root / "data" / "demo")
    print("demo inputs:", ", ".join(str(f) for f in files.values()))
    print("demo model:", prepare_smollm2(root / "data" / "models" / "smollm2-135m"))
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    import dagster as dg

    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.definitions import build_definitions
    from zipfit_pipeline.engine.store import Store
    from zipfit_pipeline.materialize_all import materialize_all

    config_file = str(Path(args.config).resolve())
    defs = build_definitions(config_file)
    with dg.DagsterInstance.get() as instance:
        done = materialize_all(defs, instance, only_out_of_date=args.stale)
    if args.stale and not done:
        print("everything is up to date")
    config = load_project(config_file)
    store = Store(config.resolve(config.store))
    print(f"\nresults: {store.path} (DuckDB); checkpoints under {config.resolve(config.artifacts)}")
    print(headline(store))
    for report in sorted((config.resolve(config.artifacts) / "reports").glob("*/*/report.md")):
        print(f"\ncomparison report: {report} (and its plots beside it)")
        print(report.read_text(encoding="utf-8").split("\n\n![")[0])
    return 0


def cmd_register_sources(args: argparse.Namespace) -> int:
    import dagster as dg

    from zipfit_pipeline.config import load_project
    from zipfit_pipeline.partitions import SOURCES, register_sources

    with dg.DagsterInstance.get() as instance:
        added, removed = register_sources(instance, load_project(args.config))
        print(f"source partitions: {', '.join(instance.get_dynamic_partitions(SOURCES)) or 'none'}")
    print(f"added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    import dagster as dg

    from zipfit_pipeline.recovery import recover_killed_runs

    with dg.DagsterInstance.get() as instance:
        print("\n".join(recover_killed_runs(instance)) or "no killed runs")
    return 0


def headline(store: object) -> str:
    """Test cross-entropy of the base model and of every fine-tune (each seed), as a table."""
    rows = store.query(  # type: ignore[attr-defined]
        """SELECT e.model, e.target, e.method, e.budget, e.seed, t.train_tokens, e.test_loss FROM eval_losses e
           JOIN training_runs t USING (model, target, method, budget, seed)
           ORDER BY e.model, e.target, e.method, e.budget, e.seed"""
    ).to_pylist()
    lines = [f"{'model':<16} {'target':<12} {'run':<24} {'train tokens':>12} {'test CE':>8}"]
    lines += [f"{r['model']:<16} {r['target']:<12} {RunKey(r['model'], r['target'], r['method'], r['budget'], r['seed']).label():<24} "
              f"{r['train_tokens']:>12} {r['test_loss']:>8.4f}" for r in rows]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zipfit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score a source file against a target file (JSONL or Parquet)")
    score.add_argument("source")
    score.add_argument("target")
    score.add_argument("--output", required=True, help=".jsonl or .parquet")
    score.add_argument("--text-field", default="text")
    score.add_argument("--template", help="a str.format template over the source's fields, instead of --text-field")
    score.add_argument("--target-field", help="the target's text field (default: --text-field)")
    score.add_argument("--target-template", help="a template over the target's fields")
    score.add_argument("--compressor", choices=["gzip", "lz4", "zstd"], default="gzip")
    score.add_argument("--level", type=int, default=9)
    score.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    score.add_argument("--chunk-size", type=int, default=256)
    score.set_defaults(run=cmd_score)

    select = sub.add_parser("select", help="keep the top of a scores file by count or by a token budget")
    select.add_argument("scores")
    how = select.add_mutually_exclusive_group(required=True)
    how.add_argument("--top-k", type=int)
    how.add_argument("--budget-tokens", type=int)
    select.add_argument("--tokenizer", help="hub id or local path of the tokenizer that counts the budget")
    select.add_argument("--source", help="the source file the scores were computed on (for --budget-tokens); its texts "
                        "are written with the selection")
    select.add_argument("--text-field", default="text")
    select.add_argument("--template")
    select.add_argument("--output", required=True)
    select.set_defaults(run=cmd_select)

    train = sub.add_parser("train", help="fine-tune a causal LM on the texts of a file (e.g. `zipfit select --source` output)")
    train.add_argument("selection", help="JSONL, JSON, CSV or Parquet with a text field")
    train.add_argument("--model", required=True, help="local folder (or hub id) of a transformers causal LM")
    train.add_argument("--output", required=True, help="folder to save the fine-tuned checkpoint in")
    train.add_argument("--budget-tokens", type=int, help="train on exactly this many tokens (default: all of the file's)")
    train.add_argument("--seed", type=int, default=0, help="shuffles the texts and seeds torch")
    train.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    train.add_argument("--text-field", default="text")
    train.add_argument("--template")
    for name, spec in TrainSettings.model_fields.items():
        if name != "curve_points":  # no test set here: `zipfit eval` measures the result
            train.add_argument(f"--{name.replace('_', '-')}", type=spec.annotation, help=f"default {spec.default}")
    train.set_defaults(run=cmd_train)

    evaluate = sub.add_parser("eval", help="mean token cross-entropy of a checkpoint on the texts of a file")
    evaluate.add_argument("checkpoint", help="local folder (or hub id) of a transformers causal LM")
    evaluate.add_argument("test", help="JSONL, JSON, CSV or Parquet with a text field")
    evaluate.add_argument("--text-field", default="text")
    evaluate.add_argument("--template")
    evaluate.add_argument("--max-length", type=int, default=1024, help="tokens per text, its first token included")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.set_defaults(run=cmd_eval)

    prepare = sub.add_parser("prepare-demo", help="build the offline demo inputs and the SmolLM2-135M checkpoint")
    prepare.add_argument("--root", default=".", help="project folder (data/ is created under it)")
    prepare.set_defaults(run=cmd_prepare_demo)

    run = sub.add_parser("materialize", help="materialize every asset and partition of a project as Dagster runs")
    run.add_argument("--config", default=os.environ.get("ZIPFIT_CONFIG", "zipfit.yaml"))
    run.add_argument("--stale", action="store_true", help="only partitions that are stale, missing or below one that is")
    run.set_defaults(run=cmd_materialize)

    register = sub.add_parser("register-sources", help="make the instance's source partitions match the project file and "
                              "incoming folder now (the incoming_sources sensor does it every 30 s)")
    register.add_argument("--config", default=os.environ.get("ZIPFIT_CONFIG", "zipfit.yaml"))
    register.set_defaults(run=cmd_register_sources)
    recover = sub.add_parser("recover", help="mark runs whose processes were killed as failed and free the pool slots "
                             "they held (the `killed_runs` sensor does it every minute while the daemon runs)")
    recover.set_defaults(run=cmd_recover)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
