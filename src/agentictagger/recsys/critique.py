"""Critique-constrained decoding (paper §5.3).

A user simulator reads the text of the item the user will interact with next and names the
level-1 descriptors it considers relevant; the generative recommender's beam search is then
restricted to items whose level-1 descriptor is in that set. This "leaks" target information on
purpose: it tests whether the descriptors carve the catalogue into subsets that a reader of the
item text can name.

Simulators (both return, per target text, a list of level-1 descriptor ids):

* :class:`EmbeddingSimulator` — offline: the ``k`` level-1 descriptors whose "name: definition"
  embedding is most similar to the item text. ``encode(texts) -> (n, d)`` is injected (e.g.
  ``agentictagger.embed.Embedder().encode``).
* :class:`CallableSimulator` — any picker ``choose(text, descriptors) -> list of ids``, e.g. an LLM
  call built by the caller on any backend (recsys never imports the LLM layer).
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from agentictagger.embed import normalise

from .sidtable import Level1Descriptor

Encode = Callable[[list[str]], np.ndarray]


class UserSimulator(Protocol):
    name: str

    def allowed(self, texts: Sequence[str]) -> list[list[str]]: ...


class EmbeddingSimulator:
    def __init__(self, descriptors: Sequence[Level1Descriptor], encode: Encode, k: int = 2) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.descriptors = list(descriptors)
        self.encode = encode
        self.k = min(k, len(self.descriptors))
        self.name = f"offline-embedding-top{self.k}"
        self._d = normalise(encode([d.text for d in self.descriptors]))

    def allowed(self, texts: Sequence[str]) -> list[list[str]]:
        sims = normalise(self.encode(list(texts))) @ self._d.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, : self.k]
        return [[self.descriptors[j].id for j in row] for row in top]


class CallableSimulator:
    """Wraps ``choose(text, descriptors) -> ids``; unknown ids are an error naming the text."""

    def __init__(self, descriptors: Sequence[Level1Descriptor], choose: Callable[[str, list[Level1Descriptor]], Sequence[str]],
                 name: str = "llm") -> None:
        self.descriptors = list(descriptors)
        self.choose = choose
        self.name = name
        self._ids = {d.id for d in self.descriptors}

    def allowed(self, texts: Sequence[str]) -> list[list[str]]:
        out = []
        for t in texts:
            ids = [str(i) for i in self.choose(t, self.descriptors)]
            bad = [i for i in ids if i not in self._ids]
            if bad:
                raise ValueError(f"simulator {self.name} returned unknown level-1 ids {bad} for text {t[:80]!r}; "
                                 f"valid ids: {sorted(self._ids)}")
            out.append(ids)
        return out


def group_index(item_level1: Sequence[str], descriptors: Sequence[Level1Descriptor]) -> tuple[np.ndarray, list[str]]:
    """Integer group per item (index into the returned id list). Level-1 ids missing from the
    vocabulary still get a group, so an item is never silently dropped."""
    ids = [d.id for d in descriptors]
    pos = {d: i for i, d in enumerate(ids)}
    for lv in item_level1:
        if lv not in pos:
            pos[lv] = len(ids)
            ids.append(lv)
    return np.array([pos[lv] for lv in item_level1], dtype=np.int64), ids


def allowed_matrix(allowed: Sequence[Sequence[str]], group_ids: Sequence[str]) -> np.ndarray:
    pos = {g: i for i, g in enumerate(group_ids)}
    m = np.zeros((len(allowed), len(group_ids)), dtype=bool)
    for r, ids in enumerate(allowed):
        for i in ids:
            if i not in pos:
                raise ValueError(f"allowed set {r}: descriptor {i!r} is not a known level-1 descriptor")
            m[r, pos[i]] = True
    return m
