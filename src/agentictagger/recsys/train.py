"""Training and evaluation for the generative recommender, shared by every tokenizer.

Fairness is by construction: :func:`fit_generative` takes only :class:`ItemCodes` and the split;
the model, optimiser, schedule, budget, seeds, batching and beam search are the same whatever
produced the codes.

Speed notes (2 shared CPU cores): batches are bucketed by history length (random-order batches
are ~4x slower because one long history pads the whole batch); the learning-rate schedule runs on
*progress* = max(step / planned steps, elapsed / budget), so a time budget still gets a full warmup
and cosine decay; validation can use a fixed user subsample.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .data import Samples, Split
from .metrics import evaluate_rankings
from .tiger import T5Config, TigerModel
from .tokenizers import EOS, PAD, ItemCodes
from .trie import ItemTrie

log = logging.getLogger(__name__)


def configure_threads(n: int) -> None:
    """Pin torch's thread pools. OMP_WAIT_POLICY must be set before torch starts; warn if not
    PASSIVE, since spinning OpenMP workers slow everything 3-9x on shared cores."""
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        log.warning("OMP_WAIT_POLICY is not PASSIVE: on shared cores torch threads spin; export OMP_WAIT_POLICY=PASSIVE")
    torch.set_num_threads(max(1, n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainConfig:
    lr: float = 0.005
    weight_decay: float = 0.1
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 20  # validations without improvement of N@10
    warmup_steps: int = 10_000  # capped at warmup_frac of the planned run
    warmup_frac: float = 0.05
    budget_minutes: float | None = None  # wall time for the whole fit (training + validation)
    eval_every_steps: int | None = None  # None = once per epoch
    val_users: int | None = None  # validate on a fixed random subsample of users; None = all
    max_steps: int | None = None  # a step budget: fairer than wall time when other work shares the cores
    beam_size: int = 20
    val_beam_size: int | None = None  # beam for validation only (None = beam_size); N@10 needs >= 10
    eval_batch_size: int = 256
    grad_clip: float = 1.0
    seed: int = 0
    max_history: int = 20
    lr_schedule: str = "cosine"  # or "constant": flat after the warmup (the original SASRec's Adam)

    def to_dict(self) -> dict:
        return asdict(self)


# "paper" = appendix A.1 (4+4 layers, d_ff 1024, 6 heads x 64, validation on every user once per
# epoch). "cpu" = what fits a few minutes on 2 shared cores: 2+2 layers, d_ff 512, 4 heads x 32
# (measured 0.96 s vs 3.9 s per batch of 256 and 4x faster beam search on the loaded machine),
# validation on a fixed 1,000-user sample with beam 10 every 300 steps.
PRESETS: dict[str, dict] = {
    "paper": {"model": {}, "train": {}},
    "cpu": {
        "model": {"num_layers": 2, "d_ff": 512, "num_heads": 4, "d_kv": 32},
        "train": {"val_users": 1000, "eval_every_steps": 300, "patience": 5, "val_beam_size": 10},
    },
}


def preset(name: str, vocab_size: int, **train_overrides) -> tuple[T5Config, TrainConfig]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[name]
    cfg = T5Config(vocab_size=vocab_size, **p["model"])
    tc = TrainConfig(**{**p["train"], **{k: v for k, v in train_overrides.items() if v is not None}})
    return cfg, tc


def set_seed(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------


class CodeBook:
    """Item index -> token arrays; builds padded encoder inputs and decoder labels."""

    def __init__(self, codes: ItemCodes) -> None:
        self.codes = codes
        self.arrays = [np.asarray(c, dtype=np.int64) for c in codes.codes]
        self.lens = np.array([len(c) for c in codes.codes], dtype=np.int64)

    def history_len(self, hist: np.ndarray) -> int:
        return int(self.lens[hist].sum())

    def encoder_batch(self, hists: Sequence[np.ndarray]) -> torch.Tensor:
        rows = [np.concatenate([self.arrays[i] for i in h]) for h in hists]
        L = max(len(r) for r in rows)
        out = np.full((len(rows), L), PAD, dtype=np.int64)
        for j, r in enumerate(rows):
            out[j, : len(r)] = r
        return torch.from_numpy(out)

    def label_batch(self, targets: Sequence[int]) -> torch.Tensor:
        T = int(self.lens[np.asarray(targets)].max()) + 1
        out = np.full((len(targets), T), PAD, dtype=np.int64)
        for j, t in enumerate(targets):
            a = self.arrays[t]
            out[j, : len(a)] = a
            out[j, len(a)] = EOS
        return torch.from_numpy(out)


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by length (random tie order), cut into batches, shuffle the batch order."""
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


