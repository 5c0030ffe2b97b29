"""SASRec (Kang & McAuley 2018) on item IDs, trained with full-softmax cross-entropy.

This is the ranking model of :mod:`.ranking` with one-hot item-ID features (one embedding per
item), kept under its familiar name. The loss matters for the ranking of methods: the original
SASRec uses binary cross-entropy with one sampled negative; full softmax over all items (used here)
is markedly stronger on Amazon data, so every table states the loss. Items are ranked over the whole
catalogue; history items are not masked, as the generative model can also emit them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from .data import Samples, Split
from .metrics import evaluate_rankings
from .ranking import ItemFeatures, RankerConfig, RankerRun, fit_ranker, rank_items
from .train import TrainConfig


@dataclass
class SASRecConfig(RankerConfig):
    """:class:`RankerConfig` plus the catalogue size (kept for callers that pass it)."""

    n_items: int = 0

    def ranker(self) -> RankerConfig:
        return RankerConfig(**{f.name: getattr(self, f.name) for f in fields(RankerConfig)})


def fit_sasrec(split: Split, n_items: int, config: SASRecConfig | None = None,
               train_config: TrainConfig | None = None, device: torch.device | None = None,
               checkpoint_dir: str | Path | None = None) -> RankerRun:
    """Item-ID SASRec: :func:`.ranking.fit_ranker` with :meth:`ItemFeatures.item_ids`
    (resumable with ``checkpoint_dir``)."""
    tc = train_config or TrainConfig(lr=0.001, weight_decay=0.0)
    cfg = config or SASRecConfig(n_items=n_items, max_len=tc.max_history)
    return fit_ranker(split, ItemFeatures.item_ids(n_items), cfg.ranker(), tc, device, checkpoint_dir)


def evaluate_sasrec(run: RankerRun, samples: Samples) -> dict[str, float]:
    return evaluate_rankings(rank_items(run.model, samples.histories, 10), samples.targets)
