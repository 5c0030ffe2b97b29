"""Assigners on Scientific, measured against the Amazon categories.

Vocabularies:
  * ``amazon_categories``: level 1 = the Amazon level-2 categories, level 2 = the level-3 ones,
    definition = the name. The vocabulary is the ground truth itself, so this isolates assignment
    quality: level-1 accuracy = share of items put under their own Amazon level-2 category.
  * ``--vocab PATH`` (e.g. the lead's Scientific build): a built vocabulary, NMI/purity only.

Assigners: embedding on all items; embedding, LLM (level walk), hybrid (embedding shortlist, then
the LLM) and single-call on a seeded sample (the embedded 135M model is slow on this machine).

  nice python bench/assign_scientific.py [--llm-sample 40] [--vocab runs/scientific/vocabulary.json]
writes bench/results/assign_scientific.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from agentictagger.assign import Assignment, EmbeddingAssigner, HybridAssigner, LLMAssigner, SingleCallAssigner, assign_catalog
from agentictagger.catalog import load_shared
from agentictagger.config import EmbeddingConfig, LLMConfig
from agentictagger.run.report import compute_diagnostics
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command_line, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def category_path(item) -> list[str]:
    """Amazon category path below the 'Industrial & Scientific' root (comma-space is inside names)."""
    raw = (item.fields or {}).get("categories") or ""
    return [p.strip() for p in re.split(r",(?! )", raw) if p.strip()][1:]


def category_vocabulary(items) -> Vocabulary:
    v = Vocabulary(meta={"source": "Amazon categories, levels 2-3 (ground truth)"})
    ids: dict[tuple[str, ...], str] = {}
    for it in items:
        path = category_path(it)[:2]
        for depth in range(1, len(path) + 1):
            key = tuple(path[:depth])
            if key not in ids:
                parent = ROOT_ID if depth == 1 else ids[key[:-1]]
                ids[key] = v.add_children(parent, [(key[-1], key[-1])])[0].id
    for it in items:
        for depth in range(1, len(category_path(it)[:2]) + 1):
            v[ids[tuple(category_path(it)[:depth])]].item_count += 1
    return v


def summarise(assignment: Assignment, vocab: Vocabulary, labels: dict, oracle: bool) -> dict:
    d = compute_diagnostics(assignment, vocab, labels)
    out = {
        "items": len(assignment),
        "seconds": assignment.meta.get("seconds"),
        "items_per_s": assignment.meta.get("items_per_s"),
        "stats": assignment.meta.get("stats"),
        "label_agreement": d.get("label_agreement"),
        "coverage_per_level": d["coverage_per_level"],
        "utilization_over_vocabulary": d["utilization"]["over_vocabulary"],
        "collision_rate": d["collisions"]["collision_rate"],
        "largest_bucket": d["collisions"]["largest_bucket"],
    }
    if oracle:
        scored = [(i, p) for i, p in assignment if i in labels and labels[i]]
        for lvl in (1, 2):
            sub = [(i, p) for i, p in scored if len(labels[i]) >= lvl]
            hit = sum(1 for i, p in sub if len(p) >= lvl and [vocab[d].name for d in p[:lvl]] == labels[i][:lvl])
            out[f"level{lvl}_accuracy"] = hit / len(sub) if sub else None
            out[f"level{lvl}_accuracy_items"] = len(sub)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm-sample", type=int, default=40, help="items for the LLM assigners (seeded sample of labelled items)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shortlist", type=int, default=5)
    ap.add_argument("--lookahead", type=float, default=0.5)
    ap.add_argument("--choice-mode", default=None, help="embedded choice mode for the level walk (default: LLMConfig's)")
    ap.add_argument("--vocab", default=None, help="an extra built vocabulary.json to evaluate")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument(
        "--add-to-existing",
        action="store_true",
        help="only evaluate --vocab (embedding assigner) and add it to the existing results file",
    )
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache/agentictagger"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/assign_scientific.json"))
    args = ap.parse_args()

    from agentictagger.embed import Embedder

    t_start = time.perf_counter()
    catalog = load_shared("scientific")
    labels = {it.item_id: category_path(it)[:2] for it in catalog.items if category_path(it)}
    labelled = catalog.subset([i for i in catalog.ids if i in labels])
    sample = labelled.sample(args.llm_sample, seed=args.seed)
    embedder = Embedder(EmbeddingConfig(), cache_dir=args.cache_dir)

    vocabs: dict[str, tuple[Vocabulary, bool]] = {}
    if not args.add_to_existing:
        vocabs["amazon_categories"] = (category_vocabulary(catalog.items), True)
    if args.vocab:
        vocabs["built:" + args.vocab] = (Vocabulary.load(args.vocab), False)

    llm_cfg = LLMConfig(max_concurrency=1)
    choice_mode = args.choice_mode or llm_cfg.choice_mode
    client = None
    if not args.skip_llm and not args.add_to_existing:
        from agentictagger.llm.factory import make_client

        client = make_client(llm_cfg, Path(args.cache_dir) / "llm")

    result: dict = {
        "dataset": "scientific",
        "catalog_items": len(catalog),
        "labelled_items": len(labelled),
        "label_levels": "label level 1 = Amazon level-2 category, label level 2 = Amazon level-3 category",
        "llm": {"backend": llm_cfg.backend, "model": llm_cfg.model, "level_walk_choice_mode": choice_mode, "single_call_choice_mode": "generate"},
        "llm_sample": {"items": len(sample), "seed": args.seed},
        "embedding_model": EmbeddingConfig().model,
        "embedding_lookahead": args.lookahead,
        "command": command_line(),
        "vocabularies": {},
    }
    for vname, (vocab, oracle) in vocabs.items():
        print(f"== {vname}: {len(vocab)} descriptors, depth {vocab.depth}", file=sys.stderr, flush=True)
        runs: dict = {}
        for la in (0.0, 1.0):  # the lookahead ablation; 0.5 (the default) is the main run below
            a = assign_catalog(catalog, vocab, EmbeddingAssigner(embedder, lookahead=la), chunk_size=len(catalog))
            runs[f"embedding_all_items_lookahead_{la}"] = summarise(a, vocab, labels, oracle)
        emb = EmbeddingAssigner(embedder, lookahead=args.lookahead)
        a_all = assign_catalog(catalog, vocab, emb, chunk_size=len(catalog))
        runs["embedding_all_items"] = summarise(a_all, vocab, labels, oracle)
        runs["embedding_sample"] = summarise(a_all.subset(sample.ids), vocab, labels, oracle)
        if client is not None and oracle:  # LLM runs only where accuracy is measurable (and slow)
            assigners = {
                "llm_sample": LLMAssigner(client, choice_mode=choice_mode),
                "hybrid_sample": HybridAssigner(client, embedder, shortlist=args.shortlist, lookahead=args.lookahead, choice_mode=choice_mode),
                "single_call_sample": SingleCallAssigner(client, choice_mode="generate"),
            }
            for name, assigner in assigners.items():
                print(f"   {name} on {len(sample)} items...", file=sys.stderr, flush=True)
                a = assign_catalog(sample, vocab, assigner, chunk_size=len(sample))
                runs[name] = summarise(a, vocab, labels, oracle)
                print(f"   {name}: {json.dumps({k: runs[name].get(k) for k in ('level1_accuracy', 'items_per_s')})}", file=sys.stderr, flush=True)
        result["vocabularies"][vname] = {"descriptors": len(vocab), "depth": vocab.depth, "ground_truth_vocabulary": oracle, "runs": runs}
    result["seconds_total"] = round(time.perf_counter() - t_start, 1)
    if args.add_to_existing:
        old = json.loads(Path(args.out).read_text(encoding="utf-8"))
        old["vocabularies"].update(result["vocabularies"])
        old.setdefault("added", []).append({"command": result["command"], "seconds": result["seconds_total"]})
        result = old
    write_result(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
