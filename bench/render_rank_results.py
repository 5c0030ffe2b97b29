"""Render bench/results/rank_*.json (bench/rank.py) as the RESULTS.md section on ranking (§5.2),
and the validation curves of every row of each strength-recipe file as docs/<file>_curves.png.

    .venv/bin/python bench/render_rank_results.py            # rewrites the section in bench/RESULTS.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _plots import plot_validation_curves  # noqa: E402 (bench/ is on sys.path when run as a script)
from agentictagger.recsys.pipeline import RECIPES, summarise  # noqa: E402
START, END = "<!-- ranking:start -->", "<!-- ranking:end -->"
LABELS = {
    "item_id": "(a) item ID (SASRec)",
    "agentictagger": "(b) descriptors + resolver",
    "rq-vae": "(c) RQ-VAE codes + dedup",
    "rq-kmeans": "(c') RQ-KMeans codes + dedup",
    "item_id+agentictagger": "(d) item ID + descriptors",
    "item_id+rq-vae": "(d') item ID + RQ-VAE codes",
    "item_id+rq-kmeans": "(d'') item ID + RQ-KMeans codes",
    "warm_item_id+agentictagger": "(e) item ID only for items with > 5 training interactions + descriptors",
    "item_id+agentictagger (ID dropout 0.5)": "(f) item ID + descriptors, item-ID dropout 0.5 in training",
    "item_id+agentictagger (ID dropout 0.5, cold items without ID)":
        "(f') item ID + descriptors, item-ID dropout 0.5, cold items scored without their ID",
    "-": "most popular",
}
COLD_VARIANTS = ("warm_item_id+agentictagger", "item_id+agentictagger (ID dropout 0.5)",
                 "item_id+agentictagger (ID dropout 0.5, cold items without ID)")
ORDER = list(LABELS)
SASREC_ANCHOR_BEAUTY = 0.0591  # full-ranking N@10, SASRec (CE), 200 GPU epochs, public reproduction


def _ms(s: dict, key: str) -> str:
    if key not in s:
        return "–"
    v = s[key]
    return f"{v['mean']:.4f} ± {v['std']:.4f}" if s["model"] != "popularity" else f"{v['mean']:.4f}"


def _paired(rows: list[dict], a: str, b: str, key: tuple[str, str, str]) -> list[float]:
    """Per-seed differences b - a (same seed: same negatives, same data order)."""
    sl, proto, m = key
    by = {(r["tokenizer"], r["seed"]): r["test"][sl][proto][m] for r in rows if r["model"] == "ranker"}
    return [round(by[(b, s)] - by[(a, s)], 4) for s in sorted({s for t, s in by if t == a}) if (b, s) in by]


def verdict(rows: list[dict], summary: list[dict], a: str, b: str, key: str) -> str:
    sa = next((s for s in summary if s["tokenizer"] == a and s["model"] == "ranker"), None)
    sb = next((s for s in summary if s["tokenizer"] == b and s["model"] == "ranker"), None)
    if not sa or not sb:
        return ""
    d = _paired(rows, a, b, tuple(key.split("/")))
    diff = sb[key]["mean"] - sa[key]["mean"]
    spread = sa[key]["std"] + sb[key]["std"]
    word = ("beats" if diff > spread else "loses to" if -diff > spread else "ties with")
    if min(len(sa["seeds"]), len(sb["seeds"])) < 2:
        word = "(one seed, no spread: not a verdict) vs"
    return (f"{LABELS[b]} {word} {LABELS[a]} on {key}: {sb[key]['mean']:.4f} vs {sa[key]['mean']:.4f} "
            f"(difference {diff:+.4f}, sum of the two seed std {spread:.4f}; per seed {d})")


def plot_curves(res: dict, path: Path) -> None:
    """Validation N@10 per epoch of every row (one colour per item representation, one line per
    seed), with each row's best epoch marked."""
    series = [(LABELS[t], r["valid_history"]) for t in ORDER
              for r in sorted((r for r in res["rows"] if r["tokenizer"] == t), key=lambda r: r["seed"])
              if r.get("valid_history")]
    name = res["dataset"]["name"]
    recipe = res.get("recipe", {}).get("name", "quick")
    plot_validation_curves(series, f"{name}, recipe '{recipe}': validation N@10 per epoch (one line per seed; dot = best "
                           "epoch, restored)", "validation N@10 (full ranking, all users)", path)


