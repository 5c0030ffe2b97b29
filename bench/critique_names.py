"""Critique by descriptor names: "no more X", "show me Y", where X and Y are names a user reads.

The paper's §5.3 critique restricts recommendations to descriptors a user picks. Here the user
picks them *by name*, the way a shopper uses a store's menu, and the question is what only named
descriptors allow. Per test user, an item-ID SASRec (the ranking bench's recipe; the strongest
single model there) ranks the whole catalog (full ranking, history items not masked). A user
simulator knows what the user wants next (the target item's text, embedded) and reads **names
only**:

* **show me Y**: Y is the name, among all the level's descriptor names (the menu), most similar to
  the target's text; the recommendations are then restricted to the items under Y.
* **no more X**: X is the name, among the groups of the user's top-10 recommendations, least
  similar to the target's text (only when the top-10 show two groups or more); the items under X
  are removed.

Measured per level (1 and 2; at level 2 a path that ends at level 1 counts with its level-1
descriptor): how often the critique is right (the target is under Y; the target
is *not* under X), and the target's N@10 / R@10 before and after. The filtered list respects the
critique by construction (every item shown is under Y / none under X), so respect is not scored.

Schemes (the same ranker and users for all):

* **ours, names (offline)** and **ours, names (local LLM)**: the builds of
  ``bench/taxonomy_alignment.py`` (profiles ``offline`` and ``local-llm-l2``, same run folders), the
  simulator embedding each descriptor's name alone.
* **ours, names (offline, no refinement step)**: the same bench's ``offline+norefine`` builds
  (``--set build.refine_steps=0 --tag norefine``): what the refinement step's renames, additions and
  merges do for a user who reads the names (its own judge reads name + definition, not a user).
* **ours, no names**: the same groups, each represented by the mean embedding of its items (what a
  tree of codes allows: a code has no text, so this "user" sees the groups' items, which a person
  does not).
* **RQ-KMeans codes**: residual KMeans over the same embeddings with codebooks of our level-1
  count and level-2 count / level-1 count (as ``bench/text_query.py``), 1- and 2-token prefixes,
  represented by their items' mean embedding. RQ codes have no names: a critique by name cannot be
  expressed on them at all; this row is what a critique could do if the user could see the codes'
  items.
* **random group** (Y uniform over the level's groups, X uniform over the top-10's groups) and
  **target's own group** (Y = the target's group: the most a "show me" can give), both on our groups.

Scientific's settings were chosen on it (development); Office was used to choose nothing (held
out). The ranker is trained once per catalog (seed 0, resumable checkpoints under
``bench/runs/critique/``); the spread is over the builds of seeds 0-2.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/critique_names.py [--catalogs scientific office] [--seeds 0 1 2]

writes bench/results/critique_names.json and prints a short table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _provenance import write_result  # noqa: E402
from taxonomy_alignment import mean_sd  # noqa: E402

from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402

K = 10
LEVELS = (1, 2)
PROFILES = {"offline": "ours, names (offline)", "offline_norefine": "ours, names (offline, no refinement step)",
            "local-llm-l2": "ours, names (local LLM)"}
SCHEMES = (*PROFILES.values(), "ours, no names", "RQ-KMeans codes", "random group", "target's own group")


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target (ties counted against it); -inf scores never outrank."""
    t = scores[np.arange(len(scores)), targets]
    return (scores > t[:, None]).sum(axis=1) + np.where(np.isfinite(t), 0, scores.shape[1])


def ndcg_recall(ranks: np.ndarray) -> tuple[float, float]:
    hit = ranks < K
    return float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()), float(hit.mean())


class Grouping:
    """Items -> group index at one level (-1: not on this level), and how the simulator sees a group."""

    def __init__(self, labels: np.ndarray, vectors: np.ndarray, names: list[str] | None = None) -> None:
        self.labels, self.vectors, self.names = labels, unit(vectors), names


