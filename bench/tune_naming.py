"""The LLM namer's settings, chosen on Scientific's development half.

The LLM namer sees a few item texts per group. ``build.naming.titles=central`` shows the group's
most central texts; ``medoids`` shows K-medoids representatives of the group (largest part
first). ``renames`` also asks the LLM, in each job's first refinement step, to rename the groups
whose names the embedding judge misreads (``build.naming.refine_steps=1``). These three show
level-1 groups by their titles alone (``build.naming.hints=below_top``). ``hints`` (the default
now) shows each level-1 group with its three most distinctive phrases beside its titles, as below
level 1 (``build.naming.hints=every_level``). ``misfits_vs_fallback`` keeps an LLM name that stays
nearer a sibling's central titles than its own group's after the re-asks when the key-phrase name
fits the group no better (``build.naming.misfits=vs_fallback``); measured with ``--profile
local-llm`` (the LLM names levels 1-3; the misfit check is behind most fallbacks at levels 2-3).
This bench builds the **development half** of Amazon 2018 Industrial_and_Scientific
(items whose crc32(item_id) is even, as ``bench/tune_grouping.py``; the other half and the Office
catalog are never read here) with the local-LLM profile of ``bench/taxonomy_alignment.py``
(by default ``local-llm-l2``: Qwen2.5-Coder-1.5B names levels 1-2, the demo's naming settings) once per
setting and seed, on the same grouping, and scores the names without labels: names-alone
agreement by the embedding judge (items matched to their level's sibling descriptors by name +
definition only, against the groups they were assigned to), the share named by the LLM, and the
name-rule figures. It writes ``bench/results/tune_naming.json`` (or ``--out``) and prints a short table.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/tune_naming.py [--seeds 0,1] [--settings central medoids]
        [--profile local-llm] [--out bench/results/tune_naming_misfits.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import PROFILES, mean_sd, usage_of  # noqa: E402
from tune_grouping import seeds_arg  # noqa: E402
from tune_renames import built, names_that_differ, naming_catalog  # noqa: E402

from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402
from agentictagger.vocab.keyphrases import catalog_brands  # noqa: E402
from agentictagger.vocab.quality import name_identifiability, name_quality  # noqa: E402
from agentictagger.vocab.summary import load_jobs, refinement_effect  # noqa: E402

#: The profiles of ``bench/taxonomy_alignment.py`` this bench may build with, and their LLM-named levels.
PROFILE_LEVELS = {"local-llm-l2": (1, 2), "local-llm": (1, 2, 3)}
#: Each setting's overrides on top of the profile's.
# The first three show level-1 groups by their titles alone (``build.naming.hints=below_top``,
# the default before ``hints`` was chosen), so they compare with each other as first measured;
# ``hints`` is the default now.
SETTINGS = {
    "central": ["build.naming.titles=central", "build.naming.hints=below_top"],
    "medoids": ["build.naming.titles=medoids", "build.naming.hints=below_top"],
    # The LLM is asked to rename the groups whose names the judge misreads, in a job's first
    # refinement step (the profile, like the demo, asks it for no renames).
    "renames": ["build.naming.titles=central", "build.naming.hints=below_top", "build.naming.refine_steps=1"],
    # Each level-1 group also shown with its three most distinctive phrases (as below level 1).
    "hints": ["build.naming.titles=central", "build.naming.hints=every_level"],
    # An LLM name still a misfit after the re-asks (nearer a sibling's central titles than its own
    # group's) is replaced by the key-phrase name only when that fits the group better.
    "misfits_vs_fallback": ["build.naming.titles=central", "build.naming.hints=every_level",
                            "build.naming.misfits=vs_fallback"],
}


def named_by_llm(vocab: Vocabulary, level: int) -> tuple[int, int]:
    ds = vocab.level(level)
    return sum(d.named_by == "llm" for d in ds), len(ds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0,1"), help="e.g. 0,1 or 0-2")
    ap.add_argument("--settings", nargs="+", default=[s for s in SETTINGS if s != "misfits_vs_fallback"], choices=list(SETTINGS))
    ap.add_argument("--profile", default="local-llm-l2", choices=list(PROFILE_LEVELS),
                    help="local-llm-l2: the LLM names levels 1-2; local-llm: levels 1-3 (its run folders are named so)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "tune_naming.json"))
    args = ap.parse_args()
    PROFILE, LEVELS = args.profile, PROFILE_LEVELS[args.profile]

    dev = naming_catalog("scientific")
    ids = dev.ids
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    emb = np.asarray(embedder.encode(dev.texts), dtype=np.float32)
    brand_words, brands = catalog_brands([str(it.fields.get("brand") or "") for it in dev], dev.texts)

    rows: dict[str, list[dict]] = {s: [] for s in args.settings}
    vocabs: dict[tuple[str, int], Vocabulary] = {}
    members: dict[tuple[str, int], dict[str, set[str]]] = {}
    for seed in args.seeds:
        for setting in args.settings:
            prefix = "" if PROFILE == "local-llm-l2" else f"{PROFILE}_"
            run_dir = REPO / "bench" / "runs" / "tune_naming" / f"{prefix}{setting}_s{seed}"
            sets = [f"seed={seed}", *PROFILES[PROFILE], *SETTINGS[setting]]
            vocab, item_paths, by_desc, build_s = built(run_dir, dev, sets)
            vocabs[(setting, seed)], members[(setting, seed)] = vocab, by_desc
            usage = usage_of(run_dir)
            judge = name_identifiability(vocab, emb, item_paths, embedder.encode, LEVELS)
            entry = {
                "seed": seed,
                "run_dir": str(run_dir.relative_to(REPO)),
                "sets": sets,
                "build_and_assign_seconds": build_s,
                # Answers taken from the response cache (a setting's prompts that an earlier setting
                # already sent) are not calls: count both.
                "llm_calls": usage.get("calls", 0),
                "llm_cache_hits": usage.get("cache_hits", 0),
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "names_alone_embedding_judge": judge,
                "named_by_llm": {str(lv): list(named_by_llm(vocab, lv)) for lv in LEVELS},
                "name_quality": name_quality(vocab, LEVELS, brand_strings=brands, brand_terms=brand_words),
                "level1_names": [{"name": d.name, "definition": d.definition, "items": d.item_count, "named_by": d.named_by}
                                 for d in vocab.children("root")],
            }
            entry["refinement"] = {k: v for k, v in refinement_effect(load_jobs(run_dir)).items() if k != "per_job"}
            rows[setting].append(entry)
            alone = " ".join(f"L{lv} {judge[str(lv)]['accuracy']:.3f}" for lv in LEVELS)
            named = " ".join(f"L{lv} {entry['named_by_llm'][str(lv)]}" for lv in LEVELS)
            print(f"seed {seed} {setting:8s} names alone {alone} LLM-named {named} calls {entry['llm_calls']}", flush=True)

    summary = {
        s: {f"names_alone_L{lv}": mean_sd([r["names_alone_embedding_judge"][str(lv)]["accuracy"] for r in rs]) for lv in LEVELS}
        for s, rs in rows.items()
    }
    result = {
        "command": command_line(),
        "what": "LLM namer settings on Scientific's development half (crc32(item_id) "
        f"even, {len(ids)} items), profile {PROFILE} of bench/taxonomy_alignment.py; scored without labels",
        "profile_sets": PROFILES[PROFILE],
        "settings": {k: SETTINGS[k] for k in args.settings},
        "seeds": args.seeds,
        "summary": summary,
        "per_setting": rows,
        # The same group (Jaccard >= 0.8 of its items, same level) named differently by the first
        # setting and each other one.
        "names_that_differ": names_that_differ(vocabs, members, args.settings, args.seeds, LEVELS),
    }
    write_result(Path(args.out), result)
    print("\n| setting | " + " | ".join(f"names alone L{lv}" for lv in LEVELS) + " | "
          + " | ".join(f"LLM-named L{lv} (per seed)" for lv in LEVELS) + " |")
    print("|---|" + "---|" * (2 * len(LEVELS)))
    for s, rs in rows.items():
        sm = summary[s]
        alone = " | ".join(f"{sm[f'names_alone_L{lv}']['mean']:.3f} ± {sm[f'names_alone_L{lv}']['sd']:.3f}" for lv in LEVELS)
        named = " | ".join("/".join(str(r["named_by_llm"][str(lv)][0]) for r in rs) for lv in LEVELS)
        print(f"| {s} | {alone} | {named} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
