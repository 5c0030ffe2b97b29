"""The offline refinement's renames and the definitions' examples, chosen on Scientific's development half.

In a refinement step the offline architect renames the descriptors whose names the embedding
judge misreads: the key-phrase namer offers other names and one replaces the name when more of
the job's items are then matched to their own group by name and definition alone; it also adds
named groups for the items no descriptor describes. ``keepkind`` (the default): offered are only
phrases that at least ``KeyphraseNamer.RENAME_MIN_KIND_SHARE`` of the group's titles end their
first segment in (what the titles say the items are) and that as many titles say as the current
name (``KeyphraseNamer.RENAME_KEEPS_KIND``), a rename needs a gain of at least
``EmbeddingArchitect.MIN_RENAME_GAIN`` items, and a group added for failures needs a name that
``EmbeddingArchitect.MIN_ADDED_KIND_SHARE`` of its titles say; ``kinds``: the default without the
last two conditions (the default before them; in result files written before ``keepkind``
existed, ``kinds`` is the default of their commit); ``any``: as ``kinds``, with every distinctive
phrase offered and a gain of one item enough (the earliest behaviour); ``norefine``: the default without its
refinement step (``build.refine_steps=0``), to see what the step changes at all;
``fixedexamples``: the default with each definition citing the phrases picked for naming instead of
examples chosen so that the sibling texts tell the groups' items apart
(``KeyphraseNamer.SEPARATING_EXAMPLES``). The settings are class attributes, set here in-process
per build.

This bench builds the **development half** of Amazon 2018 Industrial_and_Scientific (items whose
crc32(item_id) is even, as ``bench/tune_grouping.py``; the other half and Office are never read)
with the offline profile once per setting and seed, and scores: renames applied, names-alone
agreement by the embedding judge (no labels; by name + definition among siblings, the build's own
judge, and by the name alone), the level read as a menu (the item's descriptor is the nearest of
all the level's names, as the critique bench's "show me"), the name-rule figures, how near each name comes to
the Amazon category name most of its items carry (level 1 against Amazon level 2, level 2 against
level 3; ``quality.category_name_agreement``) and, with ``--llm-judge``, the local LLM as name
judge on 200 items per level (seed 0). Names that differ between settings on the same group are
listed. Writes ``bench/results/tune_renames.json`` and prints a short table.

``--catalog office`` runs the same comparison on the whole Office catalog (held out: reported after
the choice was made on Scientific, never used to make it; categories at Amazon levels 3 and 4, as
in ``bench/taxonomy_alignment.py``) into ``bench/results/tune_renames_office.json``.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/tune_renames.py [--seeds 0,1] [--llm-judge] [--catalog office]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import LLM_THREADS, mean_sd  # noqa: E402
from tune_grouping import seeds_arg  # noqa: E402

from agentictagger.api import AgenticTagger  # noqa: E402
from agentictagger.catalog import LCREC_LABEL_LEVEL, load_shared, scientific_label  # noqa: E402
from agentictagger.config import LLMConfig, RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402
from agentictagger.vocab.agents import EmbeddingArchitect  # noqa: E402
from agentictagger.vocab.keyphrases import catalog_brands  # noqa: E402
from agentictagger.vocab.naming import KeyphraseNamer  # noqa: E402
from agentictagger.vocab.quality import (  # noqa: E402
    category_name_agreement, llm_name_agreement, menu_agreement, name_identifiability, name_quality)

LEVELS = (1, 2)
#: The class attributes a setting sets, in the order of :data:`SETTINGS`' tuples.
KNOBS = ((KeyphraseNamer, "RENAME_MIN_KIND_SHARE"), (EmbeddingArchitect, "MIN_RENAME_GAIN"),
         (KeyphraseNamer, "SEPARATING_EXAMPLES"), (KeyphraseNamer, "RENAME_KEEPS_KIND"),
         (EmbeddingArchitect, "MIN_ADDED_KIND_SHARE"))
KNOB_NAMES = ("min_title_kind_share", "min_gain_items", "separating_examples", "rename_keeps_kind", "added_min_kind_share")
#: The defaults (what the package sets).
DEFAULT = tuple(getattr(cls, attr) for cls, attr in KNOBS)
#: Each setting: (least title-kind share of an offered phrase, least gain in items, definitions'
#: examples chosen to separate the siblings, a rename keeps at least the current name's title-kind
#: share, least title-kind share of a group added for failures).
SETTINGS = {
    # The default.
    "keepkind": DEFAULT,
    # The default before renames had to keep the kind and additions needed a kind name.
    "kinds": (*DEFAULT[:3], False, 0.0),
    "any": (0.0, 1, *DEFAULT[2:3], False, 0.0),
    # The default without its refinement step: what renaming and the rest of the step change at all.
    "norefine": DEFAULT,
    # The default with each definition citing the phrases picked for naming.
    "fixedexamples": (*DEFAULT[:2], False, *DEFAULT[3:]),
}
#: Build settings a setting changes besides the class attributes above.
OVERRIDES = {"norefine": ["build.refine_steps=0"]}


def changes_applied(run_dir: Path, what: str = "renamed") -> dict[str, int]:
    """Descriptors renamed (or, with ``what="added"``, added for failed items) per level in the
    refinement steps that were applied (rejected steps say so)."""
    out: dict[str, int] = {}
    for line in (run_dir / "build_log.jsonl").read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        m = re.search(rf"{what} (\d+)", e.get("summary", ""))
        if m and "step" in e:
            out[str(e["level"])] = out.get(str(e["level"]), 0) + int(m.group(1))
    return out


def set_knobs(values: tuple) -> None:
    for (cls, attr), v in zip(KNOBS, values):
        setattr(cls, attr, v)


def naming_parser(doc: str, settings: list[str]) -> argparse.ArgumentParser:
    """The naming benches' common options: seeds, settings, catalog (Scientific's development half
    or the whole held-out Office catalog) and output file."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0,1"), help="e.g. 0,1 or 0-2")
    ap.add_argument("--settings", nargs="+", default=settings, choices=settings)
    ap.add_argument("--catalog", choices=["scientific", "office"], default="scientific",
                    help="scientific: its development half (the choice); office: the whole held-out catalog")
    ap.add_argument("--out", default="")
    return ap


