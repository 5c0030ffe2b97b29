"""Key-phrase names completed to the compound their titles write, chosen on Scientific's development half.

Key phrases are one or two words, so an offline name can stop inside the noun compound the
titles write ("Grinding" for grinding wheels, "Glass" for glass bottles, "Crystal" for crystal
oscillators). ``complete`` (the default, ``KeyphraseNamer.COMPLETE_COMPOUNDS``) completes such a
name (``keyphrases.complete_compound``), and a name with no continuation that the titles mostly
write after the same plain noun gets that noun ("Maker" for label makers -> "Label Maker";
``keyphrases.COMPLETE_MODIFIERS``); ``continued`` only completes forward; ``plain`` leaves names as
picked. Refinement renames are completed as names are. ``qualify20``: a name the group's texts write
as the end of a compound in under 20 % of the places they write it (a modifier: "Wireless",
"Caller") keeps its place and gets the kind its group's titles name most after it ("Wireless" ->
"Wireless Printer"; ``keyphrases.QUALIFY_SHARE``, the default, so ``complete`` includes it;
``unqualified`` leaves it out, as ``complete`` did in the result files written before it). The
settings ``kindpairs``, ``takenkinds`` and ``wholekinds20`` / ``wholekinds34`` of
``paired_names*.json``, ``taken_names.json`` and ``whole_kinds.json`` were not kept and their options
were removed (the files name the commit that ran them). ``sweeps2`` / ``sweeps3``:
the definitions' separating examples are chosen in 2 / 3 passes over a job's groups
(``build.naming.separating_sweeps``; names unchanged, definitions and what follows from them can
differ). ``unlexhead``: a modifier name is also qualified by a kind ending in a word the English
lexicon does not know ("Inlet Npt", "Extrusion Pla"; ``keyphrases.QUALIFY_LEXICON_HEAD``, on by
default). ``oldpraise``: names may use the praise words added to ``name_rules.PRAISE_WORDS`` with
``lexicon_heads.json`` ("Popular", "Economy", "Durable"; ``ADDED_PRAISE``). ``gain001`` / ``gain005`` /
``gain01``: a refinement step is applied only when it covers at least 0.1 % / 0.5 % / 1 % of its
job's items more than the step it refines (``build.min_refinement_gain``; default 0: as many is
enough). ``keepbound``: a name whose first word its job's texts write as half of a fixed phrase
("Duty Pencil Sharpener" from "heavy duty", "Caller Cordless Phone" from "caller ID") stays as it is
instead of getting the other half (``keyphrases.MEND_BOUND_OPENERS``, on by default). The settings are a class
attribute and module constants, set here in-process per build, and build options.

This bench builds the **development half** of Amazon 2018 Industrial_and_Scientific (items whose
crc32(item_id) is even, as ``bench/tune_grouping.py``; the other half and Office are never read)
with the offline profile once per setting and seed, and scores, per level: the names that stop
inside a compound their group's texts write (``name_rules.cut_short`` on the descriptor's items),
the names its texts mostly write after one plain noun (``keyphrases.with_modifier``), the names
whose first word its texts write as half of a fixed phrase (``name_rules.bound_opener``),
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

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import mean_sd  # noqa: E402
from tune_renames import built, names_that_differ, naming_parser, scoring_inputs  # noqa: E402

from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402
from agentictagger.vocab import keyphrases, name_rules  # noqa: E402
from agentictagger.vocab.name_rules import bound_opener, cut_short  # noqa: E402
from agentictagger.vocab.naming import KeyphraseNamer  # noqa: E402
from agentictagger.vocab.quality import category_name_agreement, name_identifiability, name_quality  # noqa: E402

LEVELS = (1, 2, 3)
CATEGORY_LEVELS = (1, 2)
def _plain(value: object) -> object:
    return sorted(value) if isinstance(value, frozenset) else value


#: The knobs a setting sets, in-process per build: (object, attribute, key in the JSON).
KNOBS = (
    (KeyphraseNamer, "COMPLETE_COMPOUNDS", "complete_compounds"),
    (keyphrases, "COMPLETE_MODIFIERS", "complete_modifiers"),
    (keyphrases, "QUALIFY_SHARE", "qualify_share"),
    (keyphrases, "QUALIFY_LEXICON_HEAD", "qualify_lexicon_head"),
    (name_rules, "PRAISE_WORDS", "praise_words"),
    (keyphrases, "MEND_BOUND_OPENERS", "mend_bound_openers"),
)
#: Praise words added to ``name_rules.PRAISE_WORDS`` with ``lexicon_heads.json``.
ADDED_PRAISE = frozenset("economy popular durable sturdy versatile convenient handy easy simple".split())
#: The namer's defaults (what ``complete`` runs), read from the knobs themselves (word sets as sorted
#: lists, as the JSON keeps them).
_BASE = {**{key: _plain(getattr(owner, attr)) for owner, attr, key in KNOBS}, "sets": []}
#: Per setting: the value of each knob (by its JSON key) and the build's extra ``--set`` options.
SETTINGS = {
    "complete": dict(_BASE),
    "continued": {**_BASE, "complete_modifiers": False},
    "plain": {**_BASE, "complete_compounds": False, "complete_modifiers": False},
    # A modifier name gets the kind its titles name most after it ("Wireless Printer"; the
    # default since qualified_names.json; "complete" ran without it before, as "unqualified" does).
    "qualify20": {**_BASE, "qualify_share": 0.2},
    "unqualified": {**_BASE, "qualify_share": None},
    # Definitions' separating examples chosen in 2 / 3 passes over a job's groups.
    "sweeps2": {**_BASE, "sets": ["build.naming.separating_sweeps=2"]},
    "sweeps3": {**_BASE, "sets": ["build.naming.separating_sweeps=3"]},
    # A modifier name is qualified by any kind, also one ending in an abbreviation ("Inlet Npt";
    # the default before lexicon_heads.json).
    "unlexhead": {**_BASE, "qualify_lexicon_head": False},
    # A refinement step is applied only when it covers at least this share of its job's items more.
    "gain001": {**_BASE, "sets": ["build.min_refinement_gain=0.001"]},
    "gain005": {**_BASE, "sets": ["build.min_refinement_gain=0.005"]},
    "gain01": {**_BASE, "sets": ["build.min_refinement_gain=0.01"]},
    # Names may use the praise words added to name_rules.PRAISE_WORDS with lexicon_heads.json.
    "oldpraise": {**_BASE, "praise_words": sorted(name_rules.PRAISE_WORDS - ADDED_PRAISE)},
    # A name opening with half of a fixed phrase ("Duty Pencil Sharpener", from "heavy duty") stays
    # as it is (the default before bound_names.json).
    "keepbound": {**_BASE, "mend_bound_openers": False},
}


def apply(setting: dict) -> None:
    for owner, attr, key in KNOBS:
        value = setting[key]
        setattr(owner, attr, frozenset(value) if isinstance(getattr(owner, attr), frozenset) else value)
    # The name rules remember their verdicts; a verdict given under another setting's word lists
    # must not carry over.
    name_rules.is_kind_name.cache_clear()


def stopping_short(vocab: Vocabulary, texts_of: dict[str, list[str]], all_texts: list[str]) -> dict[str, dict]:
    """Per level: descriptors, those whose name stops inside a compound their items write, those
    whose name their items mostly write after the same plain noun ("Maker" for label makers), and
    those whose first word their job's texts write as half of a fixed phrase ("Duty ...")."""
    out: dict[str, dict] = {}
    for lv in LEVELS:
        rows = [(d.name, cut_short(d.name, texts_of.get(d.id, []))) for d in vocab.level(lv)]
        short = [{"name": n, "texts_say": c} for n, c in rows if c]
        tails = [(d.name, keyphrases.with_modifier(d.name, texts_of.get(d.id, []), lv == 1)) for d in vocab.level(lv)]
        after = [{"name": n, "texts_say": c} for n, c in tails if c]
        # Read in the texts of the job that named it, as the namer does (all items at level 1).
        bound = [{"name": d.name, "texts_say": b} for d in vocab.level(lv)
                 if (b := bound_opener(d.name, texts_of.get(d.parent, []) if lv > 1 else all_texts))]
        out[str(lv)] = {"descriptors": len(rows), "stop_short": len(short), "examples": short,
                        "after_one_noun": len(after), "after_one_noun_examples": after,
                        "bound_opener": len(bound), "bound_opener_examples": bound}
    return out


