"""Key-phrase names completed to the compound their titles write, chosen on Scientific's development half.

Key phrases are one or two words, so an offline name can stop inside the noun compound the
titles write ("Grinding" for grinding wheels, "Glass" for glass bottles, "Crystal" for crystal
oscillators). ``complete`` (the default, ``KeyphraseNamer.COMPLETE_COMPOUNDS``) completes such a
name (``keyphrases.complete_compound``); ``plain`` leaves it as picked. The setting is a class
attribute, set here in-process per build.

This bench builds the **development half** of Amazon 2018 Industrial_and_Scientific (items whose
crc32(item_id) is even, as ``bench/tune_grouping.py``; the other half and Office are never read)
with the offline profile once per setting and seed, and scores, per level: the names that stop
inside a compound their group's texts write (``name_rules.cut_short`` on the descriptor's items),
names-alone agreement by the embedding judge (items matched to their level's sibling descriptors
by name + definition only, against the groups they were assigned to; the build's own judge), how
near each name comes to the Amazon category name most of its items carry (level 1 against Amazon
level 2, level 2 against level 3; ``quality.category_name_agreement``), the name-rule figures, and
the names that differ between the settings on the same group. ``--catalog office`` runs the same
comparison on the whole Office catalog (held out: reported after the choice was made on
Scientific, never used to make it). Writes ``bench/results/compound_names[_office].json`` and
prints a short table.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/compound_names.py [--seeds 0,1] [--catalog office]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import mean_sd  # noqa: E402
from tune_grouping import seeds_arg  # noqa: E402

from agentictagger.api import AgenticTagger  # noqa: E402
from agentictagger.catalog import LCREC_LABEL_LEVEL, load_shared, scientific_label  # noqa: E402
from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402
from agentictagger.vocab.keyphrases import catalog_brands  # noqa: E402
from agentictagger.vocab.name_rules import cut_short  # noqa: E402
from agentictagger.vocab.naming import KeyphraseNamer  # noqa: E402
from agentictagger.vocab.quality import category_name_agreement, name_identifiability, name_quality  # noqa: E402

LEVELS = (1, 2, 3)
CATEGORY_LEVELS = (1, 2)
SETTINGS = {"complete": True, "plain": False}


def stopping_short(vocab: Vocabulary, texts_of: dict[str, list[str]]) -> dict[str, dict]:
    """Per level: descriptors, and those whose name stops inside a compound their items write."""
    out: dict[str, dict] = {}
    for lv in LEVELS:
        rows = [(d.name, cut_short(d.name, texts_of.get(d.id, []))) for d in vocab.level(lv)]
        short = [{"name": n, "texts_say": c} for n, c in rows if c]
        out[str(lv)] = {"descriptors": len(rows), "stop_short": len(short), "examples": short}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0,1"), help="e.g. 0,1 or 0-2")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--catalog", choices=["scientific", "office"], default="scientific",
                    help="scientific: its development half (the choice); office: the whole held-out catalog")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    heldout = args.catalog == "office"
    out_path = Path(args.out or REPO / "bench" / "results" / f"compound_names{'_office' if heldout else ''}.json")

    catalog = load_shared(args.catalog)
    dev = catalog if heldout else catalog.subset([i for i, it in enumerate(catalog) if zlib.crc32(it.item_id.encode()) % 2 == 0])
    ids = dev.ids
    text_by_id = dict(zip(ids, dev.texts))
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    emb = np.asarray(embedder.encode(dev.texts), dtype=np.float32)
    brand_words, brands = catalog_brands([str(it.fields.get("brand") or "") for it in dev], dev.texts)
    lvl = LCREC_LABEL_LEVEL[args.catalog]
    gold = {lv: [scientific_label(it.fields.get("categories"), lvl + lv - 1) for it in dev] for lv in CATEGORY_LEVELS}

    default = KeyphraseNamer.COMPLETE_COMPOUNDS
    rows: dict[str, list[dict]] = {s: [] for s in args.settings}
    vocabs: dict[tuple[str, int], Vocabulary] = {}
    members: dict[tuple[str, int], dict[str, set[str]]] = {}
    try:
        for seed in args.seeds:
            for setting in args.settings:
                KeyphraseNamer.COMPLETE_COMPOUNDS = SETTINGS[setting]
                run_dir = REPO / "bench" / "runs" / "compound_names" / f"{'office_' if heldout else ''}{setting}_s{seed}"
                build_s = None
                if not (run_dir / "assignments.jsonl").exists():
                    t0 = time.monotonic()
                    AgenticTagger(overrides=[f"seed={seed}"], run_dir=run_dir).fit(dev)
                    build_s = round(time.monotonic() - t0, 1)
                vocab = Vocabulary.load(run_dir / "vocabulary.json")
                vocabs[(setting, seed)] = vocab
                paths = Assignment.load_jsonl(run_dir / "assignments.jsonl").paths
                item_paths = [paths.get(i, []) for i in ids]
                by_desc: dict[str, set[str]] = {}
                for i, p in zip(ids, item_paths):
                    for d in p:
                        by_desc.setdefault(d, set()).add(i)
                members[(setting, seed)] = by_desc
                texts_of = {d: [text_by_id[i] for i in sorted(items)] for d, items in by_desc.items()}
                judge = name_identifiability(vocab, emb, item_paths, embedder.encode, LEVELS)
                entry = {
                    "seed": seed,
                    "run_dir": str(run_dir.relative_to(REPO)),
                    "build_and_assign_seconds": build_s,
                    "names_stopping_inside_a_compound": stopping_short(vocab, texts_of),
                    "names_alone_embedding_judge": judge,
                    "names_vs_amazon_category_names": category_name_agreement(vocab, item_paths, gold, embedder.encode),
                    "name_quality": name_quality(vocab, LEVELS, brand_strings=brands, brand_terms=brand_words),
                }
                rows[setting].append(entry)
                short = entry["names_stopping_inside_a_compound"]
                cat = entry["names_vs_amazon_category_names"]
                print(f"seed {seed} {setting:9s} stop short " + " ".join(f"L{lv} {short[str(lv)]['stop_short']}/{short[str(lv)]['descriptors']}" for lv in LEVELS)
                      + " | names alone " + " ".join(f"L{lv} {judge[str(lv)]['accuracy']:.3f}" for lv in LEVELS)
                      + f" | category hit L1 {cat['1']['hit']:.3f} L2 {cat['2']['hit']:.3f}", flush=True)
    finally:
        KeyphraseNamer.COMPLETE_COMPOUNDS = default

    # The same group (a descriptor holding mostly the same items, Jaccard >= 0.8, at the same
    # level) named differently by the two settings.
    differs: dict[str, list[dict]] = {}
    base = args.settings[0]
    for s in args.settings[1:]:
        for seed in args.seeds:
            a, b = vocabs[(base, seed)], vocabs[(s, seed)]
            ma, mb = members[(base, seed)], members[(s, seed)]
            pairs = []
            for d in a:
                if d.level not in LEVELS or not ma.get(d.id):
                    continue
                best = max((e for e in b.level(d.level) if mb.get(e.id)),
                           key=lambda e: len(ma[d.id] & mb[e.id]) / len(ma[d.id] | mb[e.id]), default=None)
                if best is None or len(ma[d.id] & mb[best.id]) / len(ma[d.id] | mb[best.id]) < 0.8 or best.name == d.name:
                    continue
                pairs.append({"level": d.level, "parent": a.path_names(d.parent) if d.parent != "root" else "",
                              base: d.name, s: best.name, "items": len(ma[d.id])})
            differs[f"{base} vs {s}, seed {seed}"] = pairs
    summary = {
        s: {
            **{f"stop_short_L{lv}": [r["names_stopping_inside_a_compound"][str(lv)]["stop_short"] for r in rs] for lv in LEVELS},
            **{f"descriptors_L{lv}": [r["names_stopping_inside_a_compound"][str(lv)]["descriptors"] for r in rs] for lv in LEVELS},
            **{f"names_alone_L{lv}": mean_sd([r["names_alone_embedding_judge"][str(lv)]["accuracy"] for r in rs]) for lv in LEVELS},
            **{f"category_hit_L{lv}": mean_sd([r["names_vs_amazon_category_names"][str(lv)]["hit"] for r in rs]) for lv in CATEGORY_LEVELS},
            **{f"category_cosine_L{lv}": mean_sd([r["names_vs_amazon_category_names"][str(lv)]["cosine"] for r in rs])
               for lv in CATEGORY_LEVELS},
        }
        for s, rs in rows.items()
    }
    result = {
        "command": command_line(),
        "what": (f"key-phrase names completed to their titles' compounds on the whole Office catalog ({len(ids)} items; held "
                 "out: the default was chosen on Scientific's development half before this run), offline profile") if heldout else
        ("key-phrase names completed to their titles' compounds on Scientific's development half (crc32(item_id) even, "
         f"{len(ids)} items), offline profile"),
        "settings": {k: {"complete_compounds": v} for k, v in SETTINGS.items() if k in args.settings},
        "seeds": args.seeds,
        "summary": summary,
        "names_that_differ": differs,
        "per_setting": rows,
    }
    write_result(out_path, result)
    cols = [f"names_alone_L{lv}" for lv in LEVELS] + [f"category_hit_L{lv}" for lv in CATEGORY_LEVELS]
    print("\n| setting | names stopping inside a compound, L1 / L2 / L3 (per seed) | " + " | ".join(c.replace("_", " ") for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for s, sm in summary.items():
        short = " / ".join(str(sm[f"stop_short_L{lv}"]) for lv in LEVELS)
        print(f"| {s} | {short} | " + " | ".join(f"{sm[c]['mean']:.3f} ± {sm[c]['sd']:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
