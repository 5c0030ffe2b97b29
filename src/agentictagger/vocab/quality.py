"""Figures that say whether a vocabulary's names are names a person would accept.

* :func:`name_quality`: per level, the share of names that are noun phrases naming a kind of
  item, sibling names that clash after lemmatising, child names repeating their parent's head
  word, and descriptors holding fewer than 3 items.
* :func:`name_identifiability`: how well the names alone identify their groups: every item is
  matched by the embedding of "name: definition" only (no prototype, no item centroid), one level
  at a time under its own parent, and compared with the groups it was assigned to.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np

from agentictagger.vocab.names import head_word, is_noun_phrase, name_key
from agentictagger.vocabulary import ROOT_ID, Vocabulary, descriptor_text


def name_quality(vocab: Vocabulary, levels: Sequence[int] = (1, 2), small: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lvl in levels:
        descs = vocab.level(lvl)
        if not descs:
            continue
        by_parent: dict[str, list] = defaultdict(list)
        for d in descs:
            by_parent[d.parent].append(d)
        dup = 0
        for sibs in by_parent.values():
            # A numbered copy ("Serum (2)") is the same name as its sibling "Serum".
            keys = [name_key(re.sub(r"\s*\(\d+\)$", "", d.name)) for d in sibs]
            dup += len(keys) - len(set(keys))
        repeats = sum(
            1 for d in descs if d.parent != ROOT_ID and head_word(d.name) == head_word(vocab[d.parent].name)
        )
        named_by: dict[str, int] = defaultdict(int)
        for d in descs:
            named_by[d.named_by or "unknown"] += 1
        out[str(lvl)] = {
            "descriptors": len(descs),
            "noun_phrase_share": round(sum(is_noun_phrase(d.name) for d in descs) / len(descs), 4),
            "sibling_duplicates_after_lemmatising": dup,
            "child_repeats_parent_head_word": repeats,
            "descriptors_under_3_items": sum(1 for d in descs if d.item_count < small),
            "definition_is_sentence_share": round(
                sum(1 for d in descs if len(d.definition.split()) >= 4 and d.definition.rstrip().endswith(".")) / len(descs), 4
            ),
            "named_by": dict(named_by),
        }
    return out


def name_identifiability(
    vocab: Vocabulary,
    item_vectors: np.ndarray,
    item_paths: Sequence[Sequence[str]],
    encode: Callable[[Sequence[str]], np.ndarray],
    levels: Sequence[int] = (1, 2),
) -> dict[str, Any]:
    """Per level: items whose assigned descriptor is also the best match by name + definition
    among its siblings (accuracy), and NMI/ARI between the two partitions at level 1."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x = np.asarray(item_vectors, dtype=np.float32)
    ids = [d.id for d in vocab]
    text_vecs = dict(zip(ids, encode([descriptor_text(vocab[i].name, vocab[i].definition) for i in ids])))
    out: dict[str, Any] = {}
    for lvl in levels:
        rows = [i for i, p in enumerate(item_paths) if len(p) >= lvl]
        if not rows:
            continue
        groups: dict[str, list[int]] = defaultdict(list)
        for i in rows:
            parent = ROOT_ID if lvl == 1 else item_paths[i][lvl - 2]
            groups[parent].append(i)
        hit, pred, truth = 0, [], []
        for parent, members in groups.items():
            kids = vocab.children(parent)
            if len(kids) < 2:
                continue
            mat = np.stack([text_vecs[k.id] for k in kids])
            best = (x[members] @ mat.T).argmax(axis=1)
            for i, b in zip(members, best.tolist()):
                chosen, assigned = kids[b].id, item_paths[i][lvl - 1]
                hit += chosen == assigned
                pred.append(chosen)
                truth.append(assigned)
        if not truth:
            continue
        entry: dict[str, Any] = {"items": len(truth), "accuracy": round(hit / len(truth), 4)}
        if lvl == 1:
            entry["nmi"] = round(float(normalized_mutual_info_score(truth, pred)), 4)
            entry["ari"] = round(float(adjusted_rand_score(truth, pred)), 4)
        out[str(lvl)] = entry
    return out


def partition_scores(pred: Sequence[Any], gold: Sequence[Any]) -> dict[str, float]:
    """NMI, ARI and purity of a partition against reference labels (every item counted)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from agentictagger.diagnostics import purity

    p, g = [str(v) for v in pred], [str(v) for v in gold]
    return {
        "nmi": round(float(normalized_mutual_info_score(g, p)), 4),
        "ari": round(float(adjusted_rand_score(g, p)), 4),
        "purity": round(float(purity(p, g)), 4),
        "clusters": int(len(np.unique(p))),
        "items": int(len(g)),
    }

