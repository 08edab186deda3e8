"""The train stage's section of the project file (`training`): hyperparameters, devices, LoRA, seeds, the test
loss's length and batch."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from zipfit_pipeline.engine.core.settings import Settings


class LoraSettings(Settings):
    """A low-rank adapter (PEFT's LoRA): only the adapter trains, and only the adapter is saved."""

    rank: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names, or every linear layer but the output head"
    )


class TrainingSettings(Settings):
    """The fine-tunes: hyperparameters (the paper's: block 1024, weight decay 0.01, max grad norm 1.0), how they run,
    the seeds each selection is trained with, and the test loss."""

    # Which seeds run, where a run runs and whether its weights are kept change no fine-tune's weights.
    NOT_IN_RESULT: ClassVar[frozenset[str]] = frozenset({"seeds", "device", "keep_checkpoints"})

    block_size: int = Field(1024, ge=2, description="tokens per sequence; at most the model's context")
    batch_size: int = Field(4, ge=1, description="sequences per micro-batch")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="micro-batches per optimizer step: tokens per step = batch_size x block_size x this"
    )
    learning_rate: float = Field(5e-5, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_fraction: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    curve_points: int = Field(
        1, ge=0, description="test-loss evaluations during training, evenly spaced; the end is eval_loss's"
    )
    device: str = Field(
        "auto",
        description="auto: a GPU of its own when there are GPUs (one per running step), else "
        "the CPU; or cpu, cuda, cuda:<index>",
    )
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="compute and checkpoint dtype (full fine-tunes keep fp32 master weights); auto: bf16 on "
        "CUDA GPUs that support it, else fp32",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, about a third more compute"
    )
    lora: LoraSettings | None = Field(None, description="train a LoRA adapter instead of every weight")
    qlora: bool = Field(
        False, description="load the frozen base in 4-bit NF4 (bitsandbytes; CUDA only) under the adapter"
    )
    compile: bool = Field(False, description="torch.compile the model's forward pass (pays off on long GPU runs)")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="every (method, budget) is fine-tuned once per seed")
    eval_max_length: int = Field(1024, ge=2)
    eval_batch_size: int = Field(8, ge=1)
    keep_checkpoints: bool = Field(
        True,
        description="false: a fine-tune's weights are deleted once its evals are "
        "recorded (its figures stay); evaluating it again then retrains it",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:<index>, got {device!r}")
        return device

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct non-negative integers")
        return seeds

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSettings:
        if self.qlora and self.lora is None:
            raise ValueError("qlora trains a LoRA adapter on a 4-bit base: set lora too (e.g. lora: {rank: 16})")
        if self.dtype == "fp16" and self.device == "cpu":
            raise ValueError("dtype fp16 needs a GPU (fp16 matmuls on CPUs are emulated); use bf16 or fp32 on the CPU")
        return self

    def result_settings(self) -> dict[str, Any]:
        """The settings that decide a fine-tune's weights besides its texts, model and seed."""
        return self.model_dump(exclude=set(self.NOT_IN_RESULT))
