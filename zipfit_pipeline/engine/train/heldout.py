"""Test loss: mean token cross-entropy of a causal LM on held-out texts, in float32 on every device.

Each text is scored on its own, after the token every training document starts with (BOS, or EOS for
tokenizers without one), so every text token is predicted and the loss is comparable across models that share
a tokenizer. The forward pass runs without autocast: bf16 logits are spaced 0.125 apart near |16|, while the
differences between selection methods are ~1e-3, so CPU and GPU losses must come from float32 logits. Weights held
in a lower dtype (a LoRA base frozen in bf16 while its adapter trains) are measured in float32 too, so that the
curve points taken during training and the final eval (which loads the base in float32) are the same measurement;
4-bit weights (QLoRA) stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from zipfit_pipeline.engine.core.models import check_context, document_start_id, encode_texts


def device_for_run() -> torch.device:
    """CUDA when present, otherwise the CPU: the same code path for both."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encode_documents(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    start = document_start_id(tokenizer)
    return [([start] + ids)[:max_length] for ids in encode_texts(tokenizer, texts)]


@contextmanager
def float32_weights(model: Any) -> Iterator[None]:
    """The model's floating-point weights in float32 for the duration, then back in their own dtypes (exact: every
    bf16 and fp16 value is a float32 value). Costs a float32 copy of those weights while it lasts."""
    lowered = {p: p.dtype for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32}
    for parameter in lowered:
        parameter.data = parameter.data.float()
    try:
        yield
    finally:
        for parameter, dtype in lowered.items():
            parameter.data = parameter.data.to(dtype)


@torch.no_grad()
def heldout_loss(
    model: Any, tokenizer: Any, texts: list[str], max_length: int = 1024, batch_size: int = 8
) -> tuple[float, int]:
    """(mean cross-entropy per predicted token, number of predicted tokens)."""
    if not texts:
        raise ValueError("the test split is empty: there is nothing to evaluate on")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    documents = sorted(encode_documents(tokenizer, texts, max_length), key=len)
    check_context(model.config, len(documents[-1]), "eval_max_length (the longest test text's tokens, cut there)")
    with float32_weights(model):
        total_loss, total_tokens = _summed_loss(model, tokenizer, documents, batch_size, device)
    model.train(was_training)
    return total_loss / total_tokens, total_tokens


def _summed_loss(
    model: Any, tokenizer: Any, documents: list[list[int]], batch_size: int, device: torch.device
) -> tuple[float, int]:
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(documents), batch_size):
        batch = documents[start : start + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), document_start_id(tokenizer), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(ids)
        input_ids, labels = input_ids.to(device), labels.to(device)
        logits = model(input_ids=input_ids).logits  # right padding: causal attention never lets a text see it
        shifted = logits[:, :-1].float().reshape(-1, logits.size(-1))
        targets = labels[:, 1:].reshape(-1)
        total_loss += torch.nn.functional.cross_entropy(shifted, targets, ignore_index=-100, reduction="sum").item()
        total_tokens += int((targets != -100).sum())
    return total_loss, total_tokens
