"""`zipfit score | select | train | eval`: the engine's algorithms on files, without a project or Dagster."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from zipfit_pipeline.cli.files import UsageError, output_file, read_scores, refuse_overwriting_inputs, write_table
from zipfit_pipeline.engine.core.input_files import MAX_TEXT_CHARS
from zipfit_pipeline.engine.core.models import ADAPTER_FILE, count_tokens, is_adapter, load_tokenizer, locate_pretrained
from zipfit_pipeline.engine.ingest.file_state import read_unchanged
from zipfit_pipeline.engine.ingest.records import Record, RecordReader
from zipfit_pipeline.engine.score.alignment import alignment_scores
from zipfit_pipeline.engine.score.compression import check_compressor
from zipfit_pipeline.engine.score.native import code_path
from zipfit_pipeline.engine.select.ranking import rank_by_score, top_k, within_budget
from zipfit_pipeline.engine.train.settings import TrainingSettings


def read_texts(kind: str, path: str, text_field: str, template: str | None) -> list[Record]:
    """The records of a file, read while it stayed unchanged (as ingestion reads); skipped rows are reported on
    stderr by reason."""
    reader = RecordReader(
        path, text_field=text_field, template=template, id_field="id", require_id=False, max_chars=MAX_TEXT_CHARS
    )
    records, reader, _ = read_unchanged(reader, list, log=lambda line: print(line, file=sys.stderr))
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
