"""Load causal LMs and tokenizers (hub id or local path), and save checkpoints.

Models load with `trust_remote_code=False` and safetensors preferred. The offline demo and test models are built
in `zipfit_pipeline/demo/models.py`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

TOKENIZE_CHARS = 1_000_000  # characters tokenized per call (~190 MB at a fast tokenizer's peak on one text)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # `gpt2`, `HuggingFaceTB/SmolLM2-135M`


def locate_pretrained(name: str, root: Path = Path("."), needs: str = "config.json") -> str:
    """A checkpoint folder's absolute path, or a hub id as given; anything else fails here, naming the path.

    transformers takes a folder that does not exist for a hub id and reaches for the network, so a name that looks
    like a path (`./m`, `/m`, `~/m`, `data/models/m`) must be a folder holding `needs` ("": any folder). Where the
    hub is off (HF_HUB_OFFLINE), a hub id must already be in the local cache.
    """
    local = (root / Path(name).expanduser()).resolve()
    if local.exists():
        if not local.is_dir() or (needs and not (local / needs).is_file()):
            raise FileNotFoundError(f"{local}: not a transformers checkpoint folder (no {needs})")
        return str(local)
    if not HUB_ID.fullmatch(name) or ".." in name:
        raise FileNotFoundError(f"{local}: no such folder")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, needs or "config.json"), str):
            raise FileNotFoundError(
                f"{name}: no such folder, and not in the local Hugging Face cache (the hub is off: HF_HUB_OFFLINE)"
            )
    return name


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_model_and_tokenizer(name_or_path: str, dtype: Any = None) -> tuple[Any, Any]:
    """Any causal LM transformers can load; float32 unless told otherwise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    name_or_path = locate_pretrained(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=dtype or torch.float32, trust_remote_code=False, use_safetensors=True
    )
    return with_causal_lm_loss(model), tokenizer


def quiet_transformers() -> None:
    """No progress bars of transformers' own (`Loading weights`, `Writing model shards`): carriage-return output
    that fills run logs and `make demo`'s; the pipeline logs its own progress as log lines."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def with_causal_lm_loss(model: Any) -> Any:
    """GPT-2-style classes name no loss type, and transformers says so at the first forward pass (`loss_type=None
    ... Using the default loss: ForCausalLMLoss`) before using that loss; naming it does the same, silently."""
    if getattr(model, "loss_type", "") is None:
        model.loss_type = "ForCausalLM"
    return model


ADAPTER_FILE = "adapter_config.json"  # PEFT's: a folder holding it is an adapter, loaded onto its base


def is_adapter(checkpoint: str | Path) -> bool:
    return (Path(checkpoint) / ADAPTER_FILE).is_file()


def context_length(config: Any) -> int | None:
    """The longest sequence a model's positions cover (None where its config does not say)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(config: Any, length: int, setting: str) -> None:
    """Refuse a sequence length the model has no positions for (it would fail deep in a forward pass, or worse,
    silently reuse positions)."""
    context = context_length(config)
    if context is not None and length > context:
        raise ValueError(
            f"{setting} is {length} tokens, longer than the model's context of {context} "
            f"({getattr(config, 'name_or_path', '') or config.model_type}): lower it to at most {context}"
        )


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(locate_pretrained(name_or_path, needs=""), trust_remote_code=False)


def document_start_id(tokenizer: Any) -> int:
    """The token every document starts with, in training and in evaluation: BOS, or EOS for tokenizers without one."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise ValueError(
            f"the tokenizer {type(tokenizer).__name__} has neither a BOS nor an EOS token to separate documents"
        )
    return int(start)


DOCUMENT_START_TOKENS = 1  # every document is preceded by `document_start_id` in training and evaluation


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Tokens each text costs in training: its own tokens plus the token that starts each document."""
    return [n + DOCUMENT_START_TOKENS for n in text_token_lengths(tokenizer, texts)]


def text_token_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    """The tokenizer's token count of each text alone, without special tokens. A fast tokenizer counts through
    its Rust backend's `encode_batch_fast` on all cores, without offsets or Python lists of ids (about 1.3 times
    the rate of `tokenizer(texts)`, the same counts); a slow one through `encode_texts`."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return [len(ids) for ids in encode_texts(tokenizer, texts)]
    return [
        len(e) for batch in _char_batches(texts) for e in backend.encode_batch_fast(batch, add_special_tokens=False)
    ]


def encode_texts(tokenizer: Any, texts: Iterable[str]) -> Iterator[list[int]]:
    """Each text's token ids (no special tokens), in order, tokenized a batch of `_char_batches` at a time."""
    for batch in _char_batches(texts):
        yield from tokenizer(batch, add_special_tokens=False)["input_ids"]


def _char_batches(texts: Iterable[str]) -> Iterator[list[str]]:
    """Texts in batches of at most TOKENIZE_CHARS characters (a longer text alone): a fast tokenizer peaks at about
    190 bytes a character, so memory is bounded by the batch, never by how many texts there are (and a text by
    MAX_TEXT_CHARS)."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and chars + len(text) > TOKENIZE_CHARS:
            yield batch
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield batch


def tokenizer_identity(tokenizer: Any) -> str:
    """A digest of what decides token counts (the fast tokenizer's whole definition, or a slow one's class,
    vocabulary and merges), so that stored counts are reused exactly when the same tokenizer would count the same."""
    import hashlib

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = backend.to_str()
    else:
        ranks = getattr(tokenizer, "bpe_ranks", {})
        definition = json.dumps(
            [
                type(tokenizer).__name__,
                sorted(tokenizer.get_vocab().items()),
                sorted(([*pair], rank) for pair, rank in ranks.items()),
            ]
        )
    return hashlib.sha256(definition.encode("utf-8")).hexdigest()[:32]


def save_checkpoint(model: Any, tokenizer: Any, output: Path, dtype: Any = None) -> Path:
    """save_pretrained into `<output>.partial`, then rename: a killed save never looks complete. `dtype` casts the
    weights first (a bf16 checkpoint is half a float32 one)."""
    quiet_transformers()
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if dtype is not None:
        model.to(dtype)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(output, ignore_errors=True)
    partial.rename(output)
    return output
