"""Names alone, with names people wrote: Amazon's category tree read by the same judges as ours.

The names-alone figures ask whether a level's sibling names find their own items: each item is
matched to the most similar sibling (embedding judge) or the local LLM picks one (LLM judge), and
the answer is compared with the group the item is in. This bench asks the same of the
categories Amazon's people named and drew, on the same catalogs and items: level 1 = the
alignment reference level (Scientific: Amazon level 2, 25 categories; Office: level 3, 34),
level 2 = the level below it, each among the categories under the same parent. Amazon's
categories have no definitions, so they are read by name only; so are ours here (the seed-0
offline build of ``bench/taxonomy_alignment.py``), beside ours by name and definition (the
figure the alignment section reports). The LLM judge (``--llm-judge``: Qwen2.5-Coder-1.5B on the
local llama.cpp server, greedy, its answer held to the listed names; 200 items per level, seed 0,
as ``bench/names_llm_judge.py``) reads a list of bare names where there is no definition.

Caveats: our groups are drawn in the embedding space the embedding judge reads, Amazon's are not,
so the embedding judge favours ours; the LLM judge does not share that space. The two trees give
an item different numbers of siblings to choose among (recorded as ``siblings_per_item``; chance
is one over it). Nothing is chosen here: it is a reference for the targets of the names-alone
figures.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/names_reference.py [--catalogs scientific office] [--llm-judge]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import LLM_THREADS  # noqa: E402

from agentictagger.catalog import LCREC_LABEL_LEVEL, load_shared, scientific_label  # noqa: E402
from agentictagger.config import LLMConfig, RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import ROOT_ID, Descriptor, Vocabulary  # noqa: E402
from agentictagger.vocab.quality import llm_name_agreement, name_identifiability  # noqa: E402

LEVELS = (1, 2)


def amazon_tree(catalog, top: int) -> tuple[Vocabulary, list[list[str]]]:
    """Amazon's categories at depths ``top`` and ``top + 1`` as a two-level vocabulary with no
    definitions, and each item's path in it ([] for an item without a category at ``top``)."""
    vocab, paths, ids = Vocabulary(), [], {}
    counts: dict[str, int] = {}
    for it in catalog:
        cats = it.fields.get("categories")
        one, two = scientific_label(cats, top), scientific_label(cats, top + 1)
        path = []
        for parent, name in ((ROOT_ID, one), (ids.get((ROOT_ID, one)), two)):
            if not name or parent is None:
                break
            key = (parent, name)
            if key not in ids:
                ids[key] = f"a{len(ids) + 1}" if parent == ROOT_ID else f"{parent}.{len(ids) + 1}"
                vocab.add(Descriptor(ids[key], name, "", 1 if parent == ROOT_ID else 2, parent))
            counts[ids[key]] = counts.get(ids[key], 0) + 1
            path.append(ids[key])
        paths.append(path)
    for did, n in counts.items():
        vocab[did].item_count = n
    return vocab, paths


def siblings_per_item(vocab: Vocabulary, paths: list[list[str]], level: int) -> float:
    """Mean number of descriptors an item of ``level`` is chosen among (its parent's children):
    a judge's chance level is one over it."""
    counts = [len(vocab.children(ROOT_ID if level == 1 else p[level - 2])) for p in paths if len(p) >= level]
    counts = [c for c in counts if c >= 2]
    return round(float(np.mean(counts)), 2) if counts else 0.0


def names_only(vocab: Vocabulary) -> Vocabulary:
    out = copy.deepcopy(vocab)
    for d in out:
        d.definition = ""
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "office"])
    ap.add_argument("--llm-judge", action="store_true")
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "names_reference.json"))
    args = ap.parse_args()
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    client = None
    if args.llm_judge:
        from agentictagger.llm.factory import make_client

        client = make_client(LLMConfig(backend="local", model_path="qwen2.5-coder-1.5b-instruct", n_threads=LLM_THREADS),
                             REPO / ".cache" / "agentictagger" / "llm")
    out: dict = {"command": command_line(), "levels": "level 1 = the alignment reference level, level 2 = the level below it",
                 "catalogs": {}}
    try:
        for name in args.catalogs:
            catalog = load_shared(name)
            ids = catalog.ids
            emb = np.asarray(embedder.encode(catalog.texts), dtype=np.float32)
            top = LCREC_LABEL_LEVEL[name]
            amazon, amazon_paths = amazon_tree(catalog, top)
            run = REPO / "bench" / "runs" / "align" / f"{name}_offline_s0"
            ours = Vocabulary.load(run / "vocabulary.json")
            assigned = Assignment.load_jsonl(run / "assignments.jsonl").paths
            our_paths = [assigned.get(i, []) for i in ids]
            readers = {
                "amazon, name only": (amazon, amazon_paths),
                "ours (offline, seed 0), name only": (names_only(ours), our_paths),
                "ours (offline, seed 0), name and definition": (ours, our_paths),
            }
            entry: dict = {
                "amazon_categories": {str(lv): len(amazon.level(lv)) for lv in LEVELS},
                "our_descriptors": {str(lv): len(ours.level(lv)) for lv in LEVELS},
                "run_dir": str(run.relative_to(REPO)),
                "siblings_per_item": {k: {str(lv): siblings_per_item(v, p, lv) for lv in LEVELS} for k, (v, p) in readers.items()},
                "embedding_judge": {k: name_identifiability(v, emb, p, embedder.encode, LEVELS) for k, (v, p) in readers.items()},
            }
            if client is not None:
                entry["llm_judge"] = {}
                for k, (v, p) in readers.items():
                    entry["llm_judge"][k] = {}
                    for lv in LEVELS:
                        t0 = time.monotonic()
                        r = llm_name_agreement(v, catalog.texts, p, client, level=lv, sample=args.sample, seed=0)
                        r["seconds"] = round(time.monotonic() - t0, 1)
                        entry["llm_judge"][k][str(lv)] = {key: val for key, val in r.items() if key not in ("items", "hits")}
            out["catalogs"][name] = entry
            for k in readers:
                e = entry["embedding_judge"][k]
                sib = entry["siblings_per_item"][k]
                line = (f"{name:10s} {k:45s} siblings " + "/".join(f"{sib[str(lv)]:.1f}" for lv in LEVELS) + " | embedding "
                        + " ".join(f"L{lv} {e[str(lv)]['accuracy']:.3f}" for lv in LEVELS))
                if client is not None:
                    line += " | LLM " + " ".join(f"L{lv} {entry['llm_judge'][k][str(lv)]['agreement']:.3f}" for lv in LEVELS)
                print(line, flush=True)
    finally:
        if client is not None:
            from agentictagger.llm.backends import local

            local.shutdown_servers()
    write_result(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
