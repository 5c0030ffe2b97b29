"""How much a descriptor's name weighs in how items are matched to it, chosen on Scientific's development half.

The offline architect matches items to a descriptor by its prototype rows: the centroids of the
group's pieces blended with the embedding of its name and definition,
``(1 - w) * centroid + w * name`` (``build.grouping.prototype_weight``). The build's annotators
judge coverage by the names, and the assignment uses the prototypes, so ``w`` sets how far the
groups an item lands in are the ones its descriptors' texts describe. This bench builds the
**development half** of Amazon 2018 Industrial_and_Scientific (items whose crc32(item_id) is
even, as ``bench/tune_grouping.py``; the other half and the Office catalog are never read) with
the offline profile once per weight and seed, and scores: level-1 NMI / ARI against the Amazon
level-2 categories beside scikit-learn KMeans (n_init = 10, same k, same seed), level 2 against
Amazon level 3 beside KMeans at the same number of groups, and names-alone agreement by the
embedding judge at levels 1-2 (items matched among siblings by name + definition only, against
the groups they were assigned to; no labels), with the build's refinement figures per level and
the renames its steps applied. Writes ``bench/results/tune_matching.json`` and
prints a short table.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/tune_matching.py [--seeds 0-2] [--weights 0.1 0.3 0.5 0.7 0.85 1.0]

``--setting LABEL=KEY=VALUE[;KEY=VALUE...]`` (repeatable) scores named settings instead of weights,
each a set of config overrides on the defaults (``LABEL=`` alone: the defaults), with the build
time of each beside its figures (e.g. the sub-jobs' draws and the separating examples' trials:
``--setting default= --setting draws5=build.grouping.sub_job_restarts=5``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import kmeans, mean_sd  # noqa: E402
from tune_grouping import seeds_arg  # noqa: E402
from tune_renames import built, changes_applied, scoring_inputs  # noqa: E402

from agentictagger.config import GroupingConfig  # noqa: E402
from agentictagger.vocab.quality import name_identifiability, partition_scores  # noqa: E402
from agentictagger.vocab.summary import load_jobs, refinement_effect  # noqa: E402

LEVELS = (1, 2)


def settings_arg(values: list[str]) -> dict[str, list[str]]:
    """``LABEL=KEY=VALUE;KEY=VALUE`` strings -> {label: ["KEY=VALUE", ...]} (``LABEL=``: no overrides)."""
    out: dict[str, list[str]] = {}
    for v in values:
        label, _, rest = v.partition("=")
        if not label or label in out:
            raise SystemExit(f"--setting {v!r}: each setting needs its own label (LABEL=KEY=VALUE;...)")
        out[label] = [kv for kv in rest.split(";") if kv]
    return out


def main() -> int:
    default_w = GroupingConfig().prototype_weight
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0-2"), help="e.g. 0,1 or 0-2")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.85, 1.0])
    ap.add_argument("--setting", action="append", default=[],
                    help="LABEL=KEY=VALUE[;KEY=VALUE...]: score these named overrides instead of --weights")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "tune_matching.json"))
    args = ap.parse_args()
    settings = settings_arg(args.setting) if args.setting else {
        f"w{w:g}": [f"build.grouping.prototype_weight={w}"] for w in args.weights}

    dev, embedder, emb, _, _, gold = scoring_inputs("scientific", LEVELS)
    ids = dev.ids
    rows: dict[str, list[dict]] = {}
    base_cache: dict[tuple[int, int], list[str]] = {}  # KMeans on every item, scored on the labelled ones
    for seed in args.seeds:
        for key, overrides in settings.items():
            run_dir = REPO / "bench" / "runs" / "tune_matching" / f"{key}_s{seed}"
            vocab, item_paths, _, build_s = built(run_dir, dev, [f"seed={seed}", *overrides])
            entry: dict = {"seed": seed, "overrides": overrides, "run_dir": str(run_dir.relative_to(REPO)),
                           "build_and_assign_seconds": build_s}
            if not args.setting:
                entry["prototype_weight"] = float(overrides[0].split("=")[1])
            for lv in LEVELS:
                lab = [r for r, g in enumerate(gold[lv]) if g is not None and len(item_paths[r]) >= lv]
                ours = ["/".join(item_paths[r][:lv]) for r in lab]
                k = len(set(ours))
                if (k, seed) not in base_cache:
                    base_cache[(k, seed)] = kmeans(emb, k, seed)
                base = [base_cache[(k, seed)][r] for r in lab]
                truth = [gold[lv][r] for r in lab]
                entry[f"level{lv}"] = {"groups": k, "ours": partition_scores(ours, truth),
                                       "kmeans_ninit10": partition_scores(base, truth)}
            judge = name_identifiability(vocab, emb, item_paths, embedder.encode, LEVELS)
            entry["names_alone_embedding_judge"] = judge
            # The build's own loop: its annotators judge by the names too, so a heavier name leaves
            # fewer misread items for the architect to rename.
            effect = refinement_effect(load_jobs(run_dir))
            entry["refinement_by_level"] = {lv: v for lv, v in effect["by_level"].items() if lv in ("1", "2")}
            entry["renames_applied_by_level"] = changes_applied(run_dir)
            entry["level1_names"] = [d.name for d in vocab.children("root")]
            rows.setdefault(key, []).append(entry)
            l1, l2 = entry["level1"], entry["level2"]
            print(f"seed {seed} {key} L1 ours {l1['ours']['nmi']:.3f}/{l1['ours']['ari']:.3f} KMeans "
                  f"{l1['kmeans_ninit10']['nmi']:.3f}/{l1['kmeans_ninit10']['ari']:.3f} | L2 ours "
                  f"{l2['ours']['nmi']:.3f}/{l2['ours']['ari']:.3f} KMeans {l2['kmeans_ninit10']['nmi']:.3f}/"
                  f"{l2['kmeans_ninit10']['ari']:.3f} | names alone L1 {judge['1']['accuracy']:.3f} "
                  f"L2 {judge['2']['accuracy']:.3f} | renames {entry['renames_applied_by_level']}", flush=True)

    def stat(rs: list[dict], f) -> dict:
        return mean_sd([f(r) for r in rs])

    summary = {
        key: {
            **{f"L{lv}_{m}": stat(rs, lambda r, lv=lv, m=m: r[f"level{lv}"]["ours"][m]) for lv in LEVELS for m in ("nmi", "ari")},
            **{f"L{lv}_{m}_gain_over_kmeans": stat(rs, lambda r, lv=lv, m=m: r[f"level{lv}"]["ours"][m] - r[f"level{lv}"]["kmeans_ninit10"][m])
               for lv in LEVELS for m in ("nmi", "ari")},
            **{f"names_alone_L{lv}": stat(rs, lambda r, lv=lv: r["names_alone_embedding_judge"][str(lv)]["accuracy"]) for lv in LEVELS},
        }
        for key, rs in rows.items()
    }
    if args.setting:
        for key, rs in rows.items():
            summary[key]["build_and_assign_seconds"] = [r["build_and_assign_seconds"] for r in rs]
            # With the shared embedding cache: texts an earlier run embedded are not embedded again,
            # so these are rough; bench/build_speed.py times builds from equal caches.
    write_result(Path(args.out), {
        "command": command_line(),
        "what": ("settings " + ", ".join(f"{k}: {' '.join(v) or 'the defaults'}" for k, v in settings.items())
                 if args.setting else "prototype weight of the name in the offline architect's matching rows")
        + ", on Scientific's development "
        f"half (crc32(item_id) even, {len(ids)} items), offline profile; level 1 against Amazon level 2, level 2 "
        "against Amazon level 3 (labelled items), names alone without labels",
        "default_weight": default_w,
        "seeds": args.seeds,
        "summary": summary,
        ("per_setting" if args.setting else "per_weight"): rows,
    })
    cols = ("L1_nmi", "L1_ari", "L1_nmi_gain_over_kmeans", "L1_ari_gain_over_kmeans", "L2_nmi_gain_over_kmeans",
            "L2_ari_gain_over_kmeans", "names_alone_L1", "names_alone_L2")
    print(f"\n| {'setting' if args.setting else 'weight'} | " + " | ".join(c.replace("_", " ") for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for key, sm in summary.items():
        print(f"| {key if args.setting else key[1:]} | " + " | ".join(f"{sm[c]['mean']:+.3f} ± {sm[c]['sd']:.3f} (min {min(sm[c]['values']):+.3f})"
                                            if "gain" in c else f"{sm[c]['mean']:.3f} ± {sm[c]['sd']:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