def naming_catalog(name: str) -> Any:
    """Scientific's development half (crc32(item_id) even, as ``bench/tune_grouping.py``) or the
    whole held-out Office catalog."""
    catalog = load_shared(name)
    if name == "office":
        return catalog
    return catalog.subset([i for i, it in enumerate(catalog) if zlib.crc32(it.item_id.encode()) % 2 == 0])


def scoring_inputs(name: str, levels: tuple[int, ...]) -> tuple[Any, Embedder, np.ndarray, frozenset[str], frozenset[str], dict[int, list]]:
    """What the naming benches score with, for :func:`naming_catalog`'s items: the items, the
    embedder and their vectors, the catalog's brand words and brand strings, and per level the
    Amazon category one level below the reference level's (level 1 against the reference level)."""
    dev = naming_catalog(name)
    embedder = Embedder(RunConfig().embedding, cache_dir=str(REPO / RunConfig().cache_dir))
    emb = np.asarray(embedder.encode(dev.texts), dtype=np.float32)
    brand_words, brands = catalog_brands([str(it.fields.get("brand") or "") for it in dev], dev.texts)
    lvl = LCREC_LABEL_LEVEL[name]
    gold = {lv: [scientific_label(it.fields.get("categories"), lvl + lv - 1) for it in dev] for lv in levels}
    return dev, embedder, emb, brand_words, brands, gold


def built(run_dir: Path, dev: Any, overrides: list[str]) -> tuple[Vocabulary, list[list[str]], dict[str, set[str]], float | None]:
    """The offline build of ``dev`` in ``run_dir`` (built and assigned here when missing): its
    vocabulary, each item's path, each descriptor's items and the build's seconds (None when reused)."""
    build_s = None
    if not (run_dir / "assignments.jsonl").exists():
        t0 = time.monotonic()
        AgenticTagger(overrides=overrides, run_dir=run_dir).fit(dev)
        build_s = round(time.monotonic() - t0, 1)
    vocab = Vocabulary.load(run_dir / "vocabulary.json")
    paths = Assignment.load_jsonl(run_dir / "assignments.jsonl").paths
    item_paths = [paths.get(i, []) for i in dev.ids]
    by_desc: dict[str, set[str]] = {}
    for i, p in zip(dev.ids, item_paths):
        for d in p:
            by_desc.setdefault(d, set()).add(i)
    return vocab, item_paths, by_desc, build_s


