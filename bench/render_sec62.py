"""§6.2 control on Scientific: the vocabulary built from a random subsample of the catalog, or
with branching factor 1, vs from every item (then every item assigned), read from the JSONs that
``bench/taxonomy_alignment.py --tag <variant>`` wrote; rewrites the RESULTS.md section.

    for v in "sub1000 build.subsample=1000" "sub2000 build.subsample=2000" "branch1 build.branching=one" \\
             "all build.branching=all"; do set -- $v
      .venv/bin/python bench/taxonomy_alignment.py --catalogs scientific --profiles offline --no-bertopic \\
          --set $2 --tag $1 --out bench/results/sec62_scientific_$1.json; done
    .venv/bin/python bench/render_sec62.py
"""

from __future__ import annotations

import json
import statistics as st
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- sec62:start -->", "<!-- sec62:end -->"
VARIANTS = [("all", "every item (branching: all), the default"), ("branch1", "every item, branching factor 1"),
            ("sub2000", "random 2,000-item subsample"), ("sub1000", "random 1,000-item subsample")]


def mean_sd(xs: list[float]) -> str:
    return f"{st.mean(xs):.3f} ± {st.pstdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def main() -> None:
    lines = [START, "## Building from a subsample vs branching factor 1 (§6.2) — `bench/render_sec62.py`", "",
             "Industrial_and_Scientific, offline profile, 3 seeds: the vocabulary is built from the items listed, then "
             "all 4,344 items are assigned and level 1 is scored against the 25 Amazon level-2 categories of the "
             "4,213 labelled items (as in the alignment section). No LLM calls in this profile: the cost is the "
             "build's wall time on a shared 2-core machine (two variants ran side by side).", "",
             "| built from | level-1 | descriptors | depth | NMI | ARI | held-out NMI | build s | assign s | file |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for tag, what in VARIANTS:
        path = ROOT / "bench" / "results" / f"sec62_scientific_{tag}.json"
        if not path.exists():
            continue
        prof = json.loads(path.read_text())["catalogs"]["scientific"]["profiles"]["offline"]
        s, runs = prof["summary"], prof["per_seed"]
        lines.append(
            f"| {what} | {st.mean(s['level1_descriptors']):.0f} | {st.mean(r['descriptors'] for r in runs):.0f} | "
            f"{st.mean(r['depth'] for r in runs):.1f} | {mean_sd(s['ours_nmi']['values'])} | {mean_sd(s['ours_ari']['values'])} | "
            f"{mean_sd(s['ours_heldout_nmi']['values'])} | {st.mean(r['build_seconds'] for r in runs):.0f} | "
            f"{st.mean(r['assign_seconds'] for r in runs):.1f} | `bench/results/{path.name}` |")
    lines.append(END)
    md = ROOT / "bench" / "RESULTS.md"
    text = md.read_text(encoding="utf-8")
    block = "\n".join(lines)
    if START in text:
        a, rest = text.split(START, 1)
        text = a + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    md.write_text(text, encoding="utf-8")
    print(block)


if __name__ == "__main__":
    main()
