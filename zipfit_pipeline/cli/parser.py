"""The command line's options: one subcommand per engine stage on files, and one per pipeline operation."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, Literal, NoReturn, get_args, get_origin

from zipfit_pipeline.cli.engine_commands import cmd_eval, cmd_score, cmd_select, cmd_train
from zipfit_pipeline.cli.pipeline_commands import (
    cmd_materialize,
    cmd_prepare_demo,
    cmd_recover,
    cmd_register_sources,
    cmd_size_pools,
    cmd_take_over,
)
from zipfit_pipeline.engine.score.alignment import BACKENDS
from zipfit_pipeline.engine.score.compression import COMPRESSORS
from zipfit_pipeline.engine.score.settings import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSOR, DEFAULT_LEVEL
from zipfit_pipeline.engine.train.settings import TrainingSettings

DESCRIPTION = (
    "`zipfit`: the engine without Dagster (score, select, train, eval), the demo (prepare-demo), and the pipeline's "
    "runs (materialize, register-sources, recover). An error is one line on stderr and a non-zero exit; `--debug` "
    "shows the traceback."
)


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
    p = Parser(prog="zipfit", description=DESCRIPTION)
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
    score.add_argument("--compressor", choices=COMPRESSORS, default=DEFAULT_COMPRESSOR)
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
    take_over = command(
        "take-over",
        help="make the project file's store and artifacts folder its own, even where another project that still "
        "uses them owns them (that project is then refused)",
    )
    config_option(take_over)
    take_over.set_defaults(run=cmd_take_over)
    return p


def config_option(command: argparse.ArgumentParser) -> None:
    """`--config`, for the commands that read the project file or open its Dagster instance."""
    command.add_argument(
        "--config",
        default=os.environ.get("ZIPFIT_CONFIG", "zipfit.yaml"),
        help="project file (default: $ZIPFIT_CONFIG, else ./zipfit.yaml); the Dagster instance is DAGSTER_HOME, "
        "or .dagster_home/ beside this file when that is unset",
    )