def names_that_differ(vocabs: dict, members: dict, settings: list[str], seeds: list[int], levels: tuple[int, ...]) -> dict[str, list[dict]]:
    """The same group (a descriptor holding mostly the same items, Jaccard >= 0.8, at the same
    level) named differently by the first setting and each other one, per seed. ``vocabs`` and
    ``members`` (descriptor id -> item ids) are keyed by (setting, seed)."""
    differs: dict[str, list[dict]] = {}
    base = settings[0]
    for s in settings[1:]:
        for seed in seeds:
            a, b = vocabs[(base, seed)], vocabs[(s, seed)]
            ma, mb = members[(base, seed)], members[(s, seed)]
            pairs = []
            for d in a:
                if d.level not in levels or not ma.get(d.id):
                    continue
                best = max((e for e in b.level(d.level) if mb.get(e.id)),
                           key=lambda e: len(ma[d.id] & mb[e.id]) / len(ma[d.id] | mb[e.id]), default=None)
                if best is None or len(ma[d.id] & mb[best.id]) / len(ma[d.id] | mb[best.id]) < 0.8 or best.name == d.name:
                    continue
                pairs.append({"level": d.level, "parent": a.path_names(d.parent) if d.parent != "root" else "",
                              base: d.name, s: best.name, "items": len(ma[d.id])})
            differs[f"{base} vs {s}, seed {seed}"] = pairs
    return differs


