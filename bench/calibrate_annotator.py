"""Calibrate the offline annotator's threshold: when does an item fit none of the descriptors?

On Industrial_and_Scientific, each Amazon level-2 (and level-3) category becomes a descriptor
named and defined by the same key-phrase code the offline architect uses. For every item,
"fits" = similarity to its own category's descriptor; "fits none" = best similarity to the
other categories' descriptors (its own category left out, as when the vocabulary lacks it).
The threshold maximising balanced accuracy between the two is the calibrated default.

    .venv/bin/python bench/calibrate_annotator.py     # writes bench/results/calibrate_annotator.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.vocab.agents import DescriptorDraft, descriptor_text  # noqa: E402
from agentictagger.vocab.keyphrases import brand_terms, first_word_brands, name_groups  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

cat = load_shared("scientific")
emb_model = Embedder(cache_dir=REPO / ".cache/agentictagger")
texts = cat.texts
X = emb_model.encode(texts)
exclude = first_word_brands(texts) | brand_terms([str(it.fields.get("brand") or "") for it in cat])
results = {}
for level in (2, 3):
    labels = []
    for it in cat:
        parts = re.split(r",(?! )", it.fields.get("categories") or "")
        labels.append(parts[level - 1] if len(parts) >= level else None)
    groups = defaultdict(list)
    for i, lab in enumerate(labels):
        if lab:
            groups[lab].append(i)
    names = sorted(g for g in groups if len(groups[g]) >= 10)
    named = name_groups([[texts[i] for i in groups[g]] for g in names], emb_model.encode, exclude_terms=exclude)
    D = emb_model.encode([descriptor_text(DescriptorDraft(n.name, n.definition)) for n in named])
    idx = [i for i, lab in enumerate(labels) if lab in set(names)]
    col = {g: k for k, g in enumerate(names)}
    S = X[idx] @ D.T
    own = np.array([S[r, col[labels[i]]] for r, i in enumerate(idx)])
    S_other = S.copy()
    for r, i in enumerate(idx):
        S_other[r, col[labels[i]]] = -1
    other = S_other.max(axis=1)
    grid = np.round(np.arange(0.15, 0.7, 0.01), 2)
    bal = [((own >= t).mean() + (other < t).mean()) / 2 for t in grid]
    best = int(np.argmax(bal))
    results[f"amazon_level{level}"] = {
        "categories": len(names),
        "items": len(idx),
        "own_similarity_mean": round(float(own.mean()), 4),
        "best_other_similarity_mean": round(float(other.mean()), 4),
        "best_threshold": float(grid[best]),
        "balanced_accuracy_at_best": round(float(bal[best]), 4),
        "curve": {str(t): round(float(b), 4) for t, b in zip(grid, bal)},
        "example_names": [n.name for n in named[:12]],
    }
    print(f"level {level}: {len(names)} categories, best threshold {grid[best]:.2f} "
          f"(balanced accuracy {bal[best]:.3f}); own sim {own.mean():.3f}, best other {other.mean():.3f}")
out = REPO / "bench/results/calibrate_annotator.json"
write_result(out, {"command": "python bench/calibrate_annotator.py", **results})
print("wrote", out)
