"""`zipfit`: the engine without Dagster (score, select, train, eval), the demo (prepare-demo), and the pipeline's
runs (materialize, register-sources, recover). An error is one line on stderr and a non-zero exit; `--debug`
shows the traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, get_args, get_origin

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from zipfit_pipeline.cli_files import UsageError, output_file, read_scores, refuse_overwriting_inputs, write_table
from zipfit_pipeline.engine.core.models import ADAPTER_FILE, count_tokens, is_adapter, load_tokenizer, locate_pretrained
from zipfit_pipeline.engine.ingest.records import Record, RecordReader
from zipfit_pipeline.engine.score.alignment import BACKENDS, alignment_scores
from zipfit_pipeline.engine.score.compression import check_compressor
from zipfit_pipeline.engine.score.native import code_path
from zipfit_pipeline.engine.score.settings import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSOR, DEFAULT_LEVEL
from zipfit_pipeline.engine.select.ranking import rank_by_score, top_k, within_budget
from zipfit_pipeline.engine.train.settings import TrainingSettings

if TYPE_CHECKING:  # opened only by `materialize`
    from zipfit_pipeline.engine.core.store import Store


def read_texts(kind: str, path: str, text_field: str, template: str | None) -> list[Record]:
    """The records of a file; skipped rows are reported on stderr by reason."""
    reader = RecordReader(path, text_field=text_field, template=template, id_field="id", require_id=False)
    records = list(reader)
    if reader.skipped:
        print(f"{kind}: skipped rows of {path}: {reader.skip_summary()}", file=sys.stderr)
    if not records:
        raise UsageError(f"{path}: no usable rows (skipped: {reader.skip_summary()})")
    return records


def cmd_score(args: argparse.Namespace) -> int:
    check_compressor(args.compressor, args.level)
    output = output_file(args.output, [args.source, args.target])
    sources = read_texts("source", args.source, args.text_field, args.template)
    targets = read_texts("target", args.target, args.target_field or args.text_field, args.target_template)
    texts, target_texts = [r.text for r in sources], [t.text for t in targets]
    if args.method == "zipfit":
        workers = args.workers or os.cpu_count() or 1
        scores = alignment_scores(
            texts, target_texts, args.compressor, args.level, workers, args.chunk_size, args.backend
        )
        how = f"{args.compressor}-{args.level}, {code_path(args.compressor, args.level)} path"
    else:
        scores, how = baseline_scores(args, texts, target_texts)
    kept = np.flatnonzero(np.isfinite(scores))  # D4's near-duplicates are not written: they are never selected
    columns: dict[str, list] = {"row_index": [sources[i].row_index for i in kept]}
    if any(r.doc_id is not None for r in sources):
        columns["id"] = [sources[i].doc_id for i in kept]
    columns["score"] = scores[kept].tolist()
    write_table(columns, output)
    print(f"scored {len(sources)} sources against {len(targets)} targets ({how}) -> {output}", file=sys.stderr)
    return 0


def baseline_scores(args: argparse.Namespace, texts: list[str], targets: list[str]) -> tuple[np.ndarray, str]:
    """A baseline's ranking scores of the source texts (the pipeline's, without a store): BM25 against the targets,
    the cosine to the targets' mean embedding, or D4's order (-inf for the near-duplicates it drops)."""
    from zipfit_pipeline.engine.select.settings import Bm25Settings, D4Settings, EmbeddingSettings

    if args.method == "bm25":
        from zipfit_pipeline.engine.select.bm25 import bm25_scores

        return bm25_scores(texts, targets, Bm25Settings()), "BM25, mean over targets"
    from zipfit_pipeline.engine.select.d4 import d4_scores
    from zipfit_pipeline.engine.select.embeddings import embed_texts, load_embedder, model_name, target_similarity

    embedding = EmbeddingSettings(model=args.embedding_model)
    vectors = embed_texts(load_embedder(embedding), texts, embedding)
    if args.method == "embedding":
        return target_similarity(
            vectors, targets, embedding
        ), f"cosine to the targets' mean {model_name(embedding)} embedding"
    result = d4_scores(vectors, D4Settings(clusters=args.clusters, duplicate_similarity=args.duplicate_similarity))
    return result.scores, (
        f"D4 on {model_name(embedding)} embeddings, {result.clusters} clusters, "
        f"{result.duplicates} near-duplicates dropped"
    )


def cmd_select(args: argparse.Namespace) -> int:
    output = output_file(args.output, [args.scores, args.source])
    if args.budget_tokens is not None and not (args.tokenizer and args.source):
        raise UsageError("--budget-tokens needs --tokenizer and --source (the texts the scores belong to)")
    tokenizer = locate_pretrained(args.tokenizer, needs="") if args.tokenizer else None  # before any work
    table = read_scores(args.scores)
    order = rank_by_score(np.asarray(table.column("score").to_pylist(), dtype=np.float64))
    if args.source:  # the texts go into the output, so that `zipfit train` can read it
        records = read_texts("source", args.source, args.text_field, args.template)
        texts = texts_of_scored_rows(args.scores, table, args.source, records)
        table = table.append_column("text", pa.array(texts, pa.string()))
    if args.top_k is not None:
        chosen = top_k(order, args.top_k)
        ranked = table.take(chosen)
    else:
        tokens = np.asarray(
            count_tokens(load_tokenizer(str(tokenizer)), table.column("text").to_pylist()), dtype=np.int64
        )
        chosen = within_budget(order, tokens, args.budget_tokens)
        ranked = (
            table.take(chosen)
            .append_column("tokens", pa.array(tokens[chosen]))
            .append_column("cumulative_tokens", pa.array(np.cumsum(tokens[chosen])))
        )
    ranked = ranked.add_column(0, "rank", pa.array(np.arange(len(chosen)), pa.int64()))
    write_table(ranked, output)
    print(f"selected {len(chosen)} of {table.num_rows} -> {output}", file=sys.stderr)
    return 0


def texts_of_scored_rows(scores_path: str, scores: pa.Table, source_path: str, records: list[Record]) -> list[str]:
    """The source text of every scored row; a scores file computed from another file fails naming the first row."""
    by_row = {r.row_index: r for r in records}
    ids = scores.column("id").to_pylist() if "id" in scores.column_names else [None] * scores.num_rows
    texts = []
    for row, (index, doc_id) in enumerate(zip(scores.column("row_index").to_pylist(), ids)):
        record = by_row.get(index)
        if record is None:
            raise UsageError(
                f"{scores_path} row {row}: row_index {index} is not a usable row of {source_path} "
                "(were the scores computed from another file?)"
            )
        if doc_id is not None and record.doc_id != doc_id:
            raise UsageError(
                f"{scores_path} row {row}: id {doc_id!r}, but row {index} of {source_path} has id "
                f"{record.doc_id!r} (were the scores computed from another file?)"
            )
        texts.append(record.text)
    return texts


def cmd_train(args: argparse.Namespace) -> int:
    from zipfit_pipeline.engine.train.loop import finetune
    from zipfit_pipeline.engine.train.trainable import save_trained, trainable_model

    try:
        given = {
            name: vars(args)[name]
            for name in TrainingSettings.model_fields
            if name != "device" and vars(args).get(name) is not None
        }  # --device is checked by run_device
        if args.lora_rank is not None:
            given["lora"] = {"rank": args.lora_rank, "alpha": 2.0 * args.lora_rank}
        settings = TrainingSettings(**given)
    except ValidationError as error:
        from zipfit_pipeline.config import validation_message  # the project file's models: loaded for this message only

        raise UsageError(validation_message(error, option_names=True)) from None
    model_path = locate_pretrained(args.model)
    output = checkpoint_output(args.output, [args.selection, model_path])
    device = run_device(args.device)
    texts = [r.text for r in read_texts("selection", args.selection, args.text_field, args.template)]
    model, tokenizer = trainable_model(model_path, settings, device, args.seed)
    budget = args.budget_tokens or sum(count_tokens(tokenizer, texts))
    result = finetune(
        model, tokenizer, texts, budget, settings, args.seed, device, log=lambda line: print(line, file=sys.stderr)
    )
    saved = save_trained(model, tokenizer, output, settings, device)
    print(
        json.dumps(
            {
                "checkpoint": str(saved),
                "documents": len(texts),
                "train_tokens": result.train_tokens,
                "steps": result.steps,
                "final_train_loss": result.final_train_loss,
                "seconds": round(result.seconds, 1),
                "device": result.device,
                "seed": args.seed,
            }
        )
    )
    return 0


def checkpoint_output(path: str, inputs: list[str]) -> Path:
    """The folder `train` saves into: new, or an earlier checkpoint (replaced), never an input or a folder of other
    files."""
    out = Path(path).expanduser()
    refuse_overwriting_inputs(out, inputs)
    if out.exists() and not ((out / "config.json").is_file() or is_adapter(out)):
        raise UsageError(
            f"--output {path} exists and is not a checkpoint folder (no config.json): it would be replaced; "
            "give a new folder"
        )
    return out


def run_device(name: str | None) -> Any:
    """`--device`, checked now rather than after the model has loaded; CUDA when present by default."""
    import torch

    from zipfit_pipeline.engine.train.heldout import device_for_run

    if name is None:
        return device_for_run()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise UsageError(f"--device {name}: {error}") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA devices")
    return device


def cmd_eval(args: argparse.Namespace) -> int:
    from zipfit_pipeline.engine.train.heldout import device_for_run, heldout_loss
    from zipfit_pipeline.engine.train.trainable import load_trained

    local = Path(args.checkpoint).expanduser()
    checkpoint = locate_pretrained(args.checkpoint, needs=ADAPTER_FILE if is_adapter(local) else "config.json")
    if is_adapter(checkpoint) and args.base is None:
        raise UsageError(f"{checkpoint} is a LoRA adapter: give the model it was trained on with --base")
    texts = [r.text for r in read_texts("test", args.test, args.text_field, args.template)]
    base = locate_pretrained(args.base) if args.base else checkpoint
    model, tokenizer = load_trained(checkpoint, base, device_for_run())
    loss, tokens = heldout_loss(model, tokenizer, texts, args.max_length, args.batch_size)
    print(
        json.dumps(
            {"checkpoint": args.checkpoint, "test_loss": loss, "test_tokens": tokens, "test_documents": len(texts)}
        )
    )
    return 0


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
    defs = build_definitions(config_file)
    with project_instance(Path(config_file)) as instance:
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


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def whole(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def cosine_threshold(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p = Parser(prog="zipfit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    score = command("score", help="score a source file against a target file (JSONL, JSON, CSV or Parquet)")
    score.add_argument("source")
    score.add_argument("target")
    score.add_argument("--output", required=True, help=".jsonl, .parquet or .csv")
    score.add_argument(
        "--method",
        choices=["zipfit", "bm25", "embedding", "d4"],
        default="zipfit",
        help="zipfit (alignment), or a baseline's ranking score; `zipfit select` keeps the top of either",
    )
    score.add_argument(
        "--embedding-model",
        help="for embedding and d4: a transformers model's hub id or folder (default: the shipped all-MiniLM-L6-v2)",
    )
    score.add_argument("--clusters", type=whole(1), help="for d4: k-means clusters (default: sqrt of the sources)")
    score.add_argument(
        "--duplicate-similarity",
        type=cosine_threshold,
        default=0.95,
        help="for d4: SemDeDup's cosine threshold, in (0, 1]",
    )
    score.add_argument("--text-field", default="text")
    score.add_argument("--template", help="a str.format template over the source's fields, instead of --text-field")
    score.add_argument("--target-field", help="the target's text field (default: --text-field)")
    score.add_argument("--target-template", help="a template over the target's fields")
    score.add_argument("--compressor", choices=["gzip", "lz4", "zstd"], default=DEFAULT_COMPRESSOR)
    score.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    score.add_argument("--workers", type=whole(0), default=0, help="processes or threads (0: one per core)")
    score.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: threads on the native path (it releases the GIL), processes on the pure-Python path",
    )
    score.add_argument("--chunk-size", type=whole(1), default=DEFAULT_CHUNK_SIZE)
    score.set_defaults(run=cmd_score)

    select = command("select", help="keep the top of a scores file by count or by a token budget")
    select.add_argument("scores")
    how = select.add_mutually_exclusive_group(required=True)
    how.add_argument("--top-k", type=whole(1))
    how.add_argument("--budget-tokens", type=whole(1))
    select.add_argument("--tokenizer", help="hub id or local folder of the tokenizer that counts the budget")
    select.add_argument(
        "--source",
        help="the source file the scores were computed on (for --budget-tokens); its texts "
        "are written with the selection",
    )
    select.add_argument("--text-field", default="text")
    select.add_argument("--template")
    select.add_argument("--output", required=True, help=".jsonl, .parquet or .csv")
    select.set_defaults(run=cmd_select)

    train = command("train", help="fine-tune a causal LM on the texts of a file (e.g. `zipfit select --source` output)")
    train.add_argument("selection", help="JSONL, JSON, CSV or Parquet with a text field")
    train.add_argument("--model", required=True, help="local folder (or hub id) of a transformers causal LM")
    train.add_argument("--output", required=True, help="new folder (or an earlier checkpoint, replaced) to save into")
    train.add_argument(
        "--budget-tokens", type=whole(1), help="train on exactly this many tokens (default: all of the file's)"
    )
    train.add_argument("--seed", type=whole(0), default=0, help="shuffles the texts and seeds torch")
    train.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    train.add_argument("--text-field", default="text")
    train.add_argument("--template")
    # Every scalar setting of one fine-tune is an option; not the test loss's (no test set here: `zipfit eval` measures
    # the result), keep_checkpoints (the output is the checkpoint), device (the option above, checked against this
    # machine) or lora (--lora-rank below).
    for name, spec in TrainingSettings.model_fields.items():
        option = f"--{name.replace('_', '-')}"
        if name in {"curve_points", "eval_max_length", "eval_batch_size", "keep_checkpoints"}:
            continue
        if spec.annotation in (int, float):
            train.add_argument(option, type=float if spec.annotation is float else int, help=f"default {spec.default}")
        elif spec.annotation is bool:
            train.add_argument(option, action=argparse.BooleanOptionalAction, help=f"default {spec.default}")
        elif get_origin(spec.annotation) is Literal:
            train.add_argument(option, choices=get_args(spec.annotation), help=f"default {spec.default}")
    train.add_argument(
        "--lora-rank", type=whole(1), help="train a LoRA adapter of this rank (alpha 2 x rank) instead of every weight"
    )
    train.set_defaults(run=cmd_train)

    evaluate = command("eval", help="mean token cross-entropy of a checkpoint on the texts of a file")
    evaluate.add_argument("checkpoint", help="local folder (or hub id) of a transformers causal LM")
    evaluate.add_argument("test", help="JSONL, JSON, CSV or Parquet with a text field")
    evaluate.add_argument("--text-field", default="text")
    evaluate.add_argument("--template")
    evaluate.add_argument("--max-length", type=whole(2), default=1024, help="tokens per text, its first token included")
    evaluate.add_argument("--batch-size", type=whole(1), default=8)
    evaluate.add_argument("--base", help="the model a LoRA adapter checkpoint was trained on")
    evaluate.set_defaults(run=cmd_eval)

    prepare = command(
        "prepare-demo",
        help="build the offline demo inputs and the SmolLM2-135M checkpoint, and give the instance "
        "(DAGSTER_HOME, else ROOT/.dagster_home) the project's dagster.yaml",
    )
    prepare.add_argument("--root", default=".", help="project folder (data/ is created under it)")
    prepare.set_defaults(run=cmd_prepare_demo)

    run = command("materialize", help="materialize every asset and partition of a project as Dagster runs")
    config_option(run)
    run.add_argument(
        "--stale", action="store_true", help="only partitions that are stale, missing or below one that is"
    )
    run.set_defaults(run=cmd_materialize)

    pools = command(
        "size-pools",
        help="give the accelerator pool one slot per visible GPU (fine-tunes and evals run "
        "that many at once, each on a GPU of its own)",
    )
    config_option(pools)
    pools.set_defaults(run=cmd_size_pools)

    register = command(
        "register-sources",
        help="make the instance's source partitions match the project file and "
        "incoming folder now (the incoming_sources sensor does it every 30 s)",
    )
    config_option(register)
    register.set_defaults(run=cmd_register_sources)
    recover = command(
        "recover",
        help="mark runs whose processes were killed as failed and free the pool slots "
        "they held (the `killed_runs` sensor does it every minute while the daemon runs)",
    )
    config_option(recover)
    recover.set_defaults(run=cmd_recover)
    return p


def config_option(command: argparse.ArgumentParser) -> None:
    """`--config`, for the commands that read the project file or open its Dagster instance."""
    command.add_argument(
        "--config",
        default=os.environ.get("ZIPFIT_CONFIG", "zipfit.yaml"),
        help="project file (default: $ZIPFIT_CONFIG, else ./zipfit.yaml); the Dagster instance is DAGSTER_HOME, "
        "or .dagster_home/ beside this file when that is unset",
    )


# What a user can act on from its message alone; anything else is a bug, and says how to see its traceback.
EXPECTED_ERRORS = (ValueError, OSError, LookupError, RuntimeError)


def error_line(error: BaseException) -> str:
    """An error as one line: the message, or for an unexpected error its type and how to see more."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, EXPECTED_ERRORS) and not isinstance(error, KeyError):
        return text
    return f"{type(error).__name__}: {text} (unexpected: run again with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"zipfit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"zipfit {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
