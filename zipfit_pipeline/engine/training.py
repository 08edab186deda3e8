"""Fine-tune a causal LM on selected texts for one epoch, nanoGPT style, within an exact token budget.

Texts are packed in selection order into blocks with EOS between documents and cut at the budget, so
every selection method trains on the same number of tokens. AdamW with linear warmup and cosine decay,
gradient clipping, a seed and a fixed data order make a run repeatable. The test loss is measured at
evenly spaced points during training to draw loss-against-tokens curves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from zipfit_pipeline.engine.evaluation import autocast


PROGRESS_LINES = 20


class TrainSettings(BaseModel):
    """One fine-tune's hyperparameters (the paper's: block 1024, weight decay 0.01, max grad norm 1.0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    block_size: int = 1024
    batch_size: int = 4
    learning_rate: float = 5e-5
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    curve_points: int = Field(1, ge=0, description="test-loss evaluations during training, evenly spaced; the end is eval_loss's")


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


def pack_tokens(tokenizer: Any, texts: list[str], budget: int) -> list[int]:
    """Documents' tokens in order, each followed by EOS, cut at exactly `budget` tokens."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
        if len(ids) >= budget:
            break
    return ids[:budget]


def make_batches(ids: list[int], block_size: int, batch_size: int, pad_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, labels) batches of fixed-size blocks; the last block is padded and its padding ignored."""
    blocks = [ids[i : i + block_size] for i in range(0, len(ids), block_size)]
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
    device: torch.device,
    evaluate: Callable[[Any], float] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train `model` in place on the first `budget` tokens of `texts`; return the curves."""
    torch.manual_seed(settings.seed)
    ids = pack_tokens(tokenizer, texts, budget)
    if not ids:
        raise ValueError("the selection is empty: there is nothing to train on")
    batches = make_batches(ids, settings.block_size, settings.batch_size, tokenizer.eos_token_id)
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
