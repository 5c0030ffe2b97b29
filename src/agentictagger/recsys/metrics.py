"""Recall@k and NDCG@k for next-item prediction with one held-out target per user.

With a single relevant item, IDCG = 1, so NDCG@k = 1 / log2(rank + 2) for a 0-based rank < k,
and 0 otherwise. Rankings are rows of item indices, best first, padded with -1 where a model
returned fewer than k items (e.g. a constrained beam with few valid items).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def _hit_ranks(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """0-based rank of the target within the top k of each row, or -1."""
    ranked = np.asarray(ranked)
    targets = np.asarray(targets)
    if ranked.ndim != 2 or ranked.shape[0] != targets.shape[0]:
        raise ValueError(f"ranked must be (n_users, n_ranked) matching targets; got {ranked.shape} vs {targets.shape}")
    top = ranked[:, :k]
    hits = top == targets[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1), -1)


def recall_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> float:
    r = _hit_ranks(ranked, targets, k)
    return float((r >= 0).mean()) if len(r) else 0.0


def ndcg_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> float:
    r = _hit_ranks(ranked, targets, k)
    if not len(r):
        return 0.0
    gains = np.where(r >= 0, 1.0 / np.log2(np.maximum(r, 0) + 2.0), 0.0)
    return float(gains.mean())


def evaluate_rankings(ranked: np.ndarray, targets: np.ndarray, ks: Iterable[int] = (5, 10)) -> dict[str, float]:
    """{"R@5", "N@5", "R@10", "N@10"} (for ks=(5, 10))."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"R@{k}"] = recall_at_k(ranked, targets, k)
        out[f"N@{k}"] = ndcg_at_k(ranked, targets, k)
    return out


def topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (full-ranking models such as SASRec)."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def sample_negatives(n_items: int, exclude: Sequence[np.ndarray], n_neg: int = 100, seed: int = 0) -> np.ndarray:
    """(n_users, n_neg) items drawn uniformly without replacement from the items *not* in each
    user's ``exclude`` set (pass the user's whole sequence: history and target), as in the
    sampled-negative protocol of SASRec / the paper's §5.2 (100 negatives per user).

    The draw depends only on ``seed`` and the inputs, so every model is scored on the same negatives."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(exclude), n_neg), dtype=np.int64)
    for u, ex in enumerate(exclude):
        banned = set(np.asarray(ex, dtype=np.int64).tolist())
        if n_items - len(banned) < n_neg:
            raise ValueError(f"user row {u}: only {n_items - len(banned)} items outside their history; "
                             f"cannot draw {n_neg} negatives")
        picked: list[int] = []
        seen: set[int] = set()
        while len(picked) < n_neg:
            for c in rng.integers(0, n_items, size=2 * (n_neg - len(picked))).tolist():
                if c not in banned and c not in seen:
                    seen.add(c)
                    picked.append(c)
                    if len(picked) == n_neg:
                        break
        out[u] = picked
    return out


def evaluate_sampled(scores: np.ndarray, ks: Iterable[int] = (5, 10, 20, 50)) -> dict[str, float]:
    """Recall@k / NDCG@k when each row ranks its positive (column 0) against sampled negatives
    (the other columns). A negative scoring *equal* to the positive counts as ranked above it
    (pessimistic tie-breaking: a constant scorer gets nothing)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (n_users, 1 + n_negatives); got {scores.shape}")
    rank = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    out: dict[str, float] = {}
    for k in ks:
        hit = rank < k
        out[f"R@{k}"] = float(hit.mean()) if len(rank) else 0.0
        out[f"N@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()) if len(rank) else 0.0
    return out
