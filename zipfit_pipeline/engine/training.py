"""Fine-tune a causal LM on selected texts for one epoch, nanoGPT style, within an exact token budget.

The selected texts are shuffled with the run's seed (every method alike, so that no method's best texts
arrive first at the peak learning rate), packed into blocks, each document starting with the tokenizer's
BOS (EOS if it has none, as in evaluation), and cut at the budget, so every selection method trains on the
same number of tokens. AdamW with linear warmup and cosine decay, gradient clipping and the seed make a run
repeatable. The test loss is measured at evenly spaced points during training to draw loss-against-tokens curves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from zipfit_pipeline.engine.loaders import content_hash
from zipfit_pipeline.engine.models import document_start_id
from zipfit_pipeline.engine.settings import TrainSettings

PROGRESS_LINES = 20


@dataclass
class TrainResult:
    train_tokens: int
    steps: int
    seconds: float
    device: str
    train_curve: list[tuple[int, float]] = field(default_factory=list)
    test_curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def final_train_loss(self) -> float:
        return self.train_curve[-1][1] if self.train_curve else float("nan")


def shuffled(texts: list[str], seed: int) -> list[str]:
    """The training order of a selection: the texts by content hash, then permuted with the run's seed. It depends
    only on which texts were selected and the seed, never on the order a method ranked them in."""
    canonical = sorted(texts, key=content_hash)
    return [canonical[i] for i in np.random.default_rng(seed).permutation(len(canonical))]


def pack_tokens(tokenizer: Any, texts: list[str], budget: int) -> list[int]:
    """Documents' tokens in order, each after the document-start token, cut at exactly `budget` tokens."""
    start = document_start_id(tokenizer)
    ids: list[int] = []
    for text in texts:
        ids.append(start)
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= budget:
            break
    return ids[:budget]


def make_batches(ids: list[int], block_size: int, batch_size: int, pad_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, labels) batches of fixed-size blocks; the last block is padded and its padding ignored.

    A last block of one token is dropped: a block's first token is never predicted, so it would hold no target,
    and a batch of such blocks gives a NaN loss whose gradient would ruin every weight.
    """
    blocks = [ids[i : i + block_size] for i in range(0, len(ids), block_size) if len(ids) - i > 1]
    batches = []
    for start in range(0, len(blocks), batch_size):
        group = blocks[start : start + batch_size]
        inputs = torch.full((len(group), block_size), pad_id, dtype=torch.long)
        labels = torch.full((len(group), block_size), -100, dtype=torch.long)
        for row, block in enumerate(group):
            inputs[row, : len(block)] = torch.tensor(block)
            labels[row, : len(block)] = torch.tensor(block)
        batches.append((inputs, labels))
    return batches


def autocast(device: torch.device) -> Any:
    """bf16 autocast for training steps on CUDA; float32 elsewhere (evaluation never autocasts)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def learning_rate(step: int, total_steps: int, settings: TrainSettings) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio of the peak."""
    warmup = max(1, round(settings.warmup_fraction * total_steps))
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = settings.learning_rate * settings.min_lr_ratio
    return floor + 0.5 * (settings.learning_rate - floor) * (1 + math.cos(math.pi * progress))


def finetune(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    budget: int,
    settings: TrainSettings,
    seed: int,
    device: torch.device,
    evaluate: Callable[[Any], float] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train `model` in place on the first `budget` tokens of `texts` in seeded order; return the curves."""
    torch.manual_seed(seed)
    ids = pack_tokens(tokenizer, shuffled(texts, seed), budget)
    if not ids:
        raise ValueError("the selection is empty: there is nothing to train on")
    batches = make_batches(ids, settings.block_size, settings.batch_size, document_start_id(tokenizer))
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    eval_steps = {round(len(batches) * (i + 1) / (settings.curve_points + 1)) for i in range(settings.curve_points)}
    result = TrainResult(train_tokens=len(ids), steps=len(batches), seconds=0.0, device=str(device))
    started, seen = time.monotonic(), 0
    log_every = max(1, len(batches) // PROGRESS_LINES)  # each line is an event in Dagster's log: keep them few
    for step, (inputs, labels) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, len(batches), settings)
        with autocast(device):
            loss = model(input_ids=inputs.to(device), labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seen += int((labels != -100).sum())
        result.train_curve.append((seen, float(loss.item())))
        elapsed = time.monotonic() - started
        rate = seen / elapsed if elapsed else 0.0
        eta = (len(ids) - seen) / rate if rate else 0.0
        if step % log_every == 0 or step + 1 == len(batches):
            log(f"step {step + 1}/{len(batches)}: {seen}/{len(ids)} tokens, loss {loss.item():.4f}, {rate:.0f} tokens/s, ETA {eta:.0f}s")
        if evaluate is not None and step + 1 in eval_steps and step + 1 < len(batches):
            result.test_curve.append((seen, evaluate(model)))
            model.train()
    result.seconds = time.monotonic() - started
    return result
