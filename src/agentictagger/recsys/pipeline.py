"""One shape for every recommender experiment: ``Pipeline(dataset, tokenizer, model)``.

* **dataset** — a shared-data name (``beauty``, ``scientific``, ``sports``) or any (user, item,
  timestamp) table (CSV / TSV / Parquet / JSONL) with an optional item catalog for texts;
  optionally thinned to a fraction of its users (a sparse slice, paper B.2).
* **tokenizer** — how items become discrete tokens: ``agentictagger`` (a semantic-ID table from
  ``agentictagger assign``), ``rq-vae``, ``rq-kmeans``, ``random`` (agentictagger codes dealt at
  random) or ``item_id``; ``a+b`` sums two bags (e.g. ``item_id+agentictagger``) for the ranker.
* **model** — ``ranker`` (feature-aware SASRec, §5.2; with ``item_id`` it *is* SASRec) or
  ``generative`` (the T5-style TIGER model, §5.1).

Evaluation (leave-last-out, test = each user's last item): full ranking over all items, the
sampled-negative protocol (100 negatives per user never drawn from the user's own items, the same
draw for every model) for the ranker, and both on the cold-item slice (test targets with few
training interactions).

    from agentictagger.recsys.pipeline import Dataset, Pipeline
    ds = Dataset.load("scientific")
    row = Pipeline(ds, "item_id+agentictagger", "ranker", sid_table="runs/sci/semantic_ids.parquet").run(seed=0)
    print(row["test"]["full"]["N@10"])
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .data import SequenceData, Split, from_interactions, leave_last_out, load_shared_sequences
from .metrics import evaluate_rankings, evaluate_sampled, sample_negatives
from .ranking import FeatureSASRec, ItemFeatures, RankerConfig, evaluate_ranker, fit_ranker
from .sidtable import read_semantic_id_table
from .tokenizers import ItemCodes, RQVAEConfig, random_codes_like, rq_kmeans_codes, rq_vae_codes, semantic_id_codes
from .train import TrainConfig, default_device, evaluate_generative, fit_generative, preset

log = logging.getLogger(__name__)

TOKENIZERS = ("item_id", "warm_item_id", "agentictagger", "rq-vae", "rq-kmeans", "random")
MODELS = ("ranker", "generative")
#: Test targets with at most this many training interactions form the cold-item slice.
COLD_MAX_TRAIN_INTERACTIONS = 5
#: The short head: the most-interacted items, this share of the catalogue (by training
#: interactions; ties broken by item index). Test targets outside it form the long-tail slice.
SHORT_HEAD_SHARE = 0.2


@dataclass
class Dataset:
    """Interaction sequences plus (optionally) item texts aligned with ``data.item_ids``."""

    name: str
    data: SequenceData
    texts: list[str] | None = None
    source: str = ""
    max_history: int = 20
    _split: Split | None = field(default=None, repr=False)

    @property
    def split(self) -> Split:
        if self._split is None:
            self._split = leave_last_out(self.data, self.max_history)
        return self._split

    @classmethod
    def load(cls, source: str | Path, items: str | Path | None = None, *, user_col: str = "user_id",
             item_col: str = "item_id", time_col: str | None = "timestamp", user_fraction: float | None = None,
             fraction_seed: int = 0, max_history: int = 20) -> "Dataset":
        """A shared-data name or a path: an interaction table (.csv/.tsv/.parquet/.jsonl) or a
        sequences TSV (one user per line). ``items`` is a catalog file (any format
        ``agentictagger`` reads) giving item texts; shared datasets bring their own.
        ``user_fraction`` keeps a random fraction of the users (a sparse slice)."""
        from agentictagger.catalog import SHARED_DATASETS, Catalog, load_shared

        src = str(source)
        p = Path(src)
        if not p.exists() and src in SHARED_DATASETS:
            data, name = load_shared_sequences(src), src
        elif p.exists() and (".tsv" in p.name.lower() and "sequences" in p.name.lower()):
            data, name = load_shared_sequences(p), p.stem
        elif p.exists():
            data, name = from_interactions(p, user_col, item_col, time_col), p.stem
        else:
            raise FileNotFoundError(f"{src}: neither a shared dataset ({', '.join(SHARED_DATASETS)}) nor a file")
        if data.n_interactions == 0:
            raise ValueError(f"{src}: no interactions (only a header?); give a table with user, item and timestamp rows")
        longest = max((len(s) for s in data.sequences), default=0)
        if longest < 3:
            raise ValueError(
                f"{src}: no user has 3 or more interactions (longest: {longest}); leave-last-out needs at least 3 per "
                "user (training items, a validation item and a test item)"
            )
        if user_fraction is not None:
            if not 0 < user_fraction <= 1:
                raise ValueError(f"user_fraction must be in (0, 1]; got {user_fraction}")
            rng = np.random.default_rng(fraction_seed)
            keep = np.sort(rng.choice(len(data.users), max(1, round(user_fraction * len(data.users))), replace=False))
            data = data.subset_users(keep)
            name = f"{name}-users{round(user_fraction * 100)}pct"
        texts = None
        if items is not None:
            cat = Catalog.load(items)
            missing = [i for i in data.item_ids if i not in cat]
            if missing:
                raise ValueError(f"{items}: {len(missing)} interacted items are not in the catalog, e.g. {missing[:5]}")
            texts = [cat.by_id(i).text for i in data.item_ids]
        elif src in SHARED_DATASETS and not p.exists():
            cat = load_shared(src)
            textless = [i for i in data.item_ids if i not in cat]
            if textless:  # the shared catalog leaves out items with no text at all (Office has one)
                before = data.n_interactions
                data = data.without_items(textless)
                log.warning("%s: %d item(s) without any text left out of the sequences (%d of %d interactions)",
                            src, len(textless), before - data.n_interactions, before)
            texts = [cat.by_id(i).text for i in data.item_ids]
        return cls(name, data, texts, src, max_history)

    def describe(self) -> dict:
        split = self.split
        return {"name": self.name, "source": self.source, "users": len(self.data.users), "items": self.data.n_items,
                "interactions": self.data.n_interactions, "test_users": len(split.test),
                "train_transitions": int(sum(max(0, len(s) - 1) for s in split.train_sequences)),
                "max_history": self.max_history}

    def train_counts(self) -> np.ndarray:
        """Training interactions per item (the prefixes before each user's validation item)."""
        return self.split.item_counts(self.data.n_items)

    def embeddings(self, cache_dir: str | Path | None = None) -> np.ndarray:
        """Sentence embeddings of the item texts (the project's embedder, cached on disk)."""
        if self.texts is None:
            raise ValueError(f"dataset {self.name}: no item texts; pass items= (a catalog file) to use "
                             "text-based tokenizers (rq-vae, rq-kmeans)")
        from agentictagger.embed import Embedder

        return Embedder(cache_dir=cache_dir).encode(self.texts)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def codebook_sizes_for(n_items: int, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """RQ codebooks no larger than a 16th of the catalog (at least 2 entries): 256 entries per
    level suit catalogs of 4,096 items and more; a 304-item catalog gets 19."""
    cap = max(2, n_items // 16)
    return tuple(min(k, cap) for k in sizes)


def make_codes(kind: str, ds: Dataset, *, seed: int = 0, sid_table: str | Path | None = None,
               embeddings: np.ndarray | None = None, rqvae: RQVAEConfig | None = None,
               cache_dir: str | Path | None = None) -> ItemCodes:
    """The item codes of one tokenizer (not ``item_id``, which has no codes)."""
    if kind == "agentictagger":
        if sid_table is None:
            raise ValueError("tokenizer 'agentictagger' needs a semantic-ID table (sid_table=; from `agentictagger assign`)")
        return semantic_id_codes(read_semantic_id_table(sid_table), ds.data.item_ids)
    if kind in ("rq-vae", "rq-kmeans"):
        emb = ds.embeddings(cache_dir) if embeddings is None else embeddings
        if kind == "rq-kmeans":
            return rq_kmeans_codes(emb, codebook_sizes_for(len(emb), (256, 256, 256)), seed=seed)
        cfg = rqvae or RQVAEConfig()
        return rq_vae_codes(emb, replace(cfg, seed=seed, codebook_sizes=codebook_sizes_for(len(emb), cfg.codebook_sizes)))
    if kind == "random":
        return random_codes_like(make_codes("agentictagger", ds, sid_table=sid_table), seed=seed)
    raise ValueError(f"unknown tokenizer {kind!r}; choose from {', '.join(TOKENIZERS)}")


def make_features(spec: str, ds: Dataset, **kw: Any) -> ItemFeatures:
    """Ranker item features: a tokenizer name or ``a+b`` (bags summed), e.g. ``item_id+agentictagger``."""
    feats: ItemFeatures | None = None
    for part in spec.split("+"):
        part = part.strip()
        if part == "item_id":
            f = ItemFeatures.item_ids(ds.data.n_items)
        elif part == "warm_item_id":  # items colder than the cold slice share one ID row
            f = ItemFeatures.warm_item_ids(ds.train_counts(), COLD_MAX_TRAIN_INTERACTIONS + 1)
        else:
            f = ItemFeatures.from_codes(make_codes(part, ds, **kw))
        feats = f if feats is None else feats + f
    if feats is None:
        raise ValueError("empty feature spec")
    feats.name = spec
    return feats


def ranker_train_config(seed: int = 0, **overrides: Any) -> TrainConfig:
    """Ranker defaults: AdamW lr 2e-3 without weight decay, batch 256, validation on every user
    once per epoch, early stopping after 3 epochs without a better validation N@10, at most 100
    epochs; 100 warmup steps, then cosine over the 100 epochs (nearly flat while training; the
    trainer's default warmup of 5 % of the planned run would spend 5 epochs warming up). lr 2e-3 rather than SASRec's usual 1e-3 because
    at 1e-3 Scientific needed ~45 epochs (validation N@10 flat from ~epoch 24) and Beauty's epochs
    cost ~30 s on one core; chosen on validation curves, never on test."""
    base = dict(lr=0.002, weight_decay=0.0, batch_size=256, max_epochs=100, patience=3, warmup_steps=100, seed=seed,
                eval_every_steps=None, val_users=None)
    return TrainConfig(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class RankerRecipe:
    """Everything that decides how a ranker is trained, applied identically to every item
    representation: model shape, training overrides (of ``ranker_train_config``) and history length."""

    name: str
    ranker: RankerConfig
    train: dict
    max_history: int
    about: str

    def describe(self) -> dict:
        return {"name": self.name, "about": self.about, "max_history": self.max_history,
                "ranker": {**{k: v for k, v in self.ranker.to_dict().items() if k not in ("id_dropout", "id_min_count")},
                           "max_len": self.max_history},
                "train": {**ranker_train_config(**self.train).to_dict(), "seed": "per row", "max_history": self.max_history}}


RECIPES: dict[str, RankerRecipe] = {
    "quick": RankerRecipe(
        "quick", RankerConfig(), {}, 20,
        "history 20, 2 heads, feed-forward 4d, dropout 0.3, AdamW lr 2e-3 cosine, grad clip 1, patience 3: "
        "minutes per run on one core"),
    # The strongest item-ID setting of bench/sasrec_strength.py (chosen on Beauty validation N@10),
    # with patience 10 instead of 20: on that run's validation curve both stop at the same best
    # epoch (21), and 10 halves the epochs spent after it.
    "strength": RankerRecipe(
        "strength", RankerConfig(num_heads=1, ff_mult=1, dropout=0.2, block="pre_norm"),
        dict(lr=1e-3, lr_schedule="constant", warmup_steps=0, grad_clip=0.0, patience=10, max_epochs=200), 50,
        "the published SASRec recipe (history 50, d 64 x 2 blocks, 1 head, feed-forward 1d, dropout 0.2, Adam lr 1e-3 "
        "constant, no clipping, batch 256), pre-norm blocks, patience 10: the strongest item-ID setting of "
        "bench/results/sasrec_strength.json"),
}


def _r4(m: dict) -> dict:
    return {k: (round(float(v), 5) if isinstance(v, (float, np.floating)) else _r4(v) if isinstance(v, dict) else v)
            for k, v in m.items()}


@dataclass
class Pipeline:
    """``Pipeline(dataset, tokenizer, model).run(seed)`` trains, early-stops on validation N@10 and
    evaluates on the test users; returns a JSON-ready row."""

    dataset: Dataset
    tokenizer: str = "item_id"
    model: str = "ranker"
    sid_table: str | Path | None = None
    ranker: RankerConfig = field(default_factory=RankerConfig)
    train_overrides: dict = field(default_factory=dict)
    preset: str = "cpu"  # generative model preset (see recsys.train.PRESETS)
    n_negatives: int = 100
    negatives_seed: int = 0  # the same negatives for every model and seed
    cold_max: int = COLD_MAX_TRAIN_INTERACTIONS
    cache_dir: str | Path | None = None
    checkpoint_dir: str | Path | None = None  # ranker: resumable training (see fit_ranker)
    rqvae: RQVAEConfig | None = None
    embeddings: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        parts = self.tokenizer.split("+")
        bad = [p for p in parts if p not in TOKENIZERS]
        if bad:
            raise ValueError(f"unknown tokenizer {bad}; choose from {', '.join(TOKENIZERS)} (or a+b for the ranker)")
        if self.model == "generative" and (len(parts) > 1 or parts[0] in ("item_id", "warm_item_id")):
            raise ValueError("the generative model needs one code tokenizer (agentictagger, rq-vae, rq-kmeans, random)")

    def _kw(self, seed: int) -> dict:
        return dict(seed=seed, sid_table=self.sid_table, embeddings=self.embeddings, rqvae=self.rqvae,
                    cache_dir=self.cache_dir)

    def slices(self) -> dict[str, np.ndarray]:
        """Test-sample indices per reported slice: all users, cold items (at most ``cold_max``
        training interactions) and long-tail items (outside the short head, ``SHORT_HEAD_SHARE``)."""
        test = self.dataset.split.test
        counts = self.dataset.train_counts()
        head = np.zeros(len(counts), dtype=bool)
        head[np.argsort(-counts, kind="stable")[: int(round(SHORT_HEAD_SHARE * len(counts)))]] = True
        return {"all": np.arange(len(test)), "cold_items": np.flatnonzero(counts[test.targets] <= self.cold_max),
                "long_tail": np.flatnonzero(~head[test.targets])}

    def negatives(self) -> np.ndarray:
        test = self.dataset.split.test
        seqs = self.dataset.data.sequences
        return sample_negatives(self.dataset.data.n_items, [seqs[u] for u in test.users], self.n_negatives,
                                self.negatives_seed)

    def run(self, seed: int = 0, device: Any = None) -> dict:
        ds = self.dataset
        split = ds.split
        device = device or default_device()
        t0 = time.perf_counter()
        row: dict[str, Any] = {"dataset": ds.name, "tokenizer": self.tokenizer, "model": self.model, "seed": seed}
        if self.sid_table is not None:
            row["sid_table_sha256"] = file_digest(self.sid_table)
        test = split.test
        slices = self.slices()
        if self.model == "ranker":
            neg = self.negatives()  # before training: a catalogue too small for n_negatives fails fast
            feats = make_features(self.tokenizer, ds, **self._kw(seed))
            row["tokenizer_seconds"] = round(time.perf_counter() - t0, 1)
            row["features"] = feats.summary()
            tc = ranker_train_config(seed, max_history=ds.max_history, **self.train_overrides)
            cfg = replace(self.ranker, max_len=ds.max_history)
            run = fit_ranker(split, feats, cfg, tc, device, checkpoint_dir=self.checkpoint_dir)
            t = time.perf_counter()
            row["test"] = {}
            seqs = ds.data.sequences
            seen = [seqs[u][:-1] for u in test.users]  # everything before the test target
            for name, idx in slices.items():
                sub = test if name == "all" else test.subset(idx)
                res = evaluate_ranker(run, sub, neg[idx], seen=[seen[i] for i in idx])
                row["test"][name] = {"users": int(len(idx)), **res}
            row["test_eval_seconds"] = round(time.perf_counter() - t, 1)
            row["config"], row["train_config"] = cfg.to_dict(), tc.to_dict()
        else:
            codes = make_codes(self.tokenizer, ds, **self._kw(seed))
            row["tokenizer_seconds"] = round(time.perf_counter() - t0, 1)
            row["codes"] = {**codes.summary(), **{k: v for k, v in codes.meta.items() if k != "rqvae"}}
            mcfg, tc = preset(self.preset, codes.vocab_size, seed=seed, max_history=ds.max_history,
                              **self.train_overrides)
            run = fit_generative(codes, split, mcfg, tc, device)
            t = time.perf_counter()
            row["test"] = {}
            for name, idx in slices.items():
                sub = test if name == "all" else test.subset(idx)
                m, _ = evaluate_generative(run, sub)
                row["test"][name] = {"users": int(len(idx)), "full": m}
            row["test_eval_seconds"] = round(time.perf_counter() - t, 1)
            row["config"], row["train_config"] = mcfg.to_dict(), tc.to_dict()
        fit = run.fit
        row.update({
            "valid_best": fit.best_valid, "best_step": fit.best_step, "steps": fit.steps, "epochs": fit.epochs,
            "best_epoch": round(fit.best_step / max(1, fit.steps) * fit.epochs, 3), "stopped_by": fit.stopped_by,
            "train_seconds": fit.train_seconds, "total_seconds": round(time.perf_counter() - t0, 1),
            "valid_history": fit.history,
        })
        self.last_run = run
        return _r4(row)


def popularity_row(ds: Dataset, n_negatives: int = 100, negatives_seed: int = 0) -> dict:
    """Most-popular (training interactions) for every user: the floor needing no training."""
    p = Pipeline(ds, "item_id", "ranker", n_negatives=n_negatives, negatives_seed=negatives_seed)
    counts = ds.train_counts().astype(np.float64)
    test = ds.split.test
    neg = p.negatives()
    out = {}
    top = np.argsort(-counts, kind="stable")[:50]
    for name, idx in p.slices().items():
        # ties broken pessimistically, so equal-count items do not flatter the floor
        cand = np.concatenate([test.targets[idx, None], neg[idx]], axis=1)
        out[name] = {"users": int(len(idx)),
                     "full": evaluate_rankings(np.tile(top, (len(idx), 1)), test.targets[idx], (5, 10, 20, 50)),
                     "sampled": evaluate_sampled(counts[cand], (5, 10, 20, 50))}
    return _r4({"dataset": ds.name, "tokenizer": "-", "model": "popularity", "seed": 0, "test": out})


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per (model, tokenizer, slice, protocol)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["tokenizer"]), []).append(r)
    out = []
    for (model, tok), rs in groups.items():
        rec: dict[str, Any] = {"model": model, "tokenizer": tok, "seeds": sorted(r["seed"] for r in rs)}
        for sl in [sl for sl in rs[0]["test"] if all(sl in r["test"] for r in rs)]:  # slices every seed has
            for proto in ("full", "sampled", "full_seen_removed"):
                if not all(proto in r["test"][sl] for r in rs):
                    continue
                for m in rs[0]["test"][sl][proto]:
                    vals = np.array([r["test"][sl][proto][m] for r in rs])
                    rec[f"{sl}/{proto}/{m}"] = {"mean": round(float(vals.mean()), 5),
                                                 "std": round(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, 5)}
        for k in ("epochs", "best_epoch", "train_seconds"):
            if all(k in r for r in rs):
                vals = np.array([r[k] for r in rs], dtype=float)
                rec[k] = {"mean": round(float(vals.mean()), 2), "std": round(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, 2)}
        out.append(rec)
    return out


def _row_key(r: dict) -> tuple:
    return (r["dataset"], r["model"], r["tokenizer"], r["seed"])


def append_row(path: str | Path, row: dict) -> None:
    """Add one finished run to a JSON results file, atomically and under a file lock (a killed
    bench keeps what finished; several bench processes may share one file)."""
    from filelock import FileLock

    p = Path(path)
    with FileLock(str(p) + ".lock"):
        res = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {"rows": []}
        res["rows"] = [r for r in res["rows"] if _row_key(r) != _row_key(row)] + [row]
        from agentictagger.files import atomic_write_text

        atomic_write_text(p, json.dumps(res, indent=1) + "\n")


def claim_row(path: str | Path, key: tuple) -> bool:
    """True if this process may run ``key`` (dataset, model, tokenizer, seed): not finished in the
    results file and not claimed by another live process (claims sit in ``<path>.claims.json``)."""
    import os

    from filelock import FileLock

    p = Path(path)
    claims_p = Path(str(p) + ".claims.json")
    with FileLock(str(p) + ".lock"):
        rows = json.loads(p.read_text(encoding="utf-8"))["rows"] if p.exists() else []
        if any(_row_key(r) == tuple(key) for r in rows):
            return False
        claims = json.loads(claims_p.read_text(encoding="utf-8")) if claims_p.exists() else {}
        k = json.dumps(list(key))
        pid = claims.get(k)
        if pid and pid != os.getpid():
            try:
                os.kill(pid, 0)
                return False  # another live process is running it
            except OSError:
                pass  # a dead claim
        claims[k] = os.getpid()
        claims_p.write_text(json.dumps(claims), encoding="utf-8")
        return True


# ---------------------------------------------------------------------------------------------
# Saved models: `agentictagger recsys train --out DIR` / `recsys evaluate DIR`
# ---------------------------------------------------------------------------------------------


def save_model(pipeline: Pipeline, row: dict, out_dir: str | Path) -> Path:
    """Write ``model.pt`` (weights, configs, item tokens, item ids) and ``metrics.json`` (the row)."""
    import torch

    run = getattr(pipeline, "last_run", None)
    if run is None:
        raise ValueError("nothing to save: call Pipeline.run() first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blob: dict[str, Any] = {"model": pipeline.model, "tokenizer": pipeline.tokenizer,
                            "item_ids": list(pipeline.dataset.data.item_ids),
                            "max_history": pipeline.dataset.max_history, "state_dict": run.model.state_dict()}
    if pipeline.model == "ranker":
        f = run.features
        blob.update(config=run.config.to_dict(), features={"name": f.name, "tokens": f.tokens, "n_tokens": f.n_tokens,
                                                           "description": f.description, "id_first": f.id_first})
    else:
        c = run.book.codes
        blob.update(config=run.model_config.to_dict(), train_config=run.train_config.to_dict(),
                    codes={"name": c.name, "codes": c.codes, "token_names": c.token_names,
                           "n_base_tokens": c.n_base_tokens, "n_resolver_tokens": c.n_resolver_tokens,
                           "description": c.description})
    from agentictagger.files import atomic_file

    with atomic_file(out / "model.pt") as tmp:
        torch.save(blob, tmp)
    (out / "metrics.json").write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return out


def evaluate_saved(model_dir: str | Path, ds: Dataset, n_negatives: int = 100, negatives_seed: int = 0) -> dict:
    """Re-score a saved model on ``ds``'s test users (the dataset must have the same items)."""
    import torch

    from .tiger import T5Config, TigerModel
    from .train import CodeBook, GenerativeRun, build_trie

    blob = torch.load(Path(model_dir) / "model.pt", weights_only=False)
    if blob["item_ids"] != list(ds.data.item_ids):
        raise ValueError(f"{model_dir}: the model was trained on a different item set than dataset {ds.name} "
                         f"({len(blob['item_ids'])} vs {ds.data.n_items} items); evaluate on the dataset it was trained on")
    p = Pipeline(ds, blob["tokenizer"], blob["model"], n_negatives=n_negatives, negatives_seed=negatives_seed)
    test = ds.split.test
    out: dict[str, Any] = {"dataset": ds.name, "tokenizer": blob["tokenizer"], "model": blob["model"], "test": {}}
    if blob["model"] == "ranker":
        f = blob["features"]
        feats = ItemFeatures(f["name"], [tuple(t) for t in f["tokens"]], f["n_tokens"], f["description"],
                             id_first=f.get("id_first", False))
        model = FeatureSASRec(RankerConfig(**blob["config"]), feats)
        model.load_state_dict(blob["state_dict"])
        if model.cfg.id_min_count > 0:
            model.keep_ids_of(ds.train_counts())
        neg = p.negatives()
        for name, idx in p.slices().items():
            sub = test if name == "all" else test.subset(idx)
            out["test"][name] = {"users": int(len(idx)), **evaluate_ranker(model, sub, neg[idx])}
    else:
        c = blob["codes"]
        codes = ItemCodes(c["name"], [tuple(x) for x in c["codes"]], c["token_names"], c["n_base_tokens"],
                          c["n_resolver_tokens"], c["description"])
        model = TigerModel(T5Config(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        run = GenerativeRun(model, CodeBook(codes), build_trie(codes), None, T5Config(**blob["config"]),
                            TrainConfig(**blob["train_config"]))
        for name, idx in p.slices().items():
            sub = test if name == "all" else test.subset(idx)
            out["test"][name] = {"users": int(len(idx)), "full": evaluate_generative(run, sub)[0]}
    return _r4(out)
