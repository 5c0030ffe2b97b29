"""A feature-aware sequential ranking model (paper §5.2): SASRec whose item representation is a
configurable bag of discrete features.

Each item is a short tuple of feature tokens (:class:`ItemFeatures`); its embedding is the **sum**
of its tokens' embeddings. Which tokens an item has decides what the model can share:

* ``item_id`` — one token per item (one-hot item IDs: plain SASRec; nothing is shared);
* ``descriptors`` — the agentictagger path (one token per descriptor, ids global, so "Nail Polish"
  is one shared embedding for every item under it) plus the resolver token;
* ``rq-vae`` / ``rq-kmeans`` — one token per codebook level plus the dedup digit;
* ``item_id+descriptors`` — both bags summed: item memorisation plus shared descriptor signal.

The same embeddings are used for the input sequence and, tied, as the output layer: scores are the
dot product of the last hidden state with every item's summed embedding, trained with full-softmax
cross-entropy over all items (stronger than the original SASRec's one-negative BCE on Amazon data).
Items are ranked over the whole catalogue; history items are not masked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Samples, Split
from .metrics import evaluate_rankings, evaluate_sampled, topk_from_scores
from .tokenizers import ItemCodes
from .train import FitResult, TrainConfig, _subsample, default_device, run_fit, set_seed, training_fingerprint


@dataclass
class ItemFeatures:
    """Per item index, a tuple of feature-token ids in ``[1, n_tokens)`` (0 is padding)."""

    name: str
    tokens: list[tuple[int, ...]]
    n_tokens: int
    description: str = ""
    meta: dict = field(default_factory=dict)
    #: Every item's first token is its own ID (one-hot item IDs, alone or first in a sum).
    id_first: bool = False

    def __post_init__(self) -> None:
        for i, t in enumerate(self.tokens):
            if not t:
                raise ValueError(f"{self.name}: item index {i} has no feature tokens")
            if min(t) < 1 or max(t) >= self.n_tokens:
                raise ValueError(f"{self.name}: item index {i} has token ids {t} outside [1, {self.n_tokens})")

    @property
    def n_items(self) -> int:
        return len(self.tokens)

    @classmethod
    def item_ids(cls, n_items: int) -> "ItemFeatures":
        """One-hot item IDs: item i is token i + 1."""
        return cls("item_id", [(i + 1,) for i in range(n_items)], n_items + 1, "one embedding per item (one-hot item ID)",
                   id_first=True)

    @classmethod
    def warm_item_ids(cls, train_counts: np.ndarray, min_count: int) -> "ItemFeatures":
        """Item IDs for items seen at least ``min_count`` times in training; the rarer items share
        one token (item i is token i + 1, the shared one is ``n_items + 1``). With full-softmax
        training every rare item's own ID embedding is pushed down as a negative at every step and
        pulled up only by its few positives, so beside descriptor tokens it drags its item down;
        a shared row is trained by all rare items together."""
        counts = np.asarray(train_counts)
        n = len(counts)
        tokens = [(i + 1,) if counts[i] >= min_count else (n + 1,) for i in range(n)]
        rare = int((counts < min_count).sum())
        return cls("warm_item_id", tokens, n + 2,
                   f"one embedding per item with >= {min_count} training interactions; the {rare} rarer items share one",
                   {"items_sharing_the_rare_id": rare})

    @classmethod
    def from_codes(cls, codes: ItemCodes, name: str | None = None) -> "ItemFeatures":
        """Every token of a tokenizer's code (path descriptors / codebook digits and the resolver).

        Token ids of :class:`ItemCodes` start at ``N_SPECIAL`` (2), so they are valid here as they
        are; rows 0 and 1 of the table stay unused."""
        meta = {k: v for k, v in codes.meta.items() if k in ("collision_rate", "distinct_codes_before_dedup", "max_items_per_code")}
        if "rqvae" in codes.meta:
            meta["rqvae_codes_used_per_level"] = codes.meta["rqvae"]["codes_used_per_level"]
            meta["rqvae_final_loss"] = codes.meta["rqvae"]["loss_curve"][-1]
        return cls(name or codes.name, [tuple(c) for c in codes.codes], codes.vocab_size, codes.description, meta)

    def __add__(self, other: "ItemFeatures") -> "ItemFeatures":
        """Both bags per item (the second's token ids shifted past the first's table)."""
        if other.n_items != self.n_items:
            raise ValueError(f"cannot combine {self.name} ({self.n_items} items) with {other.name} ({other.n_items})")
        off = self.n_tokens - 1  # other's pad row 0 is dropped
        tokens = [a + tuple(t + off for t in b) for a, b in zip(self.tokens, other.tokens)]
        return ItemFeatures(f"{self.name}+{other.name}", tokens, self.n_tokens + other.n_tokens - 1,
                            f"{self.description}; plus {other.description}", {**self.meta, **other.meta},
                            id_first=self.id_first)

    def padded(self) -> torch.Tensor:
        """(n_items, max tokens) LongTensor, right-padded with 0."""
        T = max(len(t) for t in self.tokens)
        out = np.zeros((self.n_items, T), dtype=np.int64)
        for i, t in enumerate(self.tokens):
            out[i, : len(t)] = t
        return torch.from_numpy(out)

    def summary(self) -> dict:
        lens = np.array([len(t) for t in self.tokens])
        used = len({x for t in self.tokens for x in t})
        return {"features": self.name, "description": self.description, "tokens_per_item": float(lens.mean()),
                "distinct_feature_tokens": used, "embedding_rows": self.n_tokens, **self.meta}


@dataclass
class RankerConfig:
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.3
    max_len: int = 20
    loss: str = "ce"  # full-softmax cross-entropy over all items
    ff_mult: int = 4  # feed-forward width = ff_mult * d_model (the original SASRec uses 1)
    # "pre_norm": torch's pre-norm encoder layer (GELU), padding keys masked, leading padding trimmed.
    # "sasrec": the original SASRec block as public implementations write it: layer norm on the
    # query only, ReLU feed-forward, padding zeroed after each block, only the causal mask (padding
    # keys visible), every history padded to max_len, Xavier-normal initialisation.
    block: str = "pre_norm"
    # Item-ID dropout (features whose first token is the item ID, e.g. item_id+agentictagger): at
    # every training step each item's ID token is left out of its bag with this probability, so
    # the other tokens learn to stand for the item alone; at evaluation, items with fewer than
    # ``id_min_count`` training interactions are represented without their ID token.
    id_dropout: float = 0.0
    id_min_count: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _SASRecBlock(nn.Module):
    """One block of the original SASRec: attention with the layer-normed sequence as the query
    and the raw sequence as keys/values, then a layer-normed position-wise ReLU feed-forward."""

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d, eps=1e-8)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ff_norm = nn.LayerNorm(d, eps=1e-8)
        self.ff1, self.ff2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, causal: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.attn_norm(x), x, x, attn_mask=causal, need_weights=False)[0] + x
        x = self.ff_norm(x)
        x = self.drop2(self.ff2(self.drop1(F.relu(self.ff1(x))))) + x
        return x.masked_fill(pad, 0.0)


class FeatureSASRec(nn.Module):
    """SASRec (causal self-attention, pre-norm) over summed item-feature embeddings."""

    def __init__(self, cfg: RankerConfig, features: ItemFeatures) -> None:
        super().__init__()
        self.cfg = cfg
        self.features_name = features.name
        self.n_items = features.n_items
        self.tok = nn.Embedding(features.n_tokens, cfg.d_model, padding_idx=0)
        self.register_buffer("item_tokens", features.padded(), persistent=False)
        self.id_first = features.id_first
        if (cfg.id_dropout > 0 or cfg.id_min_count > 0) and not features.id_first:
            raise ValueError(f"item-ID dropout needs features whose first token is the item ID; {features.name} has none")
        self.id_keep: torch.Tensor | None = None
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        if cfg.block == "sasrec":
            self.blocks = nn.ModuleList(_SASRecBlock(cfg.d_model, cfg.num_heads, cfg.d_model * cfg.ff_mult, cfg.dropout)
                                        for _ in range(cfg.num_layers))
            self.norm = nn.LayerNorm(cfg.d_model, eps=1e-8)
            self.drop = nn.Dropout(cfg.dropout)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.xavier_normal_(self.tok.weight)
            nn.init.xavier_normal_(self.pos.weight)
            with torch.no_grad():
                self.tok.weight[0].zero_()
            return
        if cfg.block != "pre_norm":
            raise ValueError(f"unknown block {cfg.block!r}; choose pre_norm or sasrec")
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.num_heads, cfg.d_model * cfg.ff_mult, cfg.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.tok.weight, std=0.02)
        with torch.no_grad():
            self.tok.weight[0].zero_()
        nn.init.normal_(self.pos.weight, std=0.02)

    def item_table(self) -> torch.Tensor:
        """(n_items, D): each item's embedding, the sum of its feature tokens' embeddings (without
        the ID token where item-ID dropout or the evaluation's cold-item rule leaves it out)."""
        emb = self.tok(self.item_tokens)
        keep = None
        if self.id_first and self.training and self.cfg.id_dropout > 0:
            keep = torch.rand(emb.shape[0], device=emb.device) >= self.cfg.id_dropout
        elif self.id_first and not self.training and self.id_keep is not None:
            keep = self.id_keep
        if keep is not None:
            emb = torch.cat([emb[:, :1] * keep[:, None, None].to(emb.dtype), emb[:, 1:]], dim=1)
        return emb.sum(dim=1)

    def keep_ids_of(self, train_counts: np.ndarray) -> None:
        """At evaluation, items with fewer than ``cfg.id_min_count`` training interactions go without their ID."""
        if self.cfg.id_min_count > 0 and self.id_first:
            self.id_keep = torch.as_tensor(np.asarray(train_counts) >= self.cfg.id_min_count,
                                           device=self.item_tokens.device)

    def hidden(self, seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) right-aligned item rows (0 = pad, item i = i + 1) -> (B, L, D), causal.

        ``L`` may be shorter than ``max_len`` (leading all-pad columns trimmed, see
        :func:`trim_padding`): positions count from the right, so the last column is always
        position ``max_len - 1`` and the outputs at item positions are the same as untrimmed."""
        table = self.item_table() if table is None else table
        rows = torch.cat([table.new_zeros(1, table.shape[1]), table])
        L = seq.shape[1]
        pos = torch.arange(self.cfg.max_len - L, self.cfg.max_len, device=seq.device)
        x = self.drop(rows[seq] * self.cfg.d_model ** 0.5 + self.pos(pos)[None])
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), 1)
        if self.cfg.block == "sasrec":
            pad = (seq == 0)[:, :, None]
            for blk in self.blocks:
                x = blk(x, causal, pad)
            return self.norm(x)
        # Block future and padding keys, but let every position see itself: a fully masked row
        # (a leading pad) would give NaNs that leak through later layers.
        blocked = causal[None] | (seq == 0)[:, None, :]
        blocked &= ~torch.eye(L, dtype=torch.bool, device=seq.device)[None]
        mask = blocked.repeat_interleave(self.cfg.num_heads, dim=0)
        return self.norm(self.blocks(x, mask=mask))

    def scores(self, h: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        table = self.item_table() if table is None else table
        return h @ table.t()


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean full-softmax cross-entropy of ``h @ W.T`` against ``target``, computed in row chunks
    that stay in cache, recomputing each chunk's logits in backward instead of storing the
    (positions x items) matrix. Hand-written because it measured 0.50 s vs 0.87 s for
    ``F.cross_entropy(h @ W.T, t)`` (forward + backward, 4,096 positions x 12,101 Beauty items, one
    core; ``bench/bench_chunked_ce.py`` -> bench/results/chunked_ce.json): the full-catalogue
    softmax is memory-bound and is most of a ranker step. Gradients equal
    the reference to 1e-8 (tests/test_recsys_ranking.py)."""

    @staticmethod
    def forward(ctx, h, W, target, chunk):  # type: ignore[override]
        lse = torch.empty(h.shape[0], dtype=h.dtype, device=h.device)
        for s in range(0, h.shape[0], chunk):
            lse[s: s + chunk] = torch.logsumexp(h[s: s + chunk] @ W.t(), dim=1)
        ctx.save_for_backward(h, W, target, lse)
        ctx.chunk = chunk
        return (lse - (h * W[target]).sum(dim=1)).mean()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        h, W, target, lse = ctx.saved_tensors
        gh, gW = torch.empty_like(h), torch.zeros_like(W)
        scale = grad / h.shape[0]
        for s in range(0, h.shape[0], ctx.chunk):
            hc = h[s: s + ctx.chunk]
            p = torch.exp_(hc @ W.t() - lse[s: s + ctx.chunk, None])
            p[torch.arange(len(hc), device=h.device), target[s: s + ctx.chunk]] -= 1
            p.mul_(scale)
            gh[s: s + ctx.chunk] = p @ W
            gW.addmm_(p.t(), hc)
        return gh, gW, None, None


def softmax_cross_entropy(h: torch.Tensor, W: torch.Tensor, target: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """``F.cross_entropy(h @ W.T, target)``; chunked on CPU (see :class:`_ChunkedSoftmaxCE`)."""
    if h.device.type != "cpu":
        return F.cross_entropy(h @ W.t(), target)
    return _ChunkedSoftmaxCE.apply(h, W, target, chunk)


def right_aligned(hists: Sequence[np.ndarray], max_len: int) -> torch.Tensor:
    """Histories as (B, max_len) item rows (index + 1), right-aligned, 0-padded on the left."""
    out = np.zeros((len(hists), max_len), dtype=np.int64)
    for j, h in enumerate(hists):
        h = np.asarray(h)[-max_len:]
        if len(h):
            out[j, max_len - len(h):] = h + 1
    return torch.from_numpy(out)


def trim_padding(seq: torch.Tensor, cfg: RankerConfig | None = None) -> torch.Tensor:
    """Drop leading columns that are padding in every row (at least one column is kept): with
    bucketed batches of short histories this saves most of the attention work at history 50.
    The "sasrec" block lets positions attend to padding, so its histories keep all columns."""
    if cfg is not None and cfg.block == "sasrec":
        return seq
    used = (seq != 0).any(dim=0).nonzero()
    return seq[:, int(used[0]):] if len(used) else seq[:, -1:]


@dataclass
class RankerRun:
    model: FeatureSASRec
    fit: FitResult
    config: RankerConfig
    train_config: TrainConfig
    features: ItemFeatures
    checkpoint: Path | None = None


def training_chunks(train_sequences: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Each user's training prefix, cut into windows of ``max_len + 1`` from the end so every
    transition is predicted exactly once (equivalent to the generative model's sliding windows)."""
    chunks = []
    for s in train_sequences:
        if len(s) < 2:
            continue
        for end in range(len(s), 1, -max_len):
            chunks.append(np.asarray(s[max(0, end - max_len - 1): end]))
    return chunks


#: Settings left out of the fingerprint while at these values, so that adding a setting to
#: RankerConfig does not re-key the run folders of runs that predate it.
_FINGERPRINT_DEFAULTS = {"block": "pre_norm", "id_dropout": 0.0, "id_min_count": 0}


def run_fingerprint(split: Split, features: ItemFeatures, cfg: RankerConfig, tc: TrainConfig) -> str:
    """A digest of everything that decides a training run: the data (training sequences and
    validation samples), the item features and both configs. Checkpoints live under it, so a
    rerun with other settings never resumes a foreign run."""
    model = {k: v for k, v in cfg.to_dict().items() if _FINGERPRINT_DEFAULTS.get(k, object()) != v}
    meta = {"model": model, "train": tc.to_dict(), "features": features.name, "n_tokens": features.n_tokens}
    return training_fingerprint(meta, features.tokens, split)


def fit_ranker(split: Split, features: ItemFeatures, config: RankerConfig | None = None,
               train_config: TrainConfig | None = None, device: torch.device | None = None,
               checkpoint_dir: str | Path | None = None) -> RankerRun:
    """Train with next-item full-softmax CE at every position; early stopping on validation N@10
    (full ranking, ``train_config.val_users`` users or all).

    With ``checkpoint_dir`` the run is resumable: its state (model, optimiser, epoch, best model,
    RNGs) is saved after every epoch to ``checkpoint_dir/<features>-<fingerprint>/checkpoint.pt``;
    the same call after a kill continues where the last finished epoch left off, and after the
    run has finished it returns the finished run without training."""
    tc = train_config or TrainConfig(lr=0.001, weight_decay=0.0)
    cfg = config or RankerConfig(max_len=tc.max_history)
    device = device or default_device()
    set_seed(tc.seed)
    model = FeatureSASRec(cfg, features).to(device)
    if cfg.id_min_count > 0:
        model.keep_ids_of(split.item_counts(features.n_items))
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir) / f"{features.name}-{run_fingerprint(split, features, cfg, tc)}" / "checkpoint.pt"
    chunks = training_chunks(split.train_sequences, cfg.max_len)
    lengths = np.array([len(c) for c in chunks])
    val = _subsample(split.valid, tc.val_users, tc.seed)

    def step_loss(batch: np.ndarray) -> torch.Tensor:
        inp = trim_padding(right_aligned([chunks[i][:-1] for i in batch], cfg.max_len), cfg).to(device)
        tgt = right_aligned([chunks[i][1:] for i in batch], cfg.max_len)[:, -inp.shape[1]:].to(device)
        table = model.item_table()
        h = model.hidden(inp, table)
        valid = tgt > 0
        return softmax_cross_entropy(h[valid], table, tgt[valid] - 1)

    def validate() -> dict[str, float]:
        return evaluate_rankings(rank_items(model, val.histories, 10, device=device), val.targets)

    fit = run_fit(model, step_loss, lengths, validate, tc, name=f"ranker[{features.name}]", checkpoint=ckpt)
    return RankerRun(model, fit, cfg, tc, features, ckpt)


@torch.no_grad()
def score_items(model: FeatureSASRec, hists: Sequence[np.ndarray], batch_size: int = 1024,
                device: torch.device | None = None):
    """Yield (start, scores (B, n_items) float32 numpy) over users in order."""
    device = device or next(model.parameters()).device
    model.eval()
    table = model.item_table()
    for i in range(0, len(hists), batch_size):
        seq = trim_padding(right_aligned(hists[i: i + batch_size], model.cfg.max_len), model.cfg).to(device)
        yield i, model.scores(model.hidden(seq, table)[:, -1, :], table).float().cpu().numpy()


def _remove_items(scores: np.ndarray, per_row: Sequence[np.ndarray]) -> None:
    """Scores of the given items set to -inf, row by row (in place): they cannot be ranked."""
    for j, items in enumerate(per_row):
        scores[j, np.asarray(items, dtype=np.int64)] = -np.inf


def rank_items(model: FeatureSASRec, hists: Sequence[np.ndarray], k: int = 50, batch_size: int = 1024,
               device: torch.device | None = None, exclude_history: bool = False,
               exclude: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Top-k item indices per history over the whole catalogue, best first. The project's
    protocol keeps history items rankable; ``exclude_history`` removes the items of each
    (capped) history and ``exclude`` any given items per user (e.g. everything the user has
    seen: the protocol of toolkits that filter seen items), for comparison only."""
    if exclude_history:
        exclude = hists
    out = []
    for start, s in score_items(model, hists, batch_size, device):
        if exclude is not None:
            _remove_items(s, exclude[start: start + len(s)])
        out.append(topk_from_scores(s, k))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def evaluate_ranker(run: RankerRun | FeatureSASRec, samples: Samples, negatives: np.ndarray | None = None,
                    ks: Sequence[int] = (5, 10, 20, 50),
                    seen: Sequence[np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """``{"full": metrics over all items, "sampled": metrics against the given negatives}``.

    ``negatives`` is (n_samples, n_neg) item indices (see :func:`metrics.sample_negatives`); the
    target is ranked among itself and those items. With ``seen`` (per sample, every item the user
    interacted with before the target) also ``"full_seen_removed"``: full ranking with those items
    removed, the protocol of toolkits that filter seen items (a target that repeats a seen item
    then counts as a miss)."""
    model = run.model if isinstance(run, RankerRun) else run
    full_top, sampled_scores, filtered_top = [], [], []
    for start, s in score_items(model, samples.histories):
        full_top.append(topk_from_scores(s, max(ks)))
        if negatives is not None:
            rows = np.arange(len(s))
            cand = np.concatenate([samples.targets[start: start + len(s), None],
                                   negatives[start: start + len(s)]], axis=1)
            sampled_scores.append(s[rows[:, None], cand])
        if seen is not None:
            _remove_items(s, seen[start: start + len(s)])
            filtered_top.append(topk_from_scores(s, max(ks)))
    out = {"full": evaluate_rankings(np.concatenate(full_top), samples.targets, ks)}
    if negatives is not None:
        out["sampled"] = evaluate_sampled(np.concatenate(sampled_scores), ks)
    if seen is not None:
        out["full_seen_removed"] = evaluate_rankings(np.concatenate(filtered_top), samples.targets, ks)
    return out