def main() -> int:
    args = naming_parser(__doc__, list(SETTINGS)).parse_args()
    heldout = args.catalog == "office"
    out_path = Path(args.out or REPO / "bench" / "results" / f"compound_names{'_office' if heldout else ''}.json")

    dev, embedder, emb, brand_words, brands, gold = scoring_inputs(args.catalog, CATEGORY_LEVELS)
    ids = dev.ids
    text_by_id = dict(zip(ids, dev.texts))

    default = {key: getattr(owner, attr) for owner, attr, key in KNOBS}
    rows: dict[str, list[dict]] = {s: [] for s in args.settings}
    vocabs: dict[tuple[str, int], Vocabulary] = {}
    members: dict[tuple[str, int], dict[str, set[str]]] = {}
    try:
        for seed in args.seeds:
            for setting in args.settings:
                apply(SETTINGS[setting])
                run_dir = REPO / "bench" / "runs" / "compound_names" / f"{'office_' if heldout else ''}{setting}_s{seed}"
                vocab, item_paths, by_desc, build_s = built(run_dir, dev, [f"seed={seed}", *SETTINGS[setting]["sets"]])
                vocabs[(setting, seed)] = vocab
                members[(setting, seed)] = by_desc
                texts_of = {d: [text_by_id[i] for i in sorted(items)] for d, items in by_desc.items()}
                judge = name_identifiability(vocab, emb, item_paths, embedder.encode, LEVELS)
                entry = {
                    "seed": seed,
                    "run_dir": str(run_dir.relative_to(REPO)),
                    "build_and_assign_seconds": build_s,
                    "names_stopping_inside_a_compound": stopping_short(vocab, texts_of, dev.texts),
                    "paired_names": {str(lv): sorted(d.name for d in vocab.level(lv) if " & " in d.name) for lv in LEVELS},
                    "names_alone_embedding_judge": judge,
                    "names_vs_amazon_category_names": category_name_agreement(vocab, item_paths, gold, embedder.encode),
                    "name_quality": name_quality(vocab, LEVELS, brand_strings=brands, brand_terms=brand_words),
                }
                rows[setting].append(entry)
                short = entry["names_stopping_inside_a_compound"]
                cat = entry["names_vs_amazon_category_names"]
                print(f"seed {seed} {setting:9s} stop short " + " ".join(f"L{lv} {short[str(lv)]['stop_short']}/{short[str(lv)]['descriptors']}" for lv in LEVELS)
                      + " | after one noun " + " ".join(f"L{lv} {short[str(lv)]['after_one_noun']}" for lv in LEVELS)
                      + " | bound opener " + " ".join(f"L{lv} {short[str(lv)]['bound_opener']}" for lv in LEVELS)
                      + " | paired " + " ".join(f"L{lv} {len(entry['paired_names'][str(lv)])}" for lv in LEVELS)
                      + " | names alone " + " ".join(f"L{lv} {judge[str(lv)]['accuracy']:.3f}" for lv in LEVELS)
                      + f" | category hit L1 {cat['1']['hit']:.3f} L2 {cat['2']['hit']:.3f}", flush=True)
    finally:
        apply(default)

    differs = names_that_differ(vocabs, members, args.settings, args.seeds, LEVELS)
    summary = {
        s: {
            **{f"stop_short_L{lv}": [r["names_stopping_inside_a_compound"][str(lv)]["stop_short"] for r in rs] for lv in LEVELS},
            **{f"after_one_noun_L{lv}": [r["names_stopping_inside_a_compound"][str(lv)]["after_one_noun"] for r in rs] for lv in LEVELS},
            **{f"bound_opener_L{lv}": [r["names_stopping_inside_a_compound"][str(lv)]["bound_opener"] for r in rs] for lv in LEVELS},
            **{f"descriptors_L{lv}": [r["names_stopping_inside_a_compound"][str(lv)]["descriptors"] for r in rs] for lv in LEVELS},
            **{f"paired_names_L{lv}": [len(r["paired_names"][str(lv)]) for r in rs] for lv in LEVELS},
            **{f"names_alone_L{lv}": mean_sd([r["names_alone_embedding_judge"][str(lv)]["accuracy"] for r in rs]) for lv in LEVELS},
            **{f"category_hit_L{lv}": mean_sd([r["names_vs_amazon_category_names"][str(lv)]["hit"] for r in rs]) for lv in CATEGORY_LEVELS},
            **{f"category_cosine_L{lv}": mean_sd([r["names_vs_amazon_category_names"][str(lv)]["cosine"] for r in rs])
               for lv in CATEGORY_LEVELS},
        }
        for s, rs in rows.items()
    }
    result = {
        "command": command_line(),
        "what": (f"key-phrase naming settings (compounds completed, paired names) on the whole Office catalog ({len(ids)} items; held "
                 "out: the default was chosen on Scientific's development half before this run), offline profile") if heldout else
        ("key-phrase naming settings (compounds completed, paired names) on Scientific's development half (crc32(item_id) even, "
         f"{len(ids)} items), offline profile"),
        "settings": {k: v for k, v in SETTINGS.items() if k in args.settings},
        "seeds": args.seeds,
        "summary": summary,
        "names_that_differ": differs,
        "per_setting": rows,
    }
    write_result(out_path, result)
    cols = [f"names_alone_L{lv}" for lv in LEVELS] + [f"category_hit_L{lv}" for lv in CATEGORY_LEVELS]
    print("\n| setting | names stopping inside a compound, L1 / L2 / L3 (per seed) | names written after one noun, L1 / L2 / L3 | "
          "paired names (A & B), L1 / L2 / L3 | names opening with half of a fixed phrase, L1 / L2 / L3 | "
          + " | ".join(c.replace("_", " ") for c in cols) + " |")
    print("|---|---|---|---|---|" + "---|" * len(cols))
    for s, sm in summary.items():
        short = " / ".join(str(sm[f"stop_short_L{lv}"]) for lv in LEVELS)
        after = " / ".join(str(sm[f"after_one_noun_L{lv}"]) for lv in LEVELS)
        paired = " / ".join(str(sm[f"paired_names_L{lv}"]) for lv in LEVELS)
        bound = " / ".join(str(sm[f"bound_opener_L{lv}"]) for lv in LEVELS)
        print(f"| {s} | {short} | {after} | {paired} | {bound} | " + " | ".join(f"{sm[c]['mean']:.3f} ± {sm[c]['sd']:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