def critique_scores(scores: np.ndarray, targets: np.ndarray, target_vecs: np.ndarray, g: Grouping,
                    pick: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per user of the batch: Y, X (-1 when none), target ranks before, after "show me Y" and after
    "no more X"."""
    lab = g.labels
    sim = target_vecs @ g.vectors.T  # (B, G): how well each group's face matches what the user wants
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    n_groups = len(g.vectors)
    if pick == "random":
        y = rng.integers(0, n_groups, len(scores))
    elif pick == "oracle":
        y = lab[targets]
    else:
        y = sim.argmax(axis=1)
    x = np.full(len(scores), -1)
    for u in range(len(scores)):
        shown = np.unique(lab[top[u]])
        shown = shown[(shown >= 0) & (shown != y[u])]
        if len(np.unique(lab[top[u]][lab[top[u]] >= 0])) < 2 or not len(shown):
            continue
        x[u] = rng.choice(shown) if pick == "random" else shown[np.argmin(sim[u, shown])]
    before = target_ranks(scores, targets)
    keep_y = lab[None, :] == y[:, None]
    after_y = target_ranks(np.where(keep_y, scores, -np.inf), targets)
    drop_x = lab[None, :] == x[:, None]
    after_x = target_ranks(np.where(drop_x, -np.inf, scores), targets)
    return {"y": y, "x": x, "before": before, "after_y": after_y, "after_x": after_x}


def summarise(parts: list[dict], lab_targets: np.ndarray) -> dict:
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    with_x = cat["x"] >= 0
    n0, r0 = ndcg_recall(cat["before"])
    ny, ry = ndcg_recall(cat["after_y"])
    nx, rx = ndcg_recall(cat["after_x"][with_x]) if with_x.any() else (float("nan"), float("nan"))
    nxb, rxb = ndcg_recall(cat["before"][with_x]) if with_x.any() else (float("nan"), float("nan"))
    return {
        "users": int(len(cat["y"])),
        "show_me_right": round(float((cat["y"] == lab_targets).mean()), 4),
        "N@10 before": round(n0, 5), "R@10 before": round(r0, 5),
        "N@10 after show me": round(ny, 5), "R@10 after show me": round(ry, 5),
        "no_more_users": int(with_x.sum()),
        "no_more_wrong": round(float((cat["x"][with_x] == lab_targets[with_x]).mean()), 4) if with_x.any() else None,
        "N@10 before, no-more users": round(nxb, 5), "N@10 after no more": round(nx, 5),
        "R@10 before, no-more users": round(rxb, 5), "R@10 after no more": round(rx, 5),
    }


def train_ranker(ds, seed: int):
    from agentictagger.recsys.pipeline import make_features, ranker_train_config
    from agentictagger.recsys.ranking import RankerConfig, fit_ranker

    feats = make_features("item_id", ds)
    tc = ranker_train_config(seed, max_history=ds.max_history)
    return fit_ranker(ds.split, feats, replace(RankerConfig(), max_len=ds.max_history), tc,
                      checkpoint_dir=REPO / "bench" / "runs" / "critique")


def groupings(run_dirs: dict[str, Path], item_ids: list[str], emb: np.ndarray, encode, seed: int) -> dict:
    """{level: {scheme: Grouping}} for one build seed."""
    from agentictagger.recsys.tokenizers import rq_kmeans_codes

    out: dict[int, dict[str, Grouping]] = {lv: {} for lv in LEVELS}
    base = None
    for profile, run_dir in run_dirs.items():
        vocab = Vocabulary.load(run_dir / "vocabulary.json")
        paths = Assignment.load_jsonl(run_dir / "assignments.jsonl").paths
        missing = [i for i in item_ids if not paths.get(i)]
        if missing:
            raise SystemExit(f"{run_dir}: {len(missing)} items have no assigned path, e.g. {missing[:3]}")
        for lv in LEVELS:
            # A level's groups are the path prefixes of that depth; a path that ends above it
            # (a descriptor too small to split) counts with its last descriptor.
            at = [paths[i][min(lv, len(paths[i])) - 1] for i in item_ids]
            dids = sorted(set(at))
            index = {d: j for j, d in enumerate(dids)}
            labels = np.array([index[d] for d in at])
            names = [vocab[d].name for d in dids]
            out[lv][PROFILES[profile]] = Grouping(labels, encode(names), names)
            if profile == "offline":
                members = [np.flatnonzero(labels == j) for j in range(len(dids))]
                cents = np.stack([emb[m].mean(axis=0) if len(m) else np.zeros(emb.shape[1]) for m in members])
                out[lv]["ours, no names"] = Grouping(labels, cents)
                out[lv]["random group"] = out[lv]["target's own group"] = Grouping(labels, cents)
                if lv == 1:
                    base = vocab
    if base is None:
        raise SystemExit("the offline build is needed (its run folder is missing)")
    k1 = len(base.level(1))
    k2 = len(base.level(2)) or k1
    rq = np.asarray(rq_kmeans_codes(emb, codebook_sizes=(k1, max(2, round(k2 / max(1, k1)))), seed=seed).codes)
    for lv in LEVELS:
        keys = [tuple(c[:lv]) for c in rq.tolist()]
        index = {k: j for j, k in enumerate(sorted(set(keys)))}
        labels = np.array([index[k] for k in keys])
        cents = np.stack([emb[labels == j].mean(axis=0) for j in range(len(index))])
        out[lv]["RQ-KMeans codes"] = Grouping(labels, cents)
    return out


def evaluate(name: str, seeds: list[int]) -> dict:
    from agentictagger.config import RunConfig
    from agentictagger.embed import Embedder
    from agentictagger.recsys.pipeline import Dataset
    from agentictagger.recsys.ranking import score_items

    t0 = time.perf_counter()
    ds = Dataset.load(name)
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    emb = unit(ds.embeddings(REPO / cfg.cache_dir))
    item_ids = [str(i) for i in ds.data.item_ids]
    run = train_ranker(ds, 0)
    train_s = time.perf_counter() - t0
    test = ds.split.test
    targets = np.asarray(test.targets)
    scores_by_batch = list(score_items(run.model, test.histories))  # (start, scores) batches
    out: dict = {"catalog": name,
                 "role": "development (settings chosen here)" if name == "scientific" else "held out (nothing chosen here)",
                 "test_users": int(len(targets)), "items": len(item_ids),
                 "ranker": {"features": "item_id", "seed": 0, "epochs": run.fit.epochs, "best_step": run.fit.best_step,
                            "valid": {k: round(float(v), 5) for k, v in run.fit.best_valid.items()},
                            "config": run.config.to_dict(), "train_config": run.train_config.to_dict(),
                            "seconds_to_train_or_load": round(train_s, 1)},
                 "per_seed": []}
    for seed in seeds:
        dirs = {p: REPO / "bench" / "runs" / "align" / f"{name}_{p}_s{seed}" for p in PROFILES}
        dirs = {p: d for p, d in dirs.items() if (d / "assignments.jsonl").exists()}
        groups = groupings(dirs, item_ids, emb, lambda xs: embedder.encode(list(xs)), seed)
        entry: dict = {"seed": seed, "run_dirs": {p: str(d.relative_to(REPO)) for p, d in dirs.items()}, "levels": {}}
        for lv, schemes in groups.items():
            entry["levels"][str(lv)] = {}
            for scheme, g in schemes.items():
                pick = {"random group": "random", "target's own group": "oracle"}.get(scheme, "names")
                rng = np.random.default_rng(seed)
                parts = []
                for start, s in scores_by_batch:
                    tg = targets[start: start + len(s)]
                    parts.append(critique_scores(s, tg, emb[tg], g, pick, rng))
                res = summarise(parts, g.labels[targets])
                res["groups"] = int(len(g.vectors))
                if g.names is not None:
                    y = np.concatenate([p["y"] for p in parts])
                    picked = np.bincount(y, minlength=len(g.names))
                    res["most_picked_names"] = [[g.names[j], int(picked[j])] for j in np.argsort(-picked)[:5]]
                entry["levels"][str(lv)][scheme] = res
        out["per_seed"].append(entry)
    out["summary"] = {}
    for lv in LEVELS:
        out["summary"][str(lv)] = {}
        for scheme in SCHEMES:
            rows = [e["levels"][str(lv)][scheme] for e in out["per_seed"] if scheme in e["levels"][str(lv)]]
            if not rows:
                continue
            out["summary"][str(lv)][scheme] = {
                "seeds": [e["seed"] for e in out["per_seed"] if scheme in e["levels"][str(lv)]],
                **{k: mean_sd([r[k] for r in rows]) for k in ("show_me_right", "N@10 after show me", "no_more_wrong",
                                                               "N@10 before, no-more users", "N@10 after no more",
                                                               "groups") if rows[0].get(k) is not None},
                "N@10 before": rows[0]["N@10 before"],
            }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "office"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "critique_names.json"))
    a = ap.parse_args()
    from agentictagger.recsys.train import configure_threads

    configure_threads(1)
    res = {"what": __doc__.split("\n\n")[0], "k": K, "catalogs": [evaluate(c, a.seeds) for c in a.catalogs]}
    write_result(a.out, res)
    print("| catalog | level | scheme | groups | show me: right | N@10 before -> after show me | no more: wrong "
          "| N@10 before -> after no more (its users) |")
    print("|---|---|---|---|---|---|---|---|")
    for c in res["catalogs"]:
        for lv, rows in c["summary"].items():
            for scheme, r in rows.items():
                f = lambda k: f"{r[k]['mean']:.3f} ± {r[k]['sd']:.3f}" if k in r else "n/a"  # noqa: E731
                print(f"| {c['catalog']} | {lv} | {scheme} (seeds {','.join(map(str, r['seeds']))}) | {r['groups']['mean']:.0f} "
                      f"| {f('show_me_right')} | {r['N@10 before']:.4f} -> {f('N@10 after show me')} | {f('no_more_wrong')} "
                      f"| {f('N@10 before, no-more users')} -> {f('N@10 after no more')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
