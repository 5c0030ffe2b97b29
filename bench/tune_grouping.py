"""The offline architect's grouping settings, chosen on Scientific's development half.

The consensus grouping of ``vocab/grouping.py`` (fine KMeans draws merged by Ward, then KMeans on
the draws' co-memberships) has three settings: fine clusters per descriptor
(``build.grouping.fine_per_group``), draws (``build.grouping.restarts``) and the smallest average
fine-cluster size (``build.grouping.min_fine_size``). This bench scores each setting of a grid on
the **development half** of Amazon 2018 Industrial_and_Scientific (items whose crc32(item_id) is
even; the other half and the Office catalog are never read here), grouping alone (no names, no
annotators, no refinement), 15 groups like the build's level 1, against the Amazon level-2
categories (every labelled item of the half counted), beside scikit-learn KMeans (k = 15,
n_init = 10) on the same embeddings with the same seed. It writes
``bench/results/tune_grouping.json`` and prints a short table: mean NMI / ARI over seeds, the
gain over KMeans per seed (mean and the smallest), and seconds per grouping (the draws on all
cores, one BLAS thread each).

``--seeding`` also scores cheaper k-means++ seedings of the fine draws (not build settings: the
bench swaps the seeding function in this process only), the lever on a build's time that a
profile points to (seeding is about a third of an offline Beauty rebuild's samples):
``trialsN`` (N candidate centres per step, scikit-learn's default is 2 + log(m), 7 at m = 240)
and ``subF`` (seeding on a random share F of the job's items, then Lloyd on all of them).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/tune_grouping.py [--seeds 0-7] [--grid 8:20:5 16:20:5 ...]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/tune_grouping.py --seeds 0-11 --grid 16:20:5 \
        --seeding default trials1 trials2 sub0.25 sub0.5 --out bench/results/tune_grouping_seeding.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import mean_sd  # noqa: E402

from agentictagger.catalog import LCREC_LABEL_LEVEL, load_shared, scientific_label  # noqa: E402
from agentictagger.config import GroupingConfig, RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.vocab import grouping  # noqa: E402
from agentictagger.embed import normalise  # noqa: E402
from agentictagger.vocab.grouping import consensus_groups, n_fine_clusters, single_threaded_numerics  # noqa: E402
from agentictagger.vocab.quality import partition_scores  # noqa: E402

TARGET = 15  # the build's level-1 target (build.branching)
DEFAULT_GRID = ["4:20:5", "8:10:5", "8:20:5", "8:40:5", "12:10:5", "12:20:5", "16:10:5", "16:20:5", "24:10:3", "24:20:3"]


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


@contextmanager
def seeding(name: str) -> Iterator[None]:
    """The fine draws' k-means++ seeding replaced for the duration: 'default', 'trialsN' or 'subF'."""
    plain = grouping.kmeans_plusplus
    if name == "default":
        yield
        return
    if name.startswith("trials"):
        trials = int(name[len("trials"):])

        def seed_fn(x, m, random_state=None):
            return plain(x, m, random_state=random_state, n_local_trials=trials)
    elif name.startswith("sub"):
        share = float(name[len("sub"):])

        def seed_fn(x, m, random_state=None):
            n = len(x)
            size = min(n, max(m, int(round(share * n))))
            pick = np.sort(np.random.default_rng(random_state).choice(n, size, replace=False))
            centres, idx = plain(x[pick], m, random_state=random_state)
            return centres, pick[idx]
    else:
        raise SystemExit(f"--seeding {name!r}: expected default, trialsN or subF")
    grouping.kmeans_plusplus = seed_fn
    try:
        yield
    finally:
        grouping.kmeans_plusplus = plain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0-7"), help="e.g. 0-7 or 0,3,5")
    ap.add_argument("--grid", nargs="+", default=DEFAULT_GRID,
                    help="settings as fine_per_group:restarts:min_fine_size")
    ap.add_argument("--seeding", nargs="+", default=["default"],
                    help="k-means++ seedings of the fine draws to score: default, trialsN, subF (see above)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "tune_grouping.json"))
    args = ap.parse_args()

    catalog = load_shared("scientific")
    level = LCREC_LABEL_LEVEL["scientific"]
    dev = [i for i, it in enumerate(catalog) if zlib.crc32(it.item_id.encode()) % 2 == 0]
    texts = catalog.texts
    emb = normalise(np.asarray(Embedder(RunConfig().embedding, cache_dir=str(REPO / ".cache" / "agentictagger"))
                               .encode([texts[i] for i in dev]), dtype=np.float32))
    gold_all = [scientific_label(catalog[i].fields.get("categories"), level) for i in dev]
    labelled = [j for j, g in enumerate(gold_all) if g]
    gold = [gold_all[j] for j in labelled]

    def score(labels) -> dict:
        labels = np.asarray(labels)
        return partition_scores(labels[labelled].tolist(), gold)

    from sklearn.cluster import KMeans

    defaults = GroupingConfig()
    res: dict = {
        "what": "grouping settings on Scientific's development half (crc32(item_id) even), grouping alone, "
                f"{TARGET} groups, vs Amazon level {level}; KMeans(k={TARGET}, n_init=10) with the same seed on the same "
                "embeddings; seconds per grouping with the draws on all cores, one BLAS thread each",
        "items": len(dev), "labelled_items": len(labelled), "classes": len(set(gold)), "seeds": args.seeds,
        "defaults": {"fine_per_group": defaults.fine_per_group, "restarts": defaults.restarts,
                     "min_fine_size": defaults.min_fine_size},
        "kmeans": {}, "settings": {},
    }
    with single_threaded_numerics():
        for seed in args.seeds:
            res["kmeans"][str(seed)] = score(KMeans(n_clusters=TARGET, n_init=10, random_state=seed).fit_predict(emb))
        for spec, seeding_name in itertools.product(args.grid, args.seeding):
            fpg, restarts, min_size = (int(x) for x in spec.split(":"))
            key = spec if seeding_name == "default" else f"{spec} seeding={seeding_name}"
            m = n_fine_clusters(len(emb), TARGET, fpg, min_size)
            per_seed, secs = {}, []
            for seed in args.seeds:
                t0 = time.perf_counter()
                with seeding(seeding_name):
                    labels, _ = consensus_groups(emb, m, TARGET, seed, restarts)
                secs.append(time.perf_counter() - t0)
                per_seed[str(seed)] = score(labels)
            d_nmi = [per_seed[str(s)]["nmi"] - res["kmeans"][str(s)]["nmi"] for s in args.seeds]
            d_ari = [per_seed[str(s)]["ari"] - res["kmeans"][str(s)]["ari"] for s in args.seeds]
            res["settings"][key] = {
                "fine_per_group": fpg, "restarts": restarts, "min_fine_size": min_size, "fine_clusters": m,
                "seeding": seeding_name,
                "per_seed": per_seed,
                "nmi": mean_sd([per_seed[str(s)]["nmi"] for s in args.seeds]),
                "ari": mean_sd([per_seed[str(s)]["ari"] for s in args.seeds]),
                "minus_kmeans_nmi": mean_sd(d_nmi), "minus_kmeans_ari": mean_sd(d_ari),
                "seeds_with_both_gains_at_least_0.03": int(sum(a >= 0.03 and b >= 0.03 for a, b in zip(d_nmi, d_ari))),
                "seconds_per_grouping": mean_sd(secs),
                "command": command_line(),
            }
            r = res["settings"][key]
            print(f"{key:>26}  m={m:<4} NMI {r['nmi']['mean']:.3f} ARI {r['ari']['mean']:.3f}  "
                  f"-KMeans NMI {r['minus_kmeans_nmi']['mean']:+.3f} (min {min(d_nmi):+.3f}) "
                  f"ARI {r['minus_kmeans_ari']['mean']:+.3f} (min {min(d_ari):+.3f})  "
                  f"both >= .03: {r['seeds_with_both_gains_at_least_0.03']}/{len(args.seeds)}  "
                  f"{r['seconds_per_grouping']['mean']:.1f} s", flush=True)
    # Settings scored by earlier invocations on the same seeds stay in the file (each records its command).
    out = Path(args.out)
    if out.exists():
        old = json.loads(out.read_text())
        if old.get("seeds") == args.seeds and old.get("items") == res["items"]:
            kept = {k: v for k, v in old.get("settings", {}).items() if k not in res["settings"]}
            res["settings"] = {**kept, **res["settings"]}
    km = [res["kmeans"][str(s)] for s in args.seeds]
    res["kmeans_summary"] = {"nmi": mean_sd([k["nmi"] for k in km]), "ari": mean_sd([k["ari"] for k in km])}
    print(f"{'KMeans':>26}  k={TARGET:<4} NMI {res['kmeans_summary']['nmi']['mean']:.3f} ARI {res['kmeans_summary']['ari']['mean']:.3f}")
    write_result(args.out, res)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
