"""SASRec (Kang & McAuley 2018) on item IDs, trained with full-softmax cross-entropy.

The loss matters for the ranking of methods: the original SASRec uses binary cross-entropy with one
sampled negative; full softmax over all items (used here) is markedly stronger on Amazon data, so
every table states the loss. Training uses the same split, history cap, budget, seed, AdamW +
warmup/cosine and early stopping on validation N@10 as the generative model. Items are ranked over
the whole catalogue; history items are not masked, as the generative model can also emit them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Samples, Split
from .metrics import evaluate_rankings, topk_from_scores
from .train import FitResult, TrainConfig, _subsample, default_device, run_fit, set_seed


@dataclass
class SASRecConfig:
    n_items: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.3
    max_len: int = 20
    loss: str = "ce"  # full-softmax cross-entropy over all items

    def to_dict(self) -> dict:
        return asdict(self)


class SASRec(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # index 0 = padding; item i is embedding row i + 1
        self.item = nn.Embedding(cfg.n_items + 1, cfg.d_model, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.num_heads, cfg.d_model * 4, cfg.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) right-aligned item rows (0 = pad) -> (B, L, D), causal."""
        L = seq.shape[1]
        pos = torch.arange(L, device=seq.device)
        x = self.drop(self.item(seq) * self.cfg.d_model ** 0.5 + self.pos(pos)[None])
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), 1)
        # Block future and padding keys, but let every position see itself: a fully masked row
        # (a leading pad) would give NaNs that leak through later layers.
        blocked = causal[None] | (seq == 0)[:, None, :]
        blocked &= ~torch.eye(L, dtype=torch.bool, device=seq.device)[None]
        mask = blocked.repeat_interleave(self.cfg.num_heads, dim=0)
        x = self.blocks(x, mask=mask)
        return self.norm(x)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item.weight[1:].t()


def _right_aligned(hists, max_len: int) -> torch.Tensor:
    out = np.zeros((len(hists), max_len), dtype=np.int64)
    for j, h in enumerate(hists):
        h = np.asarray(h)[-max_len:]
        out[j, max_len - len(h):] = h + 1
    return torch.from_numpy(out)


@dataclass
class SASRecRun:
    model: SASRec
    fit: FitResult
    config: SASRecConfig
    train_config: TrainConfig


def fit_sasrec(split: Split, n_items: int, config: SASRecConfig | None = None,
               train_config: TrainConfig | None = None, device: torch.device | None = None) -> SASRecRun:
    """Train on each user's training prefix, predicting the next item at every position
    (equivalent to the sliding windows of the generative model, in one pass per user)."""
    tc = train_config or TrainConfig(lr=0.001, weight_decay=0.0)
    cfg = config or SASRecConfig(n_items=n_items, max_len=tc.max_history)
    device = device or default_device()
    set_seed(tc.seed)
    model = SASRec(cfg).to(device)
    seqs = [s for s in split.train_sequences if len(s) >= 2]
    # Sequences longer than max_len + 1 are cut into chunks so every transition is trained on.
    chunks = []
    for s in seqs:
        for end in range(len(s), 1, -cfg.max_len):
            chunks.append(s[max(0, end - cfg.max_len - 1): end])
    lengths = np.array([len(c) for c in chunks])
    val = _subsample(split.valid, tc.val_users, tc.seed)

    def step_loss(batch: np.ndarray) -> torch.Tensor:
        inp = _right_aligned([chunks[i][:-1] for i in batch], cfg.max_len).to(device)
        tgt = _right_aligned([chunks[i][1:] for i in batch], cfg.max_len).to(device)
        h = model.hidden(inp)
        valid = tgt > 0
        logits = model.scores(h[valid])
        return F.cross_entropy(logits, tgt[valid] - 1)

    def validate() -> dict[str, float]:
        return evaluate_rankings(recommend_sasrec(model, val.histories, 10, device=device), val.targets)

    fit = run_fit(model, step_loss, lengths, validate, tc, name="sasrec")
    return SASRecRun(model, fit, cfg, tc)


@torch.no_grad()
def recommend_sasrec(model: SASRec, hists, k: int = 20, batch_size: int = 512,
                     device: torch.device | None = None) -> np.ndarray:
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(hists), batch_size):
        seq = _right_aligned(hists[i: i + batch_size], model.cfg.max_len).to(device)
        s = model.scores(model.hidden(seq)[:, -1, :])
        out.append(topk_from_scores(s.float().cpu().numpy(), k))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def evaluate_sasrec(run: SASRecRun, samples: Samples) -> dict[str, float]:
    return evaluate_rankings(recommend_sasrec(run.model, samples.histories, 10), samples.targets)
