"""What the name rules learn as product lines from each labelled catalog.

For Scientific (development) and Office (held out): the words ``keyphrases.product_lines`` learns
from the brand field and the item texts (a word the English lexicon does not know, carried mostly
by one brand's items and written right after that brand), each with its brand and how many
branded items carry it, so a reader can check that no word naming a kind of item is among them.
Seconds; no model.

  AGENTICTAGGER_DATA=../shared/data .venv/bin/python bench/product_lines.py

writes bench/results/product_lines.json and prints a short table.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import write_result  # noqa: E402

from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.vocab.keyphrases import NO_BRAND, product_lines  # noqa: E402
from agentictagger.vocab.name_rules import flat_key  # noqa: E402

CATALOGS = {"scientific": "development", "office": "held out"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "product_lines.json"))
    args = ap.parse_args()
    out: dict = {"what": __doc__.split("\n\n")[0], "catalogs": {}}
    for name, role in CATALOGS.items():
        catalog = load_shared(name)
        brands = [str(it.fields.get("brand") or "") for it in catalog]
        lines = product_lines(brands, catalog.texts)
        rows = []
        for word in sorted(lines):
            owners = Counter(
                flat_key(b) for b, t in zip(brands, catalog.texts) if flat_key(b) not in NO_BRAND and word in flat_key(t).split()
            )
            brand, n = owners.most_common(1)[0]
            rows.append({"word": word, "brand": brand, "items_of_brand": n, "branded_items": sum(owners.values())})
        out["catalogs"][name] = {"role": role, "items": len(catalog), "product_lines": len(rows), "words": rows}
        print(f"{name} ({role}, {len(catalog)} items): {len(rows)} product lines")
        print("  " + ", ".join(f"{r['word']} ({r['brand']}, {r['items_of_brand']}/{r['branded_items']})" for r in rows))
    write_result(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
