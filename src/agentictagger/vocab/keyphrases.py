"""Naming groups of items offline: distinctive key phrases, re-ranked by meaning.

Candidates come from class-based document frequencies (a phrase common inside the group and
rarer in its siblings, as c-TF-IDF topic models do); they are then re-ranked by how close the
phrase's embedding lies to the group's centroid (KeyBERT-style) so that generic category words
beat brand names and model numbers, and picked with a diversity penalty (MMR).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

EncodeFn = Callable[[Sequence[str]], np.ndarray]

# Words that describe packaging, quantity or marketing rather than what an item is.
PACKAGING_WORDS = frozenset(
    """oz ounce ounces fl ml l lb lbs pound pounds g gram grams kg mg inch inches in cm mm ft
    pack packs pk count ct piece pieces pcs pc set sets size sizes value bundle kit kits lot
    new best top quality premium professional pro original genuine authentic brand free large
    small medium mini travel refill refills bottle bottles jar tube pump box case unit units
    x color colors colour shade shades assorted various variety edition limited gift gifts
    item items product products ea each qty bulk 1 2 3 4 5 6 7 8 9 10 12 24 100""".split()
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | PACKAGING_WORDS

_TOKEN = re.compile(r"[A-Za-z][A-Za-z\-']+")
# Brand words may hold digits ("3M", "X-Acto"): a word with at least one letter.
# Hyphenated brands split into their words ("PORTER-CABLE" -> porter, cable), as names are read.
_BRAND_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9']*")


def first_word_brands(
    texts: Sequence[str], min_count: int = 3, min_first_share: float = 0.7, positions: int = 2
) -> set[str]:
    """Lower-cased words that open item texts far more often than they appear elsewhere.

    Product titles usually start with the brand ("OPI Nail Lacquer ...", "TIGI Bed Head ..."),
    so a word whose occurrences are mostly among the first ``positions`` words is brand-like.
    Works when no brand field exists.
    """
    first: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for text in texts:
        toks = [t.lower() for t in _TOKEN.findall(text)]
        if not toks:
            continue
        for t in set(toks[:positions]):
            first[t] += 1
        for t in set(toks):
            total[t] += 1
    return {
        w
        for w, c in first.items()
        if c >= min_count and c / total[w] >= min_first_share and w not in ENGLISH_STOP_WORDS
    }


def brand_terms(brands: Sequence[str], texts: Sequence[str] = (), max_nonbrand_share: float = 0.5) -> set[str]:
    """Lower-cased words that act as brands in this catalog, never ordinary category words.

    ``brands[i]`` is item i's brand string (may be empty) and ``texts[i]`` its text. Two kinds of
    words are returned:

    * every word of a brand string that never occurs outside brand strings (in the catalog's
      texts with each item's own brand removed): "hatchbox", "amscope";
    * a brand's *leading* word when items mention it outside brand strings in at most
      ``max_nonbrand_share`` times as many items as carry the brand ("3m", "dewalt").

    Words common in non-brand text stay usable however many brands contain them: "lab",
    "safety", "supply" (brand "Lab Safety Supply"), "medical", "industrial", "tape". Without
    ``texts`` only the leading words of brands are returned (the other words cannot be judged).
    """
    brands = [b or "" for b in brands]

    def tokens(text: str) -> list[str]:
        return [t for t in _BRAND_TOKEN.findall(text) if any(c.isalpha() for c in t)]

    lead_items: Counter[str] = Counter()
    brand_vocab: set[str] = set()
    for b in brands:
        toks = [t.lower() for t in tokens(b)]
        toks = [t for t in toks if len(t) > 1 and t not in STOP_WORDS]
        if toks:
            lead_items[toks[0]] += 1
        brand_vocab.update(toks)
    if not texts:
        return set(lead_items)
    nonbrand_df: Counter[str] = Counter()
    for i, text in enumerate(texts):
        b = brands[i] if i < len(brands) else ""
        if b:
            text = re.sub(r"(?i)brand:\s*" + re.escape(b), " ", text)
            text = re.sub(r"(?i)" + re.escape(b), " ", text)
        nonbrand_df.update({t.lower() for t in tokens(text)} & brand_vocab)
    out = {w for w in brand_vocab if nonbrand_df[w] == 0}
    out |= {w for w, n in lead_items.items() if nonbrand_df[w] <= max_nonbrand_share * n}
    return out


def brand_strings(brands: Sequence[str]) -> set[str]:
    """Whole brand names, normalised by :func:`names.flat_key` (lower case, hyphens and
    punctuation as spaces): a descriptor named like a brand ("Porter Cable" for "PORTER-CABLE") is
    rejected even when each of its words is an ordinary word."""
    from agentictagger.vocab.names import flat_key

    return {k for k in (flat_key(b or "") for b in brands) if any(c.isalpha() for c in k)}


@dataclass
class GroupName:
    name: str
    definition: str
    phrases: list[str]


def _title(phrase: str) -> str:
    return " ".join(w if w.isupper() else w.capitalize() for w in phrase.split())


def name_groups(
    groups: Sequence[Sequence[str]],
    encode: EncodeFn,
    exclude_terms: set[str] | frozenset[str] = frozenset(),
    taken_names: Sequence[str] = (),
    n_phrases: int = 5,
    min_df_share: float = 0.05,
    context: str = "",
    parent_path: Sequence[str] = (),
    brand_strings: set[str] | frozenset[str] = frozenset(),
) -> list[GroupName]:
    """One distinct, human-readable name + definition per group of item texts.

    ``groups`` are the texts of sibling groups (the contrast set for distinctiveness);
    ``exclude_terms`` are brand-like words never used in names; ``taken_names`` are names
    already used by siblings that a new name must not repeat; ``context`` (the parent's name)
    opens each definition, so a child named without its parent's words still matches its items.
    """
    from agentictagger.vocab.names import flat_key, head_word, is_noun_phrase, name_key

    parent_heads = {head_word(p) for p in parent_path[-1:]}
    if not groups:
        return []
    vec = CountVectorizer(
        ngram_range=(1, 2),
        stop_words=sorted(STOP_WORDS),
        token_pattern=r"(?u)\b[A-Za-z][A-Za-z\-']+\b",
        lowercase=True,
        binary=True,
    )
    all_texts = [t for g in groups for t in g]
    try:
        x = vec.fit_transform(all_texts)
    except ValueError:  # no usable words at all
        return [_fallback(i, taken_names) for i in range(len(groups))]
    vocab = np.asarray(vec.get_feature_names_out())
    ok = np.array(
        [
            _usable(p, exclude_terms) and is_noun_phrase(p) and head_word(p) not in parent_heads and flat_key(p) not in brand_strings
            for p in vocab
        ]
    )
    df_all = np.asarray(x.sum(axis=0)).ravel() / max(1, len(all_texts))
    bounds = np.cumsum([0] + [len(g) for g in groups])
    used_names = {name_key(n) for n in taken_names}
    out: list[GroupName] = []
    for gi in range(len(groups)):
        lo, hi = bounds[gi], bounds[gi + 1]
        if hi <= lo:
            out.append(_fallback(gi, list(used_names)))
            continue
        df_g = np.asarray(x[lo:hi].sum(axis=0)).ravel() / (hi - lo)
        min_df = max(min_df_share, 2.0 / (hi - lo)) if hi - lo >= 2 else 0.0
        cand_mask = ok & (df_g >= min_df)
        if not cand_mask.any():
            cand_mask = ok & (df_g > 0)
        cand = np.flatnonzero(cand_mask)
        if len(cand) == 0:
            out.append(_fallback(gi, list(used_names)))
            continue
        lift = np.log((df_g[cand] + 1e-9) / (df_all[cand] + 1e-9))
        pre = df_g[cand] * np.exp(np.clip(lift, -3, 3))
        cand = cand[np.argsort(-pre, kind="stable")[:40]]
        phrases = [str(vocab[c]) for c in cand]
        centroid = encode(list(groups[gi])).mean(axis=0)
        centroid = centroid / max(np.linalg.norm(centroid), 1e-12)
        pe = encode(phrases)
        rel = pe @ centroid
        score = rel + 0.5 * df_g[cand] + 0.1 * np.clip(np.log((df_g[cand] + 1e-9) / (df_all[cand] + 1e-9)), 0, 3)
        chosen = _mmr(pe, score, n_phrases)
        picked = [phrases[i] for i in chosen]
        name = _make_name(picked, [df_g[cand[i]] for i in chosen], used_names, phrases)
        used_names.add(name_key(name))
        examples = [p for p in picked if p.lower() != name.lower()][:3] or picked[:1]
        scope = f" within {context}" if context else ""
        definition = f"{name}{scope}: items such as " + _join_words(examples) + "."
        out.append(GroupName(name, definition, picked))
    return out


def _usable(phrase: str, exclude: set[str] | frozenset[str]) -> bool:
    toks = phrase.split()
    if any(t in exclude or t in STOP_WORDS or len(t) < 3 for t in toks):
        return False
    if len(toks) == 2 and toks[0] == toks[1]:
        return False
    return True


def _mmr(emb: np.ndarray, score: np.ndarray, k: int, diversity: float = 0.5) -> list[int]:
    chosen: list[int] = []
    rest = list(range(len(score)))
    while rest and len(chosen) < k:
        if not chosen:
            best = max(rest, key=lambda i: score[i])
        else:
            sim = emb[rest] @ emb[chosen].T
            mmr = (1 - diversity) * score[rest] - diversity * sim.max(axis=1)
            best = rest[int(np.argmax(mmr))]
        chosen.append(best)
        rest.remove(best)
    return chosen


def _join_words(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _make_name(picked: list[str], coverage: list[float], used: set[str], ranked: Sequence[str] = ()) -> str:
    from agentictagger.vocab.names import name_key

    if not picked:
        return _fallback(len(used), list(used)).name
    options = [_title(picked[0])]
    # Two phrases only when both are single nouns, the first covers a minority of the group and
    # the second a real share too ("Shampoo & Conditioner"); a pair of longer phrases reads as
    # noise ("Adhesive & Length Width").
    if len(picked) > 1:
        a, b = picked[0], picked[1]
        if len(a.split()) == 1 and len(b.split()) == 1 and a != b:
            pair = f"{_title(a)} & {_title(b)}"
            if coverage[0] < 0.3 and coverage[1] >= 0.2:
                options.insert(0, pair)
            else:
                options.append(pair)
    options += [_title(p) for p in picked[1:]]
    # Then the group's other candidate phrases, best first: a numbered copy of a sibling's name
    # ("Serum (2)") is the last resort.
    options += [_title(p) for p in ranked if p not in picked]
    for opt in options:
        if name_key(opt) not in used:
            return opt
    base = options[0]
    i = 2
    while name_key(f"{base} ({i})") in used:
        i += 1
    return f"{base} ({i})"


def _fallback(i: int, used: Sequence[str]) -> GroupName:
    name = f"Group {i + 1}"
    while name.lower() in {u.lower() for u in used}:
        i += 1
        name = f"Group {i + 1}"
    return GroupName(name, "Items with too little text to characterise.", [])
