"""Figures that say whether a vocabulary's names are names a person would accept.

* :func:`name_quality`: per level, the share of names that are noun phrases naming a kind of
  item, sibling names that clash after lemmatising, numbered copies ("Serum (2)"), child names
  that add no word to their parent, whole brand names (given the catalog's brand strings), and
  descriptors holding fewer than 3 items.
* :func:`name_identifiability`: how well the names alone identify their groups: every item is
  matched by the embedding of "name: definition" only (no prototype, no item centroid), one level
  at a time under its own parent, and compared with the groups it was assigned to.
* :func:`category_name_agreement`: with reference categories, whether each name is nearest the
  name people gave most of its items.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from agentictagger.vocab.name_rules import (
    adds_to_parent,
    brand_inside,
    brand_words,
    content_words,
    flat_key,
    is_noun_phrase,
    name_key,
    praises,
    problem_rule,
)
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary, descriptor_text


def purity(clusters: Sequence[Any], labels: Sequence[Any]) -> float:
    """Share of items whose label is the majority label of their cluster."""
    if not clusters:
        return float("nan")
    by: dict[Any, Counter] = {}
    for c, y in zip(clusters, labels):
        by.setdefault(c, Counter())[y] += 1
    return sum(cnt.most_common(1)[0][1] for cnt in by.values()) / len(clusters)


def utilization(per_item_terms: Sequence[Sequence[str]], vocabulary: Sequence[str] | None = None) -> dict:
    """Share of terms used by more than one item (each item counts a term once).

    ``over_used`` divides by the distinct terms that occur (the paper's free-form figure);
    ``over_vocabulary`` divides by a given vocabulary, so unused entries count as not utilized.
    """
    counts: Counter[str] = Counter()
    for terms in per_item_terms:
        counts.update(set(terms))
    shared = sum(1 for c in counts.values() if c > 1)
    out = {
        "unique_terms": len(counts),
        "used_by_more_than_one": shared,
        "over_used": shared / len(counts) if counts else float("nan"),
    }
    if vocabulary is not None:
        vocab_set = set(vocabulary)
        out["vocabulary_size"] = len(vocab_set)
        out["over_vocabulary"] = sum(1 for t in vocab_set if counts.get(t, 0) > 1) / len(vocab_set) if vocab_set else float("nan")
    return out


def fallbacks_by_rule(descriptors: Sequence[Any]) -> dict[str, int]:
    """Among ``descriptors``, the key-phrase fallbacks per name rule the LLM's last answer broke
    (``naming_problems``, :func:`name_rules.problem_rule`; a name may break several), most first."""
    rules: Counter[str] = Counter()
    for d in descriptors:
        if d.named_by == "keyphrase-fallback":
            rules.update({problem_rule(p) for p in d.naming_problems})
    return dict(sorted(rules.items(), key=lambda kv: (-kv[1], kv[0])))


def name_quality(
    vocab: Vocabulary,
    levels: Sequence[int] = (1, 2),
    small: int = 3,
    brand_strings: frozenset[str] | set[str] = frozenset(),
    brand_terms: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """Rule figures per level. ``brand_names`` counts names that are, or contain, a whole brand
    string; ``names_with_brand_words`` (with ``brand_terms``) names with a maker's brand word
    inside ("Scotch Tape Products", see :func:`name_rules.brand_words`); ``fallbacks_by_rule`` (when
    an LLM's names fell back to key phrases) counts the fallbacks by the rule the LLM's last answer
    broke (:func:`name_rules.problem_rule`)."""
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
        adds_nothing = sum(1 for d in descs if d.parent != ROOT_ID and not adds_to_parent(d.name, vocab[d.parent].name))
        numbered = sum(1 for d in descs if re.search(r"\(\d+\)\s*$", d.name))
        brands = sum(1 for d in descs if brand_strings and (flat_key(d.name) in brand_strings or brand_inside(d.name, brand_strings)))
        named_by: dict[str, int] = defaultdict(int)
        for d in descs:
            named_by[d.named_by or "unknown"] += 1
        fallback_rules = fallbacks_by_rule(descs)
        out[str(lvl)] = {
            "descriptors": len(descs),
            "noun_phrase_share": round(sum(is_noun_phrase(d.name) for d in descs) / len(descs), 4),
            "names_that_praise": sum(1 for d in descs if praises(content_words(d.name))),
            "sibling_duplicates_after_lemmatising": dup,
            "child_adds_nothing_to_parent": adds_nothing,
            "numbered_copies": numbered,
            **({"brand_names": brands} if brand_strings else {}),
            **(
                {"names_with_brand_words": sum(1 for d in descs if brand_words(d.name, brand_terms, brand_strings))}
                if brand_terms and brand_strings
                else {}
            ),
            "descriptors_under_3_items": sum(1 for d in descs if d.item_count < small),
            "definition_is_sentence_share": round(
                sum(1 for d in descs if len(d.definition.split()) >= 4 and d.definition.rstrip().endswith(".")) / len(descs), 4
            ),
            "named_by": dict(named_by),
            # Key-phrase fallbacks per name rule the LLM's last answer broke (a name may break several).
            **({"fallbacks_by_rule": fallback_rules} if fallback_rules else {}),
        }
    return out


def name_identifiability(
    vocab: Vocabulary,
    item_vectors: np.ndarray,
    item_paths: Sequence[Sequence[str]],
    encode: Callable[[Sequence[str]], np.ndarray],
    levels: Sequence[int] = (1, 2),
    names_only: bool = False,
    descriptor_vectors: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per level: items whose assigned descriptor is also the best match by name + definition
    (``names_only``: by the name alone, as a reader of a menu sees it) among its siblings
    (accuracy), and NMI/ARI between the two partitions at level 1. ``descriptor_vectors`` (one
    vector per descriptor id) replaces the embedded texts, e.g. the groups' own mean vectors as a
    reference for what any single text per group could reach."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x = np.asarray(item_vectors, dtype=np.float32)
    if descriptor_vectors is not None:
        text_vecs = dict(descriptor_vectors)
    else:
        ids = [d.id for d in vocab]
        texts = [vocab[i].name if names_only else descriptor_text(vocab[i].name, vocab[i].definition) for i in ids]
        text_vecs = dict(zip(ids, encode(texts)))
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


def menu_agreement(
    vocab: Vocabulary,
    item_vectors: np.ndarray,
    item_paths: Sequence[Sequence[str]],
    encode: Callable[[Sequence[str]], np.ndarray],
    levels: Sequence[int] = (1, 2),
) -> dict[str, Any]:
    """Per level: items whose descriptor at that level is the one whose *name alone* is nearest
    to the item among all of the level's names (a shopper reading the level as a menu, as in
    ``bench/critique_names.py``'s "show me"); a path ending above the level counts with its last
    descriptor, which then competes on the level's menu too."""
    x = np.asarray(item_vectors, dtype=np.float32)
    out: dict[str, Any] = {}
    for lvl in levels:
        at = [p[min(lvl, len(p)) - 1] if p else None for p in item_paths]
        menu = sorted({d for d in at if d is not None})
        if len(menu) < 2:
            continue
        index = {d: j for j, d in enumerate(menu)}
        rows = [i for i, d in enumerate(at) if d is not None]
        names = np.asarray(encode([vocab[d].name for d in menu]), dtype=np.float32)
        pick = (x[rows] @ names.T).argmax(axis=1)
        hit = int(np.sum(pick == np.array([index[at[i]] for i in rows])))
        out[str(lvl)] = {"items": len(rows), "menu": len(menu), "accuracy": round(hit / len(rows), 4)}
    return out


def category_name_agreement(
    vocab: Vocabulary,
    item_paths: Sequence[Sequence[str]],
    labels: dict[int, Sequence[str | None]],
    encode: Callable[[Sequence[str]], np.ndarray],
    min_items: int = 5,
) -> dict[str, Any]:
    """How close the names come to the names people gave the same items. ``labels[level]``: each
    item's reference category at the depth matching our ``level`` (None: unlabelled). For every
    descriptor of that level with at least ``min_items`` labelled items, the category most of them
    carry: ``hit`` is the share of those descriptors whose name alone, embedded, is nearer that
    category's name than any other category name of the depth; ``cosine`` the mean similarity of
    name and category name."""
    out: dict[str, Any] = {}
    for lvl, labs in sorted(labels.items()):
        names = sorted({g for g in labs if g})
        by: dict[str, Counter] = defaultdict(Counter)
        for p, g in zip(item_paths, labs):
            if len(p) >= lvl and g:
                by[p[lvl - 1]][g] += 1
        descs = [(d, c.most_common(1)[0][0]) for d, c in by.items() if sum(c.values()) >= min_items and d in vocab]
        if not descs or len(names) < 2:
            continue
        lab_vec = np.asarray(encode(names), dtype=np.float32)
        vec = np.asarray(encode([vocab[d].name for d, _ in descs]), dtype=np.float32)
        sim = vec @ lab_vec.T
        pos = {g: i for i, g in enumerate(names)}
        target = np.array([pos[g] for _, g in descs])
        out[str(lvl)] = {
            "descriptors": len(descs),
            "categories": len(names),
            "hit": round(float(np.mean(sim.argmax(axis=1) == target)), 4),
            "cosine": round(float(np.mean(sim[np.arange(len(descs)), target])), 4),
        }
    return out


def llm_name_agreement(
    vocab: Vocabulary,
    texts: Sequence[str],
    item_paths: Sequence[Sequence[str]],
    client: Any,
    level: int = 1,
    sample: int = 200,
    seed: int = 0,
    text_chars: int = 200,
    rows: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The LLM judge: for a seeded sample of items, the LLM reads the item and the names and
    definitions (a bare name where there is none) of the descriptors it could have at ``level``
    (its assigned parent's children) and picks one; agreement is the share that picks the
    assigned descriptor. The model never sees which one that is. ``rows``: sample only among these items. The result lists the
    items judged and, per item, whether the judge picked its descriptor (None: the call failed)."""
    from agentictagger.llm.types import ChatRequest, ChoiceConstraint, LLMError, SamplingParams

    rng = np.random.default_rng(seed)
    allowed = set(rows) if rows is not None else None
    rows = [i for i, p in enumerate(item_paths) if (allowed is None or i in allowed) and len(p) >= level
            and len(vocab.children(ROOT_ID if level == 1 else p[level - 2])) >= 2]
    picked = sorted(rng.choice(len(rows), size=min(sample, len(rows)), replace=False).tolist()) if rows else []
    reqs, truth = [], []
    for j in picked:
        i = rows[j]
        kids = vocab.children(ROOT_ID if level == 1 else item_paths[i][level - 2])
        names = [k.name for k in kids]
        listing = "\n".join(f"- {k.name}: {k.definition}" if k.definition else f"- {k.name}" for k in kids)
        text = " ".join(texts[i].split())[:text_chars]
        reqs.append(
            ChatRequest.chat(
                "You sort products into the categories of a store. Answer with one category name, exactly as listed.",
                f"Categories:\n{listing}\n\nProduct: {text}\nWhich category does this product belong to?",
                constraint=ChoiceConstraint(tuple(names)),
                params=SamplingParams(temperature=0.0, max_tokens=24),
            )
        )
        truth.append(vocab[item_paths[i][level - 1]].name)
    answers = client.map(reqs, stage="judge") if reqs else []
    hit = failed = 0
    hits: list[bool | None] = []
    for a, t in zip(answers, truth):
        if isinstance(a, LLMError):
            failed += 1
            hits.append(None)
            continue
        hits.append(a.text.strip() == t)
        hit += hits[-1]
    answered = len(truth) - failed
    given = Counter(a.text.strip() for a in answers if not isinstance(a, LLMError))
    return {
        "level": level,
        "sample": len(truth),
        "failed_calls": failed,
        "agreement": round(hit / answered, 4) if answered else None,
        # A judge that gives one answer to most items is not reading them.
        "distinct_answers": len(given),
        "most_common_answer": given.most_common(1)[0][0] if given else None,
        "most_common_answer_share": round(given.most_common(1)[0][1] / answered, 4) if answered else None,
        "items": [rows[j] for j in picked],
        "hits": hits,
    }


def partition_scores(pred: Sequence[Any], gold: Sequence[Any]) -> dict[str, float]:
    """NMI, ARI and purity of a partition against reference labels (every item counted)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


    p, g = [str(v) for v in pred], [str(v) for v in gold]
    return {
        "nmi": round(float(normalized_mutual_info_score(g, p)), 4),
        "ari": round(float(adjusted_rand_score(g, p)), 4),
        "purity": round(float(purity(p, g)), 4),
        "clusters": int(len(np.unique(p))),
        "items": int(len(g)),
    }

