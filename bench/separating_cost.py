"""What more passes cost when choosing the definitions' separating examples: on one offline
alignment build (``bench/taxonomy_alignment.py``'s run folder), each level-1 and level-2 job's
groups are named again and their examples chosen in 1 and in 3 passes
(``keyphrases.separating_examples(sweeps=...)``); the bench counts the trial sentences embedded and
the items that find their own group by name + definition. Writes
``bench/results/separating_cost.json``.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/separating_cost.py [--catalog scientific] [--seed 0]
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

import numpy as np  # noqa: E402
from _provenance import command_line, write_result  # noqa: E402

from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary, descriptor_text  # noqa: E402
from agentictagger.vocab import keyphrases  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="scientific")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "separating_cost.json"))
    args = ap.parse_args()
    cfg = RunConfig()
    emb = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    cat = load_shared(args.catalog)
    text = dict(zip(cat.ids, cat.texts))
    run = REPO / "bench" / "runs" / "align" / f"{args.catalog}_offline_s{args.seed}"
    vocab = Vocabulary.load(run / "vocabulary.json")
    paths = Assignment.load_jsonl(run / "assignments.jsonl").paths
    totals = {1: {"trial_sentences": 0, "items_right": 0}, 3: {"trial_sentences": 0, "items_right": 0}}
    items = 0
    for parent, level in [("root", 1)] + [(d.id, 2) for d in vocab.children("root")]:
        kids = vocab.children(parent)
        groups = [[text[i] for i in cat.ids if len(paths.get(i, [])) >= level and paths[i][level - 1] == k.id] for k in kids]
        if len(kids) < 2 or any(not g for g in groups):
            continue
        vecs = [np.asarray(emb.encode(g), dtype=np.float32) for g in groups]
        x, own = np.concatenate(vecs), np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        items += len(x)
        context = vocab[parent].name if parent != "root" else ""
        named = keyphrases.name_groups(groups, emb.encode, separate=False, context=context)
        names = [g.name for g in named]
        starts = [[p for p in g.phrases if p.lower() != g.name.lower()][:5] for g in named]
        for sweeps in (1, 3):
            count = [0]

            def counting(texts, count=count):
                count[0] += len(texts)
                return emb.encode(texts)

            ex = keyphrases.separating_examples(names, context, [g.pool for g in named], groups, counting, starts,
                                                vectors=vecs, sweeps=sweeps)
            t = np.asarray(emb.encode([descriptor_text(n, keyphrases.definition_sentence(n, context, e)) for n, e in zip(names, ex)]),
                           dtype=np.float32)
            totals[sweeps]["trial_sentences"] += count[0]
            totals[sweeps]["items_right"] += int(((x @ t.T).argmax(axis=1) == own).sum())
    result = {"command": command_line(), "build": str(run.relative_to(REPO)), "levels": [1, 2], "items": items,
              "passes": {str(k): v for k, v in totals.items()}}
    write_result(args.out, result)
    print(f"items {items}: 1 pass {totals[1]}, 3 passes {totals[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
