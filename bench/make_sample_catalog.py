"""Build src/agentictagger/data/sample_catalog.jsonl from the shared scientific dataset.

    .venv/bin/python bench/make_sample_catalog.py [--per-category 38] [--categories 8] [--seed 0]

Picks the biggest level-2 Amazon categories and draws the same number of items from each
(seeded), keeping only items with a real title, a brand and a description so the demo template
"{title}. Brand: {brand}. {description}" always reads well. Output rows keep file order:
item_id, title, brand, description (cut to about 400 characters), category (level 2).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from collections import defaultdict
from pathlib import Path

from agentictagger.catalog.datasets import _BROKEN_TITLE, _clean, scientific_label, shared_data_root, truncate_text

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "agentictagger" / "data" / "sample_catalog.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--per-category", type=int, default=38)
    ap.add_argument("--categories", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--description-chars", type=int, default=400)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    src = shared_data_root(None, "scientific") / "scientific" / "items.jsonl.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]

    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        cat = scientific_label(r["categories"])
        title, brand, desc = _clean(r["title"]), _clean(r["brand"]), _clean(r["description"])
        if not (cat and title and brand and desc) or _BROKEN_TITLE.match(title):
            continue
        by_cat[cat].append(
            {
                "item_id": str(r["item_idx"]),
                # The template adds its own full stop after the title and the brand.
                "title": re.sub(r"\.+$", "", title),
                "brand": re.sub(r"\.+$", "", brand),
                "description": truncate_text(desc, args.description_chars),
                "category": cat,
            }
        )
    biggest = sorted(by_cat, key=lambda c: (-len(by_cat[c]), c))[: args.categories]
    rng = random.Random(args.seed)
    picked = [r for c in biggest for r in rng.sample(by_cat[c], args.per_category)]
    picked.sort(key=lambda r: int(r["item_id"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in picked:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(picked)} items from {len(biggest)} categories to {args.out}:")
    for c in biggest:
        print(f"  {c}: {args.per_category} of {len(by_cat[c])} eligible")


if __name__ == "__main__":
    main()
