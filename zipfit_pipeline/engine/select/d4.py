"""D4 (Tirumala et al., 2023): diversify by pruning in embedding space, without looking at the target.

1. k-means on the unit embeddings (scikit-learn);
2. SemDeDup: within each cluster, texts sorted farthest from the centroid first; a text whose cosine similarity
   to any text before it exceeds `duplicate_similarity` is dropped (so of a group of near-duplicates, the one
   farthest from the centroid stays, as SemDeDup's `keep_hard`);
3. k-means again on what is left;
4. SSL-prototype pruning: the texts closest to their centroid are the most prototypical and go first.

D4 prunes each cluster by the same fraction. As an order, that is: texts by their distance's percentile within
their cluster, farthest first (equal percentiles, such as every cluster's farthest text, by distance, so that no
source wins by coming first in the pool); any prefix of it (a token budget) keeps about the same hardest share of
every cluster. Dropped duplicates score -inf and are never chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from zipfit_pipeline.engine.select.settings import D4Settings

DEDUP_BLOCK = 1024  # columns of a cluster's similarity matrix computed at a time: memory is block x cluster size


@dataclass(frozen=True)
class D4Result:
    scores: np.ndarray  # per text: higher is earlier in D4's order; -inf if dropped
    duplicates: int
    clusters: int


def cluster_count(n: int, configured: int | None) -> int:
    return max(1, min(n, configured or round(math.sqrt(n))))


def kmeans(vectors: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each row, unit centroids)."""
    from sklearn.cluster import KMeans

    fitted = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(vectors)
    centroids = fitted.cluster_centers_.astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return fitted.labels_, centroids


def semdedup(vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each row is kept: within each cluster, rows in order of decreasing distance to the centroid, a row is
    dropped when its cosine similarity to an earlier row exceeds `threshold`."""
    keep = np.ones(len(vectors), dtype=bool)
    for cluster in range(len(centroids)):
        members = np.flatnonzero(labels == cluster)
        if len(members) < 2:
            continue
        similarity_to_centroid = vectors[members] @ centroids[cluster]
        members = members[np.argsort(similarity_to_centroid, kind="stable")]  # farthest first
        x = vectors[members]
        for start in range(1, len(members), DEDUP_BLOCK):
            block = x[start : start + DEDUP_BLOCK]
            similarity = block @ x[: start + len(block)].T  # each block row against every row up to the block's end
            earlier = np.arange(start + len(block))[None, :] < np.arange(start, start + len(block))[:, None]
            keep[members[start : start + len(block)]] = ~np.any((similarity > threshold) & earlier, axis=1)
    return keep


def prototype_order(vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Scores (higher first) ordering rows by their cosine distance's percentile within their cluster, then by the
    distance itself: the least prototypical of every cluster first."""
    distance = 1.0 - np.einsum("ij,ij->i", vectors, centroids[labels]).astype(np.float64)
    percentile = np.empty(len(vectors), dtype=np.float64)
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        ranks = np.argsort(np.argsort(distance[members], kind="stable"), kind="stable")
        percentile[members] = (ranks + 1) / len(members)
    order = np.lexsort((-distance, -percentile))  # the last key sorts first
    scores = np.empty(len(vectors), dtype=np.float64)
    scores[order] = np.arange(len(vectors), 0, -1, dtype=np.float64)
    return scores


def d4_scores(vectors: np.ndarray, settings: D4Settings) -> D4Result:
    """D4's order over unit `vectors` as scores for `rank_by_score` (ties keep pool order)."""
    scores = np.full(len(vectors), -np.inf)
    if not len(vectors):
        return D4Result(scores, 0, 0)
    labels, centroids = kmeans(vectors, cluster_count(len(vectors), settings.clusters), settings.seed)
    kept = np.flatnonzero(semdedup(vectors, labels, centroids, settings.duplicate_similarity))
    k = cluster_count(len(kept), settings.clusters)
    labels, centroids = kmeans(vectors[kept], k, settings.seed)
    scores[kept] = prototype_order(vectors[kept], labels, centroids)
    return D4Result(scores, len(vectors) - len(kept), k)
