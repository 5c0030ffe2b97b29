"""Embedding assigner: nearest child by cosine similarity at each level, vectorised per parent node."""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol, Sequence

import numpy as np

from agentictagger.assign.base import ItemLike
from agentictagger.embed import descriptor_rows
from agentictagger.structures.vocabulary import ROOT_ID, Descriptor, Vocabulary
from agentictagger.structures.vocabulary import descriptor_text as vocabulary_text


class TextEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, d) float32, L2-normalised."""
        ...


def descriptor_text(d: Descriptor) -> str:
    return vocabulary_text(d.name, d.definition)


class DescriptorIndex:
    """Embeddings of every descriptor, row-aligned, with the child rows of each node precomputed."""

    def __init__(self, vocab: Vocabulary, encoder: TextEncoder) -> None:
        self.vocab = vocab
        self.ids = [d.id for d in vocab]
        self.row = {did: i for i, did in enumerate(self.ids)}
        # A descriptor with prototypes (rows written by the build: its fine clusters' centroids,
        # blended with its current name and definition by their name weights) is matched by its
        # best row; others by "name: definition".
        self.matrix, self.starts = descriptor_rows(
            [vocab.prototypes.get(did) for did in self.ids],
            lambda idx: encoder.encode([descriptor_text(vocab[self.ids[i]]) for i in idx]),
            [vocab.name_weights.get(did) for did in self.ids],
        )
        self._children: dict[str, tuple[list[str], np.ndarray]] = {}
        self._subtree: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def rows_of(self, did: str) -> list[int]:
        i = self.row[did]
        return list(range(self.starts[i], self.starts[i + 1]))

    def children(self, node: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Child ids, their stacked matching rows, and each child's first row (for reduceat)."""
        hit = self._children.get(node)
        if hit is None:
            ids = [c.id for c in self.vocab.children(node)]
            rows: list[int] = []
            starts: list[int] = []
            for c in ids:
                starts.append(len(rows))
                rows.extend(self.rows_of(c))
            mat = self.matrix[rows] if rows else self.matrix[:0]
            hit = (ids, mat, np.asarray(starts, dtype=np.int64))
            self._children[node] = hit
        return hit

    def subtree(self, node: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of every proper descendant of each child of ``node``, grouped by child, and the
        start offset of each child's group (for ``np.maximum.reduceat``); children without
        descendants get their own row so every group is non-empty."""
        hit = self._subtree.get(node)
        if hit is None:
            rows: list[int] = []
            starts: list[int] = []
            for c in self.vocab.children(node):
                starts.append(len(rows))
                desc = [r for d in self._descendants(c.id) for r in self.rows_of(d.id)]
                rows.extend(desc or self.rows_of(c.id))
            hit = (np.asarray(rows, dtype=np.int64), np.asarray(starts, dtype=np.int64))
            self._subtree[node] = hit
        return hit

    def _descendants(self, node: str) -> list[Descriptor]:
        out: list[Descriptor] = []
        stack = list(self.vocab.children(node))
        while stack:
            d = stack.pop()
            out.append(d)
            stack.extend(self.vocab.children(d.id))
        return out

    def scores(self, x: np.ndarray, node: str, lookahead: float = 0.0) -> np.ndarray:
        """(n, children) scores: cosine similarity to each child, blended with the best similarity
        anywhere in the child's subtree. A broad name ("Industrial Electrical") often matches an
        item less well than one of its specific descendants ("Capacitors"); looking ahead lets the
        specific match pull the item into the right branch (measured on Scientific, see RESULTS)."""
        _, mat, starts = self.children(node)
        sims = np.maximum.reduceat(x @ mat.T, starts, axis=1) if len(starts) else np.zeros((len(x), 0), np.float32)
        if lookahead <= 0:
            return sims
        rows, starts = self.subtree(node)
        deep = np.maximum.reduceat(x @ self.matrix[rows].T, starts, axis=1)
        return (1.0 - lookahead) * sims + lookahead * np.maximum(sims, deep)

    def shortlist(self, vec: np.ndarray, node: str, m: int, lookahead: float = 0.0) -> list[str]:
        """The ``m`` children of ``node`` scoring best for ``vec``, in vocabulary order (prefix-stable prompts)."""
        ids, _, _ = self.children(node)
        if len(ids) <= m:
            return list(ids)
        sims = self.scores(vec[None, :], node, lookahead)[0]
        keep = set(np.argsort(-sims, kind="stable")[:m].tolist())
        return [c for i, c in enumerate(ids) if i in keep]


class EmbeddingAssigner:
    """At each level, the child whose "name: definition" embedding is closest to the item's text.

    A child's score blends its own similarity with the best similarity in its subtree
    (``lookahead``; 0 = the child alone). An item stops at a node without children, or where its best similarity is below the level's
    calibrated cut (``stop_quantile`` of the best similarities of the items assigned together) or
    below ``min_similarity``.
    """

    name = "embedding"

    def __init__(
        self,
        encoder: TextEncoder,
        stop_quantile: float = 0.0,
        min_similarity: float | None = None,
        max_level: int | None = None,
        lookahead: float = 0.5,
    ) -> None:
        self.encoder = encoder
        self.lookahead = lookahead
        self.stop_quantile = stop_quantile
        self.min_similarity = min_similarity
        self.max_level = max_level
        self._index: tuple[int, DescriptorIndex] | None = None
        self.stats: dict = {}

    def index(self, vocab: Vocabulary) -> DescriptorIndex:
        if self._index is None or self._index[0] != id(vocab):
            self._index = (id(vocab), DescriptorIndex(vocab, self.encoder))
        return self._index[1]

    def assign(self, items: Sequence[ItemLike], vocab: Vocabulary) -> list[list[str]]:
        if not items:
            return []
        x = self.encoder.encode([it.text for it in items]).astype(np.float32)
        return self.assign_vectors(x, vocab)

    def assign_vectors(self, x: np.ndarray, vocab: Vocabulary) -> list[list[str]]:
        index = self.index(vocab)
        n = x.shape[0]
        paths: list[list[str]] = [[] for _ in range(n)]
        node = [ROOT_ID] * n
        active = np.arange(n)
        level = 0
        stopped_by_threshold = 0
        while active.size and (self.max_level is None or level < self.max_level):
            level += 1
            groups: dict[str, list[int]] = defaultdict(list)
            for i in active.tolist():
                groups[node[i]].append(i)
            picks: list[tuple[np.ndarray, list[str], np.ndarray, np.ndarray]] = []
            for parent, members in groups.items():
                ids, _, _ = index.children(parent)
                if not ids:
                    continue  # a leaf: these items are done
                idx = np.asarray(members)
                sims = index.scores(x[idx], parent, self.lookahead)
                best = sims.argmax(axis=1)
                picks.append((idx, ids, best, sims[np.arange(len(idx)), best]))
            if not picks:
                break
            all_best = np.concatenate([p[3] for p in picks])
            cut = -np.inf
            if self.stop_quantile > 0:
                cut = float(np.quantile(all_best, self.stop_quantile))
            if self.min_similarity is not None:
                cut = max(cut, self.min_similarity)
            nxt: list[int] = []
            for idx, ids, best, score in picks:
                for i, b, s in zip(idx.tolist(), best.tolist(), score.tolist()):
                    if s < cut:
                        stopped_by_threshold += 1
                        continue
                    paths[i].append(ids[b])
                    node[i] = ids[b]
                    nxt.append(i)
            active = np.asarray(nxt, dtype=np.int64)
        self.stats = {"stopped_by_threshold": self.stats.get("stopped_by_threshold", 0) + stopped_by_threshold}
        return paths
