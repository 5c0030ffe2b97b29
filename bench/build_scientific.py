"""Build on all of Amazon 2018 Industrial_and_Scientific (title, brand, description; no
categories), then score the level-1 grouping against the Amazon level-2 categories.

    .venv/bin/python bench/build_scientific.py        # writes bench/results/build_scientific.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _build_common import REPO, print_table, run_build, summarise, write

from agentictagger.catalog import load_shared
from agentictagger.vocab.summary import grouping_scores, level1_grouping, load_jobs

p = argparse.ArgumentParser()
p.add_argument("--run-dir", default=str(REPO / "runs" / "scientific"))
p.add_argument("--resume", action="store_true")
p.add_argument("--set", action="append", default=[], dest="sets")
a = p.parse_args()
run_dir = Path(a.run_dir)

wall = run_build(run_dir, "shared:scientific", ["seed=0", *a.sets], fresh=not a.resume)
res = summarise(run_dir, wall, "python bench/build_scientific.py " + " ".join(f"--set {s}" for s in a.sets))
catalog = load_shared("scientific")
ids = json.loads((run_dir / "build_state" / "build_items.json").read_text())
labels = {it.item_id: it.label for it in catalog}
group = level1_grouping(load_jobs(run_dir))
idx = [i for i, item_id in enumerate(ids) if labels.get(item_id)]
covered = [i for i in idx if i in group]
res["dataset"] = "Amazon 2018 Industrial_and_Scientific, all items; text = title + brand + description"
res["level1_vs_amazon_level2"] = {
    "labelled_items": len(idx),
    "covered_items_only": grouping_scores([group[i] for i in covered], [labels[ids[i]] for i in covered]),
    "all_items_uncovered_as_one_group": grouping_scores(
        [group.get(i, "uncovered") for i in idx], [labels[ids[i]] for i in idx]
    ),
    "amazon_level2_categories": len({labels[ids[i]] for i in idx}),
}
print_table(res)
print("level 1 vs Amazon level 2:", res["level1_vs_amazon_level2"])
write(res, "build_scientific.json")