def main() -> int:
    ap = naming_parser(__doc__, list(SETTINGS))
    ap.add_argument("--llm-judge", action="store_true", help="also the local LLM as name judge (seed 0, 200 items per level)")
    args = ap.parse_args()
    heldout = args.catalog == "office"
    out_path = Path(args.out or REPO / "bench" / "results" / f"tune_renames{'_office' if heldout else ''}.json")

    dev, embedder, emb, brand_words, brands, gold = scoring_inputs(args.catalog, LEVELS)
    ids = dev.ids
    client = None
    if args.llm_judge:
        from agentictagger.llm.factory import make_client

        client = make_client(LLMConfig(backend="local", model_path="qwen2.5-coder-1.5b-instruct", n_threads=LLM_THREADS),
                             REPO / ".cache" / "agentictagger" / "llm")

    rows: dict[str, list[dict]] = {s: [] for s in args.settings}
    vocabs: dict[tuple[str, int], Vocabulary] = {}
    members: dict[tuple[str, int], dict[str, set[str]]] = {}
    try:
        for seed in args.seeds:
            for setting in args.settings:
                set_knobs(SETTINGS[setting])
                run_dir = REPO / "bench" / "runs" / "tune_renames" / f"{'office_' if heldout else ''}{setting}_s{seed}"
                vocab, item_paths, by_desc, build_s = built(run_dir, dev, [f"seed={seed}", *OVERRIDES.get(setting, [])])
                vocabs[(setting, seed)] = vocab
                members[(setting, seed)] = by_desc
                judge = name_identifiability(vocab, emb, item_paths, embedder.encode, LEVELS)
                bare = name_identifiability(vocab, emb, item_paths, embedder.encode, LEVELS, names_only=True)
                entry = {
                    "seed": seed,
                    "run_dir": str(run_dir.relative_to(REPO)),
                    "build_and_assign_seconds": build_s,
                    "renames_applied_by_level": changes_applied(run_dir),
                    "additions_applied_by_level": changes_applied(run_dir, "added"),
                    "names_alone_embedding_judge": judge,
                    "name_only_embedding_judge": bare,
                    "level_menu_by_name": menu_agreement(vocab, emb, item_paths, embedder.encode, LEVELS),
                    "names_vs_amazon_category_names": category_name_agreement(vocab, item_paths, gold, embedder.encode),
                    "name_quality": name_quality(vocab, LEVELS, brand_strings=brands, brand_terms=brand_words),
                    "level1_names": [d.name for d in vocab.children("root")],
                }
                if client is not None and seed == 0:
                    entry["names_alone_llm_judge"] = {
                        str(lv): llm_name_agreement(vocab, dev.texts, item_paths, client, level=lv, sample=200, seed=seed)
                        for lv in LEVELS
                    }
                rows[setting].append(entry)
                llm = entry.get("names_alone_llm_judge")
                cat = entry["names_vs_amazon_category_names"]
                print(f"seed {seed} {setting:12s} renames {entry['renames_applied_by_level']} names alone L1 "
                      f"{judge['1']['accuracy']:.3f} L2 {judge['2']['accuracy']:.3f} | name only L1 {bare['1']['accuracy']:.3f} "
                      f"L2 {bare['2']['accuracy']:.3f} | category hit L1 {cat['1']['hit']:.3f} "
                      f"L2 {cat['2']['hit']:.3f}"
                      + (f" | LLM judge L1 {llm['1']['agreement']} L2 {llm['2']['agreement']}" if llm else ""), flush=True)
    finally:
        set_knobs(DEFAULT)
        if client is not None:
            from agentictagger.llm.backends import local

            local.shutdown_servers()

    differs = names_that_differ(vocabs, members, args.settings, args.seeds, LEVELS)
    summary = {
        s: {
            **{f"names_alone_L{lv}": mean_sd([r["names_alone_embedding_judge"][str(lv)]["accuracy"] for r in rs]) for lv in LEVELS},
            **{f"name_only_L{lv}": mean_sd([r["name_only_embedding_judge"][str(lv)]["accuracy"] for r in rs]) for lv in LEVELS},
            **{f"menu_L{lv}": mean_sd([r["level_menu_by_name"][str(lv)]["accuracy"] for r in rs]) for lv in LEVELS},
            "renames_applied": [sum(r["renames_applied_by_level"].values()) for r in rs],
            "additions_applied": [sum(r["additions_applied_by_level"].values()) for r in rs],
            "descriptors_under_3_items": [sum(r["name_quality"][str(lv)]["descriptors_under_3_items"] for lv in LEVELS)
                                          for r in rs],
            **{f"category_hit_L{lv}": mean_sd([r["names_vs_amazon_category_names"][str(lv)]["hit"] for r in rs]) for lv in LEVELS},
            **{f"category_cosine_L{lv}": mean_sd([r["names_vs_amazon_category_names"][str(lv)]["cosine"] for r in rs]) for lv in LEVELS},
            **({"llm_judge_seed0": {lv: rs[0]["names_alone_llm_judge"][lv]["agreement"] for lv in ("1", "2")}}
               if rs and "names_alone_llm_judge" in rs[0] else {}),
        }
        for s, rs in rows.items()
    }
    result = {
        "command": command_line(),
        "what": (f"offline refinement renames on the whole Office catalog ({len(ids)} items; held out: the "
                 "default was chosen on Scientific's development half before this run), offline profile") if heldout else
        ("offline refinement renames and definition examples on Scientific's development half (crc32(item_id) even, "
         f"{len(ids)} items), offline profile"),
        "settings": {k: {**dict(zip(KNOB_NAMES, SETTINGS[k])),
                         **({"overrides": OVERRIDES[k]} if k in OVERRIDES else {})} for k in args.settings},
        "seeds": args.seeds,
        "summary": summary,
        "names_that_differ": differs,
        "per_setting": rows,
    }
    write_result(out_path, result)
    cols = ("names_alone_L1", "names_alone_L2", "name_only_L1", "name_only_L2", "menu_L1", "menu_L2", "category_hit_L1",
            "category_hit_L2", "category_cosine_L2")
    print("\n| setting | renames / additions applied (per seed) | " + " | ".join(c.replace("_", " ") for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for s, sm in summary.items():
        print(f"| {s} | {sm['renames_applied']} / {sm['additions_applied']} | " + " | ".join(f"{sm[c]['mean']:.3f} ± {sm[c]['sd']:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