# ---------------------------------------------------------------------------------------------
# The loop shared by the generative model and SASRec
# ---------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    best_valid: dict[str, float]
    best_step: int
    steps: int
    epochs: float
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    stopped_by: str = ""


def lr_factor(progress: float, warm: float) -> float:
    if progress < warm:
        return max(progress / warm, 1e-3)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warm) / max(1e-9, 1.0 - warm))))


def _save_checkpoint(path: Path, blob: dict) -> None:
    """``torch.save`` through a temporary file and a rename: a kill while writing leaves the
    previous checkpoint whole."""
    from agentictagger.files import atomic_file

    with atomic_file(path) as tmp:
        torch.save(blob, tmp)


def training_fingerprint(meta: dict, tokens: Sequence[Sequence[int]], split: Split) -> str:
    """A digest of what decides a training run: ``meta`` (model and training settings, as JSON),
    the items' token lists and the data (training sequences, validation samples). Checkpoints
    live under it, so a rerun with other settings never resumes a foreign run."""
    h = hashlib.sha256()
    h.update(json.dumps(meta, sort_keys=True).encode())
    for t in tokens:
        h.update(np.asarray(t, dtype=np.int64).tobytes())
    for s in split.train_sequences:
        h.update(np.asarray(s, dtype=np.int64).tobytes() + b"|")
    for s in split.valid.histories:
        h.update(np.asarray(s, dtype=np.int64).tobytes() + b"|")
    h.update(np.asarray(split.valid.targets, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def run_fit(
    model: torch.nn.Module,
    step_loss: Callable[[np.ndarray], torch.Tensor],
    lengths: np.ndarray,
    validate: Callable[[], dict[str, float]],
    tc: TrainConfig,
    name: str = "",
    checkpoint: str | os.PathLike | None = None,
) -> FitResult:
    """Budgeted AdamW + warmup/cosine (or constant) training with early stopping on validation N@10.

    ``step_loss(batch_indices)`` returns the loss of one batch of training samples; ``lengths``
    (per sample) drive the bucketing. The best model (by N@10) is loaded back at the end. Every
    validation record carries the mean training loss since the previous one, the training
    throughput (steps/s, without validation time) and the validation time.

    With ``checkpoint`` (a file path) the whole state -- model, optimiser, step and epoch, best
    model and early-stopping counters, history, numpy and torch RNG states, elapsed time -- is
    written after every epoch; calling again with the same arguments resumes after the last
    finished epoch and continues exactly as an uninterrupted run would (same batches, same dropout
    masks; on CPU with a fixed thread count). A finished run is returned without training.
    """
    rng = np.random.default_rng(tc.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = math.ceil(len(lengths) / tc.batch_size)
    planned = tc.max_epochs * steps_per_epoch
    if tc.max_steps:
        planned = min(planned, tc.max_steps)
    warm = min(tc.warmup_steps / planned, tc.warmup_frac)
    budget_s = tc.budget_minutes * 60 if tc.budget_minutes else None
    eval_every = tc.eval_every_steps or steps_per_epoch
    ckpt = Path(checkpoint) if checkpoint is not None else None
    st = {"step": 0, "epoch": 0, "best": -1.0, "best_step": 0, "bad": 0, "best_metrics": {}, "history": [],
          "elapsed": 0.0, "train_seconds": 0.0, "finished": False, "stopped": "", "resumed_at_epochs": []}
    best_state = None
    if ckpt is not None and ckpt.exists():
        blob = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        rng.bit_generator.state = blob["numpy_rng"]
        torch.set_rng_state(blob["torch_rng"])
        best_state = blob["best_state"]
        st = blob["state"]
        if not st["finished"]:
            st["resumed_at_epochs"].append(st["epoch"])
        log.info("%s resumed from %s at epoch %d (step %d, best N@10 %.4f at step %d)%s", name, ckpt, st["epoch"],
                 st["step"], st["best"], st["best_step"], " -- finished" if st["finished"] else "")
    t0 = time.perf_counter() - st["elapsed"]
    step = st["step"]
    since = {"t": time.perf_counter(), "train_s": 0.0, "losses": [], "step": step}

    def progress() -> float:
        p = step / planned
        if budget_s:
            p = max(p, (time.perf_counter() - t0) / budget_s)
        return min(p, 1.0)

    def lr_now() -> float:
        f = lr_factor(progress(), warm)
        if tc.lr_schedule == "constant":
            f = 1.0 if progress() >= warm else f
        elif tc.lr_schedule != "cosine":
            raise ValueError(f"unknown lr_schedule {tc.lr_schedule!r}; choose cosine or constant")
        return tc.lr * f

    def save(finished: bool = False) -> None:
        st.update(step=step, elapsed=time.perf_counter() - t0, finished=finished)
        if ckpt is not None:
            _save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                                    "best_state": best_state, "state": st, "train_config": tc.to_dict()})

    def do_validate() -> bool:
        nonlocal best_state
        tv = time.perf_counter()
        m = validate()
        model.train()
        n = step - since["step"]
        rec = {"step": step, "epoch": round(step / steps_per_epoch, 3), "seconds": round(time.perf_counter() - t0, 1),
               "train_loss": round(float(np.mean(since["losses"])), 5) if since["losses"] else None,
               "steps_per_s": round(n / since["train_s"], 3) if since["train_s"] > 0 else None,
               "validation_seconds": round(time.perf_counter() - tv, 1), **m}
        st["history"].append(rec)
        since.update(t=time.perf_counter(), train_s=0.0, losses=[], step=step)
        log.info("%s validation %s", name, rec)
        if m["N@10"] > st["best"]:
            st.update(best=m["N@10"], best_step=step, bad=0, best_metrics=m)
            best_state = copy.deepcopy(model.state_dict())
        else:
            st["bad"] += 1
        return st["bad"] >= tc.patience

    if not st["finished"]:
        model.train()
        out_of_time = False
        stopped = "max_epochs"
        for epoch in range(st["epoch"], tc.max_epochs):
            for batch in bucketed_batches(lengths, tc.batch_size, rng):
                ts = time.perf_counter()
                for g in opt.param_groups:
                    g["lr"] = lr_now()
                loss = step_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                opt.step()
                step += 1
                lv = loss.item()
                since["losses"].append(lv)
                dt = time.perf_counter() - ts
                since["train_s"] += dt
                st["train_seconds"] += dt
                if step % 50 == 0:
                    log.info("%s step %d epoch %.2f loss %.4f lr %.2e %.0fs", name, step, step / steps_per_epoch,
                             lv, opt.param_groups[0]["lr"], time.perf_counter() - t0)
                if budget_s and time.perf_counter() - t0 >= budget_s:
                    out_of_time = True
                    break
                if step >= planned:
                    break
                if step % eval_every == 0 and do_validate():
                    stopped = "early_stopping"
                    break
            else:
                st["epoch"] = epoch + 1
                save()
                continue
            st["epoch"] = epoch + 1
            break
        if step >= planned and not out_of_time and stopped == "max_epochs":
            stopped = "max_steps" if tc.max_steps and planned == tc.max_steps else "max_epochs"
        if out_of_time:
            stopped = "budget"
            if not st["history"] or st["history"][-1]["step"] != step:
                do_validate()
        elif stopped in ("max_epochs", "max_steps") and (not st["history"] or st["history"][-1]["step"] != step):
            do_validate()
        st["stopped"] = stopped
        save(finished=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(st["best_metrics"], st["best_step"], step, round(step / steps_per_epoch, 3),
                     round(st["elapsed"], 1), st["history"], st["stopped"])


# ---------------------------------------------------------------------------------------------
# Generative recommender
# ---------------------------------------------------------------------------------------------


def _subsample(samples: Samples, n: int | None, seed: int) -> Samples:
    if n is None or n >= len(samples):
        return samples
    idx = np.sort(np.random.default_rng(seed + 12345).choice(len(samples), n, replace=False))
    return samples.subset(idx)


@torch.no_grad()
def recommend(
    model: TigerModel,
    book: CodeBook,
    trie: ItemTrie,
    hists: Sequence[np.ndarray],
    beam_size: int = 20,
    batch_size: int = 256,
    allowed_groups: np.ndarray | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """(n, beam_size) item indices best first, -1 padded. Users are batched by history length."""
    device = device or next(model.parameters()).device
    model.eval()
    lens = np.array([book.history_len(h) for h in hists])
    order = np.argsort(lens, kind="stable")
    out = np.full((len(hists), beam_size), -1, dtype=np.int64)
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        ids = book.encoder_batch([hists[j] for j in idx]).to(device)
        ag = torch.from_numpy(allowed_groups[idx]).to(device) if allowed_groups is not None else None
        items, _ = model.beam_search(ids, trie, beam_size, ag)
        out[idx] = items.cpu().numpy()
    return out


@dataclass
class GenerativeRun:
    model: TigerModel
    book: CodeBook
    trie: ItemTrie
    fit: FitResult
    model_config: T5Config
    train_config: TrainConfig


def build_trie(codes: ItemCodes, item_groups: Sequence[int] | None = None, n_groups: int = 0) -> ItemTrie:
    return ItemTrie(codes.codes, codes.vocab_size, item_groups, n_groups)


def fit_generative(
    codes: ItemCodes,
    split: Split,
    model_config: T5Config | None = None,
    train_config: TrainConfig | None = None,
    device: torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
) -> GenerativeRun:
    """Train a TIGER-style model on ``codes``. With ``checkpoint_dir`` the run is resumable (see
    :func:`run_fit`): its state goes to ``checkpoint_dir/<codes>-<fingerprint>/checkpoint.pt``
    after every epoch; rerunning the same call continues it, or returns it finished."""
    tc = train_config or TrainConfig()
    cfg = model_config or T5Config(vocab_size=codes.vocab_size)
    if cfg.vocab_size != codes.vocab_size:
        cfg = replace(cfg, vocab_size=codes.vocab_size)
    ckpt = None
    if checkpoint_dir is not None:
        fp = training_fingerprint({"model": cfg.to_dict(), "train": tc.to_dict(), "codes": codes.name}, codes.codes, split)
        ckpt = Path(checkpoint_dir) / f"{codes.name}-{fp}" / "checkpoint.pt"
    device = device or default_device()
    set_seed(tc.seed)
    model = TigerModel(cfg).to(device)
    book = CodeBook(codes)
    trie = build_trie(codes).to(device)
    train = split.train
    lengths = np.array([book.history_len(h) for h in train.histories])
    val = _subsample(split.valid, tc.val_users, tc.seed)

    def step_loss(batch: np.ndarray) -> torch.Tensor:
        ids = book.encoder_batch([train.histories[i] for i in batch]).to(device)
        labels = book.label_batch(train.targets[batch]).to(device)
        return model(ids, labels)

    def validate() -> dict[str, float]:
        ranked = recommend(model, book, trie, val.histories, tc.val_beam_size or tc.beam_size, tc.eval_batch_size,
                           device=device)
        return evaluate_rankings(ranked, val.targets)

    fit = run_fit(model, step_loss, lengths, validate, tc, name=codes.name, checkpoint=ckpt)
    return GenerativeRun(model, book, trie, fit, cfg, tc)


def evaluate_generative(
    run: GenerativeRun,
    samples: Samples,
    allowed_groups: np.ndarray | None = None,
    item_groups: Sequence[int] | None = None,
    n_groups: int = 0,
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics and rankings on ``samples``; with ``allowed_groups`` (n, G) the beam is restricted
    to items whose group (``item_groups``) is allowed for that user."""
    trie = run.trie
    if allowed_groups is not None:
        if item_groups is None:
            raise ValueError("allowed_groups needs item_groups (the group of every item)")
        trie = build_trie(run.book.codes, item_groups, n_groups).to(next(run.model.parameters()).device)
    ranked = recommend(run.model, run.book, trie, samples.histories, run.train_config.beam_size,
                       run.train_config.eval_batch_size, allowed_groups)
    return evaluate_rankings(ranked, samples.targets), ranked
