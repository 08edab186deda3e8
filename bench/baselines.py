"""What the embedding and lexical baselines cost at scale: embedding a pool, D4, embedding similarity and BM25.

The pool is real text found on the machine (`corpus.real_pool`, as `scale.py` uses), the targets HumanEval
problems 0-81. Each step is timed on its own, on the device present (embeddings run on a GPU when there is one):
embedding every pool text with the pipeline's embedder (`embeddings.embed_texts`), D4 over those vectors
(k-means, SemDeDup, k-means, prototypes: `d4.d4_scores`), embedding similarity to the targets, and BM25 of the
pool against every target (`bm25.bm25_scores`). `--random-weights` builds the embedder from its config with
random weights: the same arithmetic, for a machine that has the model's config but not its weights (D4's
duplicate count is then meaningless, its time is not).

Run: .venv/bin/python bench/baselines.py [--docs 185000] [--embedding-model FOLDER] [--random-weights]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from corpus import real_pool, targets

from zipfit_pipeline.engine.select.bm25 import bm25_scores
from zipfit_pipeline.engine.select.d4 import d4_scores
from zipfit_pipeline.engine.select.embeddings import Embedder, embed_texts, load_embedder, model_name
from zipfit_pipeline.engine.select.settings import Bm25Settings, D4Settings, EmbeddingSettings


def random_embedder(settings: EmbeddingSettings) -> Embedder:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from zipfit_pipeline.engine.select.embeddings import model_path

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModel.from_config(AutoConfig.from_pretrained(model_path(settings)))
    return Embedder(model.to(device).eval(), AutoTokenizer.from_pretrained(model_path(settings)), False, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=185_000)
    parser.add_argument("--embedding-model", help="a folder or hub id (default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--random-weights", action="store_true")
    args = parser.parse_args()
    settings = EmbeddingSettings(model=args.embedding_model)

    started = time.perf_counter()
    pool = [d["text"] for docs in real_pool(args.docs).values() for d in docs]
    goal = targets()
    print(
        f"pool: {len(pool):,} documents, {sum(map(len, pool)) / 1e6:.1f} M characters "
        f"(read in {time.perf_counter() - started:.1f}s); {len(goal)} targets",
        flush=True,
    )

    embedder = random_embedder(settings) if args.random_weights else load_embedder(settings)
    embed_texts(embedder, pool[:256], settings)  # warm-up: kernels, allocator
    figures: list[tuple[str, float, str]] = []

    def timed(step: str, run: Callable[[], Any], detail: Callable[[Any, float], str] = lambda _, __: "") -> Any:
        if embedder.device == "cuda":
            import torch

            torch.cuda.synchronize()
        began = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - began
        figures.append((step, seconds, detail(result, seconds)))
        print(f"{step}: {seconds:.1f}s {figures[-1][2]}", flush=True)
        return result

    weights = " (random weights)" if args.random_weights else ""
    vectors = timed(
        "embed the pool",
        lambda: embed_texts(embedder, pool, settings),
        lambda _, s: f"{len(pool) / s:,.0f} texts/s on {embedder.device}, {model_name(settings)}{weights}",
    )
    result = timed(
        "D4 (k-means, SemDeDup, k-means, prototypes)",
        lambda: d4_scores(vectors, D4Settings()),
        lambda r, _: f"{r.clusters:,} clusters, {r.duplicates:,} near-duplicates dropped",
    )
    centroid = embed_texts(embedder, goal, settings).astype(np.float64).mean(axis=0)
    timed("embedding similarity (ranking)", lambda: vectors @ (centroid / np.linalg.norm(centroid)))
    timed("BM25 against every target", lambda: bm25_scores(pool, goal, Bm25Settings()))
    assert np.isfinite(result.scores).sum() == len(pool) - result.duplicates
    print("\n| step | seconds | |\n|---|---:|---|")
    for step, seconds, detail in figures:
        print(f"| {step} | {seconds:.1f} | {detail} |")


if __name__ == "__main__":
    main()