def section(path: Path) -> list[str]:
    res = json.loads(path.read_text())
    ds = res["dataset"]
    recipe = res.get("recipe", {}).get("about", RECIPES["quick"].about + " (the `quick` recipe)")
    curves = ROOT / "docs" / f"{path.stem}_curves.png"
    if res.get("recipe", {}).get("name", "quick") != "quick":  # curves of the strongest runs only: a lean repo
        plot_curves(res, curves)
    tail = next((r["test"]["long_tail"]["users"] for r in res["rows"] if "long_tail" in r["test"]), None)
    seen = any("full_seen_removed" in r["test"]["all"] for r in res["rows"])
    # from the rows, not the stored summary: another bench process may have added rows since
    summ = sorted(summarise(res["rows"]), key=lambda s: ORDER.index(s["tokenizer"]) if s["tokenizer"] in ORDER else 99)
    rows = res["rows"]
    seeds = sorted({r["seed"] for r in rows if r["model"] == "ranker"})
    lines = [f"### {ds['name']}: {ds['users']:,} users, {ds['items']:,} items, {ds['interactions']:,} interactions "
             f"(`bench/results/{path.name}`)", "", "```", *(res.get("commands") or [res.get("command", "")]), "```", "",
             *([res["note"], ""] if res.get("note") else []),
             f"Training recipe, the same for every row: {recipe}."
             + (f" Validation curves: [`docs/{curves.name}`](../docs/{curves.name})." if curves.exists() else ""), "",
             f"Test users: {ds['test_users']:,}; cold-item slice: test targets with ≤ 5 training interactions "
             f"({next((r['test']['cold_items']['users'] for r in rows), 0):,} users)"
             + (f"; long-tail slice: test targets outside the 20 % most-interacted items ({tail:,} users)" if tail else "")
             + f". Seeds: {seeds}. Mean ± std over seeds.", "",
             "| item representation | seeds | full N@10 | full R@10 | " + ("full N@10, seen items removed | " if seen else "")
             + "sampled N@10 | sampled R@10 | cold full N@10 | cold sampled N@10 | "
             + ("long-tail full N@10 | " if tail else "") + "epochs (best) | train s |",
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if tail else "") + ("---|" if seen else "")]
    for s in summ:
        ep = f"{s['epochs']['mean']:.0f} ({s['best_epoch']['mean']:.0f})" if "epochs" in s else "–"
        tr = f"{s['train_seconds']['mean']:.0f}" if "train_seconds" in s else "–"
        lines.append(f"| {LABELS.get(s['tokenizer'], s['tokenizer'])} | {len(s['seeds'])} | {_ms(s, 'all/full/N@10')} | "
                     f"{_ms(s, 'all/full/R@10')} | " + (f"{_ms(s, 'all/full_seen_removed/N@10')} | " if seen else "")
                     + f"{_ms(s, 'all/sampled/N@10')} | {_ms(s, 'all/sampled/R@10')} | "
                     f"{_ms(s, 'cold_items/full/N@10')} | {_ms(s, 'cold_items/sampled/N@10')} | "
                     + (f"{_ms(s, 'long_tail/full/N@10')} | " if tail else "") + f"{ep} | {tr} |")
    lines += ["", "Sampled-negative protocol, every cutoff (mean over seeds; the paper's Table 2 protocol):", "",
              "| item representation | R@5 | R@10 | R@20 | R@50 | N@5 | N@10 | N@20 | N@50 |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summ:
        cells = [f"{s[f'all/sampled/{m}@{k}']['mean']:.4f}" if f"all/sampled/{m}@{k}" in s else "–"
                 for m in ("R", "N") for k in (5, 10, 20, 50)]
        lines.append(f"| {LABELS.get(s['tokenizer'], s['tokenizer'])} | " + " | ".join(cells) + " |")
    lines += [""]
    for a, b in (("item_id", "item_id+agentictagger"), ("item_id+rq-vae", "item_id+agentictagger"),
                 ("item_id+rq-kmeans", "item_id+agentictagger"), ("item_id", "agentictagger"),
                 ("rq-vae", "agentictagger"), ("rq-kmeans", "agentictagger"),
                 ("agentictagger", "item_id+agentictagger")):  # does the combined model keep (b)'s cold gain?
        for key in ("all/full/N@10", "all/sampled/N@10", "cold_items/full/N@10", "long_tail/full/N@10"):
            if key not in next((x for x in summ if x["tokenizer"] == a), {}):
                continue
            v = verdict(rows, summ, a, b, key)
            if v:
                lines.append(f"- {v}")
    for b in COLD_VARIANTS:  # does the combined model keep the descriptors' cold-item gain?
        for a in ("item_id+agentictagger", "agentictagger"):
            for key in ("all/full/N@10", "cold_items/full/N@10", "cold_items/sampled/N@10"):
                v = verdict(rows, summ, a, b, key)
                if v:
                    lines.append(f"- {v}")
    if ds["name"] == "beauty":
        ida = next((s for s in summ if s["tokenizer"] == "item_id"), None)
        if ida and "all/full_seen_removed/N@10" in ida:  # the anchor's protocol removes seen items
            v = ida["all/full_seen_removed/N@10"]["mean"]
            lines.append(f"- SASRec anchor (same protocol: seen items removed): our item-ID ranker reaches full-ranking "
                         f"N@10 {v:.4f} vs {SASREC_ANCHOR_BEAUTY} in a public 200-GPU-epoch reproduction "
                         f"({v / SASREC_ANCHOR_BEAUTY - 1:+.0%}; target within 10 %: "
                         f"{'met' if v >= 0.9 * SASREC_ANCHOR_BEAUTY else 'not met'}).")
        elif ida:
            v = ida["all/full/N@10"]["mean"]
            lines.append(f"- SASRec anchor: our item-ID ranker reaches full-ranking N@10 {v:.4f} vs {SASREC_ANCHOR_BEAUTY} in "
                         f"a public 200-GPU-epoch reproduction ({v / SASREC_ANCHOR_BEAUTY - 1:+.0%}; "
                         f"target: within 10 %: {'met' if v >= 0.9 * SASREC_ANCHOR_BEAUTY else 'not met'}).")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    files = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or sorted(
        (p for p in (ROOT / "bench/results").glob("rank_*.json") if not p.name.endswith(".claims.json")),
        key=lambda p: ("_strength" not in p.name, p.name))  # the strength recipe first
    body = ["## Ranking with descriptor features (§5.2, B.2) — `bench/rank.py`", "",
            "A feature-aware SASRec (2 layers, d 64, full-softmax CE over all items, early stopping on validation "
            "N@10, best epoch restored; each file states its training recipe, the same for all its rows) whose item "
            "embedding is the sum of the item's feature embeddings; only the features differ between rows. The "
            "`strength` files use the strongest item-ID SASRec setting of `bench/sasrec_strength.py`; the others "
            "the earlier `quick` recipe (history 20, patience 3). agentictagger features come "
            "from the offline builds of `bench/taxonomy_alignment.py` (one build per seed); RQ-VAE and RQ-KMeans are "
            "trained per seed on the same MiniLM text embeddings. Full ranking = over all items (history not masked); "
            "sampled = the positive against 100 negatives the user never interacted with (the same draw for every row).",
            ""]
    for f in files:
        if "dataset" not in json.loads(f.read_text()):  # rows only: its bench is still running
            print(f"{f.name}: skipped (unfinished: the bench writes the file's header when it ends)", file=sys.stderr)
            continue
        body += section(f)
    text = (ROOT / "bench/RESULTS.md").read_text(encoding="utf-8")
    block = START + "\n" + "\n".join(body) + END
    if START in text:
        a, b = text.index(START), text.index(END) + len(END)
        text = text[:a] + block + text[b:]
    else:
        marker = "## Generative retrieval on Beauty"
        i = text.find(marker)
        text = (text[:i] + block + "\n\n" + text[i:]) if i >= 0 else text.rstrip() + "\n\n" + block + "\n"
    (ROOT / "bench/RESULTS.md").write_text(text, encoding="utf-8")
    print("\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
