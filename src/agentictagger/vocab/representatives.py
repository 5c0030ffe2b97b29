"""K-medoids representatives: the small, diverse view of a group that goes into a prompt.

The same operation picks the items an architect sees and distills a pile of failure reports
into a few representative ones (paper §4.1, ``Rep(·)``).
"""

from __future__ import annotations

import kmedoids
import numpy as np

# FasterPAM needs the full distance matrix; beyond this many points we first draw a uniform
# sample, which keeps memory at ~16 MB and barely moves the medoids.
_MAX_POINTS = 2000


def select_representatives(embeddings: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """Indices (into ``embeddings``) of up to ``k`` medoids under cosine distance, medoid order."""
    n = len(embeddings)
    if n == 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    pool = np.arange(n)
    if n > _MAX_POINTS:
        pool = np.sort(rng.choice(n, _MAX_POINTS, replace=False))
    x = embeddings[pool].astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    dist = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    result = kmedoids.fasterpam(dist, k, random_state=seed, n_cpu=1)
    medoids = [int(pool[m]) for m in np.asarray(result.medoids)]
    # Keep a stable order (largest cluster first) so prompts are reproducible.
    sizes = np.bincount(np.asarray(result.labels), minlength=k)
    order = np.argsort(-sizes[: len(medoids)], kind="stable")
    return [medoids[i] for i in order]
