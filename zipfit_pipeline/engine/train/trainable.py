"""The model a fine-tune trains (every weight, a LoRA adapter, or an adapter on a 4-bit base) and the model an eval
loads back from its checkpoint.

A full fine-tune keeps float32 master weights and saves them in the compute dtype (bf16 on recent GPUs). A LoRA run
freezes the base in the compute dtype, trains a float32 adapter through PEFT and saves only the adapter (megabytes,
not gigabytes); its eval loads the base model and puts the adapter on it. QLoRA loads the frozen base in 4-bit NF4
through bitsandbytes, which needs CUDA. `zipfit_training.json` in each checkpoint says how it was trained.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zipfit_pipeline.engine.core.devices import compute_dtype
from zipfit_pipeline.engine.core.models import (
    is_adapter,
    load_model_and_tokenizer,
    load_tokenizer,
    locate_pretrained,
    quiet_transformers,
    save_checkpoint,
    with_causal_lm_loss,
)
from zipfit_pipeline.engine.train.settings import LoraSettings, TrainingSettings

TRAINING_FILE = "zipfit_training.json"


def trainable_model(
    pretrained: str, settings: TrainingSettings, device: torch.device, seed: int = 0
) -> tuple[Any, Any]:
    """(model ready to train, tokenizer): only the parameters that train require gradients. A new adapter's random
    initialisation is drawn with `seed`, so that a LoRA run repeats exactly like a full one."""
    dtype = compute_dtype(settings.dtype, device)
    if settings.qlora:
        model, tokenizer = _four_bit_base(pretrained, device, dtype)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
    else:
        # The frozen base of a LoRA run needs no master copy; a full fine-tune updates float32 weights.
        model, tokenizer = load_model_and_tokenizer(pretrained, dtype if settings.lora else torch.float32)
    if settings.lora is not None:
        torch.manual_seed(seed)
        with _peft_quietly():
            model = _with_adapter(model, settings.lora)
    return model, tokenizer


@contextmanager
def _peft_quietly() -> Iterator[None]:
    """PEFT reads transformers' deprecated `is_gradient_checkpointing` whenever it wraps a model: a FutureWarning on
    every LoRA fine-tune and eval that is theirs to fix, silenced here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def _with_adapter(model: Any, lora: LoraSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    target_modules = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,  # type: ignore[arg-type]  # PEFT annotates int; it scales by a float
        lora_dropout=lora.dropout,
        task_type="CAUSAL_LM",
        target_modules=target_modules,
    )
    return get_peft_model(model, config)


def _four_bit_base(pretrained: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    if device.type != "cuda":
        raise RuntimeError(
            f"qlora needs a CUDA GPU (bitsandbytes' 4-bit layers); this step runs on {device}: "
            "set training.qlora: false (plain lora runs anywhere)"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError("qlora needs bitsandbytes: pip install 'zipfit-pipeline[gpu]' (or bitsandbytes)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quiet_transformers()
    path = locate_pretrained(pretrained)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )
    model = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=quantization,
        dtype=dtype,
        device_map={"": device.index or 0},
        trust_remote_code=False,
        use_safetensors=True,
    )
    return with_causal_lm_loss(model), AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def checkpoint_bytes(model: Any, settings: TrainingSettings, device: torch.device) -> int:
    """What one saved fine-tune takes on disk: the adapter's float32 weights, or every weight in the compute dtype."""
    if settings.lora is not None:
        return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    itemsize = torch.empty((), dtype=compute_dtype(settings.dtype, device)).element_size()
    return sum(p.numel() for p in model.parameters()) * itemsize


def save_trained(model: Any, tokenizer: Any, output: Path, settings: TrainingSettings, device: torch.device) -> Path:
    """A LoRA run's adapter, or the whole model in the compute dtype, with how it was trained."""
    dtype = None if settings.lora is not None else compute_dtype(settings.dtype, device)
    saved = save_checkpoint(model, tokenizer, output, dtype)
    (saved / TRAINING_FILE).write_text(
        json.dumps(
            {
                "adapter": settings.lora is not None,
                "qlora": settings.qlora,
                "dtype": str(dtype or compute_dtype(settings.dtype, device)),
            }
        )
    )
    return saved


def load_trained(checkpoint: str, base_model: str, device: torch.device) -> tuple[Any, Any]:
    """A fine-tune as its eval measures it, on `device`: the whole model in float32, or the base model (float32, or
    4-bit again for QLoRA, computing in the dtype it trained with) with the saved adapter on it."""
    if not is_adapter(checkpoint):
        model, tokenizer = load_model_and_tokenizer(checkpoint)
        return model.to(device), tokenizer
    from peft import PeftModel

    how = trained_with(checkpoint)
    if how.get("qlora"):
        # The 4-bit base computes in the dtype it trained with (`training.dtype`, recorded with the adapter).
        dtype = getattr(torch, str(how.get("dtype", "torch.bfloat16")).removeprefix("torch."))
        base, _ = _four_bit_base(base_model, device, dtype)
        with _peft_quietly():
            return PeftModel.from_pretrained(base, checkpoint), load_tokenizer(checkpoint)
    base, _ = load_model_and_tokenizer(base_model)
    with _peft_quietly():
        return PeftModel.from_pretrained(base, checkpoint).to(device), load_tokenizer(checkpoint)


def trained_with(checkpoint: str | Path) -> dict[str, Any]:
    """How a checkpoint was trained (empty for checkpoints saved before this file was written)."""
    file = Path(checkpoint) / TRAINING_FILE
    return json.loads(file.read_text()) if file.is_file() else {}
