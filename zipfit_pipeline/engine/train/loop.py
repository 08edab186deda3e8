"""Fine-tune a causal LM on selected texts for one epoch, nanoGPT style, within an exact token budget.

The selected texts are shuffled with the run's seed (every method alike, so that no method's best texts
arrive first at the peak learning rate), packed into blocks, each document starting with the tokenizer's
BOS (EOS if it has none, as in evaluation), and cut at the budget, so every selection method trains on the
same number of tokens. AdamW with linear warmup and cosine decay, gradient clipping and the seed make a run
repeatable. The test loss is measured at evenly spaced points during training to draw loss-against-tokens curves.
Weights being trained stay float32 (master weights); the forward and backward passes run in the compute dtype
(bf16 on recent GPUs) under autocast, and a LoRA run trains only its adapter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch

from zipfit_pipeline.engine.core.devices import compute_dtype, fast_matmuls
from zipfit_pipeline.engine.core.hashing import content_hash
from zipfit_pipeline.engine.core.models import check_context, document_start_id, encode_texts
from zipfit_pipeline.engine.train.settings import TrainingSettings

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


def pack_tokens(tokenizer: Any, texts: list[str], budget: int) -> np.ndarray:
    """Documents' tokens in order, each after the document-start token, cut at exactly `budget` tokens: one int32
    array (4 bytes a token, where a list of ints takes ~36), tokenized a bounded batch of texts at a time."""
    start = document_start_id(tokenizer)
    pieces: list[np.ndarray] = []
    total = 0
    for ids in encode_texts(tokenizer, texts):
        pieces.append(np.asarray([start, *ids], dtype=np.int32))
        total += len(pieces[-1])
        if total >= budget:
            break
    return np.concatenate(pieces)[:budget] if pieces else np.zeros(0, dtype=np.int32)


def block_count(tokens: int, block_size: int) -> int:
    """Blocks of a packed token array. A last block of one token is dropped: a block's first token is never
    predicted, so it would hold no target, and a batch of such blocks gives a NaN loss that would ruin every weight."""
    return tokens // block_size + (tokens % block_size > 1)


def make_batches(
    ids: Sequence[int] | np.ndarray,
    block_size: int,
    batch_size: int,
    pad_id: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, labels) micro-batches of fixed-size blocks, made as training reaches them (never all up front);
    the last block is padded and its padding ignored."""
    tokens = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    blocks = block_count(len(tokens), block_size)
    for first in range(0, blocks, batch_size):
        rows = min(batch_size, blocks - first)
        inputs = torch.full((rows, block_size), pad_id, dtype=torch.long)
        labels = torch.full((rows, block_size), -100, dtype=torch.long)
        for row in range(rows):
            block = tokens[(first + row) * block_size : (first + row + 1) * block_size]
            inputs[row, : len(block)] = block
            labels[row, : len(block)] = block
        yield inputs, labels


def autocast(device: torch.device, dtype: torch.dtype) -> Any:
    """Autocast to the compute dtype (bf16 or fp16); none in float32 (evaluation never autocasts)."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


def learning_rate(step: int, total_steps: int, settings: TrainingSettings) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio of the peak."""
    warmup = max(1, round(settings.warmup_fraction * total_steps))
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = settings.learning_rate * settings.min_lr_ratio
    return floor + 0.5 * (settings.learning_rate - floor) * (1 + math.cos(math.pi * progress))


def predicted_tokens(labels: torch.Tensor) -> int:
    """Tokens whose next token is a target: every labelled position but each row's first."""
    return int((labels[:, 1:] != -100).sum())


def _checkpointing(model: Any, action: str) -> Callable[..., None]:
    """transformers 5 renamed gradient checkpointing to activation checkpointing; 4.x has only the old name."""
    return getattr(model, f"activation_checkpointing_{action}", None) or getattr(
        model, f"gradient_checkpointing_{action}"
    )


def finetune(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    budget: int,
    settings: TrainingSettings,
    seed: int,
    device: torch.device,
    evaluate: Callable[[Any], float] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train `model` in place on the first `budget` tokens of `texts` in seeded order; return the curves.

    An optimizer step takes `gradient_accumulation_steps` micro-batches; each micro-batch's summed loss is divided
    by the step's predicted-token count, so the step's gradient is that of one batch of all its tokens. Per-step
    losses stay on the device and are read at the log points and at the end, so the GPU never waits for the host.
    """
    torch.manual_seed(seed)
    ids = pack_tokens(tokenizer, shuffled(texts, seed), budget)
    if not len(ids):
        raise ValueError("the selection is empty: there is nothing to train on")
    check_context(model.config, settings.block_size, "training.block_size")
    dtype = compute_dtype(settings.dtype, device)
    micro_batches = math.ceil(block_count(len(ids), settings.block_size) / settings.batch_size)
    steps = math.ceil(micro_batches / settings.gradient_accumulation_steps)
    if not getattr(model, "is_loaded_in_4bit", False):  # a 4-bit base is placed on its GPU when loaded
        model.to(device)
    model.train()
    if settings.gradient_checkpointing:
        _checkpointing(model, "enable")({"use_reentrant": False})  # keyword arguments of torch.utils.checkpoint
    forward = torch.compile(model) if settings.compile else model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay, fused=device.type == "cuda"
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step_losses = torch.zeros(steps, device=device)
    batches = make_batches(ids, settings.block_size, settings.batch_size, document_start_id(tokenizer))
    eval_steps = {round(steps * (i + 1) / (settings.curve_points + 1)) for i in range(settings.curve_points)}
    result = TrainResult(train_tokens=len(ids), steps=steps, seconds=0.0, device=str(device))
    seen_after: list[int] = []
    started, seen = time.monotonic(), 0
    log_every = max(1, steps // PROGRESS_LINES)  # each line is an event in Dagster's log: keep them few
    for step in range(steps):
        group = list(islice(batches, settings.gradient_accumulation_steps))
        predicted = sum(predicted_tokens(labels) for _, labels in group)
        for param_group in optimizer.param_groups:
            param_group["lr"] = learning_rate(step, steps, settings)
        with fast_matmuls(device):
            for inputs, labels in group:
                with autocast(device, dtype):
                    loss = forward(
                        input_ids=inputs.to(device, non_blocking=True),
                        labels=labels.to(device, non_blocking=True),
                        num_items_in_batch=predicted,
                    ).loss
                scaler.scale(loss).backward()
                step_losses[step] += loss.detach()
                seen += int((labels != -100).sum())
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        seen_after.append(seen)
        if step % log_every == 0 or step + 1 == steps:
            elapsed = time.monotonic() - started
            rate = seen / elapsed if elapsed else 0.0
            eta = (len(ids) - seen) / rate if rate else 0.0
            log(
                f"step {step + 1}/{steps}: {seen}/{len(ids)} tokens, loss {step_losses[step].item():.4f}, "
                f"{rate:.0f} tokens/s, ETA {eta:.0f}s"
            )
        if evaluate is not None and step + 1 in eval_steps and step + 1 < steps:
            result.test_curve.append((seen, evaluate(model)))
            model.train()
    if settings.gradient_checkpointing:
        _checkpointing(model, "disable")()
    result.train_curve = list(zip(seen_after, step_losses.tolist()))
    result.seconds = time.monotonic() - started
    return result
