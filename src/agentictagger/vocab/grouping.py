"""Grouping a job's items before they are named: fine clusters, merged into descriptor groups.

The offline architect does not cut the embedding space straight into ``target`` pieces (that is
plain KMeans, the baseline). It first over-clusters the job into fine, tight groups (KMeans with
several groups per descriptor), then merges fine groups bottom-up (Ward linkage, size-weighted)
into ``target`` descriptor groups. Each fine group can carry the embedding of its *name*: a name
abstracts away brands, sizes and description boilerplate, so blending it into the fine group's
vector lets groups that are the same kind of item ("Nitrile Gloves", "Latex Gloves") meet even
when their texts differ. ``bench/taxonomy_alignment.py`` measures both variants against KMeans
and BERTopic on the same embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans


@dataclass
class Grouping:
    labels: np.ndarray  # (n,) group index 0..k-1 per item, groups ordered largest first
    fine_labels: np.ndarray  # (n,) fine-cluster index per item
    fine_to_group: np.ndarray  # (m,) group of each fine cluster


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def n_fine_clusters(n_items: int, target: int, per_group: int, min_size: int) -> int:
    """How many fine clusters: ``per_group`` per descriptor, but none smaller than ``min_size``
    items on average, and never fewer than ``target``."""
    return int(max(min(target, n_items), min(target * per_group, n_items // max(1, min_size))))


def fine_clusters(emb: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """KMeans fine clusters: (labels, unit centroids). Empty clusters cannot occur with KMeans++."""
    m = max(1, min(m, len(emb)))
    km = KMeans(n_clusters=m, random_state=seed, n_init=1).fit(emb)
    labels = km.labels_.astype(np.int64)
    cent = np.stack([emb[labels == c].mean(axis=0) if np.any(labels == c) else km.cluster_centers_[c] for c in range(m)])
    return labels, normalise(cent)


def ward_merge(vectors: np.ndarray, sizes: np.ndarray, k: int) -> np.ndarray:
    """Size-weighted Ward agglomeration of ``vectors`` (one per fine cluster) into ``k`` groups.

    Merging a and b costs ``n_a n_b / (n_a + n_b) * |c_a - c_b|^2`` (the rise in within-group
    squared error), with ``c`` the size-weighted mean. scipy/sklearn Ward cannot weight points,
    and a fine cluster of 200 items must weigh more than one of 5; for m <= a few hundred points
    this O(m^3) loop takes milliseconds.
    """
    m = len(vectors)
    k = max(1, min(k, m))
    cent = [np.asarray(v, dtype=np.float64) for v in vectors]
    size = [float(s) for s in sizes]
    members = [[i] for i in range(m)]
    alive = list(range(m))

    def cost(a: int, b: int) -> float:
        d = cent[a] - cent[b]
        return size[a] * size[b] / (size[a] + size[b]) * float(d @ d)

    while len(alive) > k:
        best = (np.inf, -1, -1)
        for ai, a in enumerate(alive):
            for b in alive[ai + 1 :]:
                c = cost(a, b)
                if c < best[0]:
                    best = (c, a, b)
        _, a, b = best
        tot = size[a] + size[b]
        cent[a] = (cent[a] * size[a] + cent[b] * size[b]) / tot
        size[a] = tot
        members[a] += members[b]
        alive.remove(b)
    out = np.zeros(m, dtype=np.int64)
    for g, a in enumerate(alive):
        out[members[a]] = g
    return out


def order_by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel groups 0..k-1, largest first (ties by first appearance), so output is stable."""
    uniq, counts = np.unique(labels, return_counts=True)
    first = {u: int(np.argmax(labels == u)) for u in uniq}
    order = sorted(uniq.tolist(), key=lambda u: (-counts[list(uniq).index(u)], first[u]))
    remap = {u: i for i, u in enumerate(order)}
    return np.array([remap[u] for u in labels.tolist()], dtype=np.int64)
