"""Naming groups of items offline: distinctive key phrases, re-ranked by meaning.

Candidates come from class-based document frequencies (a phrase common inside the group and
rarer in its siblings, as c-TF-IDF topic models do); they are then re-ranked by how close the
phrase's embedding lies to the group's centroid (KeyBERT-style) so that generic category words
beat brand names and model numbers, and picked with a diversity penalty (MMR).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping, Sequence

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
    from agentictagger.vocab.name_rules import flat_key

    return {k for k in (flat_key(b or "") for b in brands) if any(c.isalpha() for c in k)}


def catalog_brands(brands: Sequence[str], texts: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The catalog's brand knowledge, as the name rules use it: (brand words, whole brand strings).

    Brand words: :func:`first_word_brands` and :func:`brand_terms` (words met almost only as
    brands; never ordinary category words). Whole brand strings: the brand field's
    (:func:`brand_strings`), brands or product lines that open many titles
    (:func:`opener_brands`), initials written for a brand and brands written out for initials
    (:func:`brand_initials`, :func:`spelled_out_brands`), product lines written after a brand
    (:func:`product_lines`), and a brand glued to one of these (:func:`glued_brands`)."""
    words = frozenset(first_word_brands(texts) | brand_terms(brands, texts))
    strings = (
        brand_strings(brands)
        | opener_brands(texts)
        | brand_initials(brands, texts)
        | spelled_out_brands(brands, texts)
        | product_lines(brands, texts)
    )
    return words, frozenset(strings | glued_brands(texts, strings))


def glued_brands(texts: Sequence[str], strings: set[str] | frozenset[str], min_part: int = 3) -> set[str]:
    """Words of the texts that are a one-word brand glued to a brand or product line
    ("canonpixma" in "the newer CanonPixma iP3000"), which the English lexicon does not know;
    both parts at least ``min_part`` letters."""
    from agentictagger.vocab.name_rules import flat_key, in_lexicon

    single = {b for b in strings if " " not in b and len(b) >= min_part and b.isalpha()}
    if not single:
        return set()
    out = set()
    for w in {t for text in texts for t in flat_key(text).split() if len(t) >= 2 * min_part and t.isalpha()}:
        if w in strings or not any(w[:k] in single and w[k:] in single for k in range(min_part, len(w) - min_part + 1)):
            continue
        if not in_lexicon(w):
            out.add(w)
    return out


# Brand-field values that name no maker.
NO_BRAND = frozenset({"", "unknown", "generic", "na", "n a", "none", "no brand", "unbranded"})


def product_lines(
    brands: Sequence[str],
    texts: Sequence[str],
    min_items: int = 5,
    min_share: float = 0.8,
    window: int = 2,
    min_after: float = 0.5,
) -> set[str]:
    """Product-line words a maker writes after its name ("pixma" of "Canon PIXMA", "roomba" of
    "iRobot Roomba", "officejet" of "HP Officejet"), as :func:`names.flat_key` writes them.

    A word counts when the English lexicon does not know it, at least ``min_items`` branded items
    carry it, at least ``min_share`` of those share one brand, and in at least ``min_after`` of
    that brand's items the word follows the brand within ``window`` words (a "Brand: X" label does
    not count as a mention). The lexicon test keeps ordinary words usable however much one maker
    dominates them ("Magic Tape", "Otoscopes"); the position test keeps a rare kind word that one
    seller happens to carry. A word of the brand itself is left to :func:`brand_terms`."""
    from agentictagger.vocab.name_rules import flat_key, in_lexicon

    carried: dict[str, Counter[str]] = {}
    after_brand: dict[str, Counter[str]] = {}
    for brand, text in zip(brands, texts):
        b = flat_key(brand or "")
        if b in NO_BRAND:
            continue
        bt = b.split()
        toks = flat_key(text).split()
        follows: set[str] = set()
        for i in range(len(toks) - len(bt) + 1):
            if toks[i : i + len(bt)] == bt and not (i and toks[i - 1] == "brand"):
                follows.update(toks[i + len(bt) : i + len(bt) + window])
        for t in set(toks):
            if len(t) < 3 or not t.isalpha():
                continue
            carried.setdefault(t, Counter())[b] += 1
            if t in follows:
                after_brand.setdefault(t, Counter())[b] += 1
    out = set()
    for t, by_brand in carried.items():
        n = sum(by_brand.values())
        if n < min_items:
            continue
        b, top = by_brand.most_common(1)[0]
        if top < min_share * n or after_brand.get(t, Counter())[b] < min_after * top:
            continue
        if any(w.startswith(t) or t.startswith(w) for w in b.split()) or in_lexicon(t):
            continue
        out.add(t)
    return out


def brand_initials(brands: Sequence[str], texts: Sequence[str], min_words: int = 3, min_share: float = 0.5) -> set[str]:
    """Initials a catalog writes for a brand of ``min_words`` or more words ("IPG" in the titles
    of "Intertape Polymer Group" items): kept only when at least ``min_share`` of the item texts
    that carry them belong to that brand, so an abbreviation of a kind that a brand's initials
    happen to spell ("ABS" beside a brand "Advanced Battery Supplies") stays usable."""
    from agentictagger.vocab.name_rules import flat_key

    initials: dict[str, set[str]] = {}
    for b in brands:
        ws = [w for w in flat_key(b or "").split() if w.isalpha()]
        if len(ws) >= min_words:
            initials.setdefault("".join(w[0] for w in ws), set()).add(flat_key(b))
    if not initials:
        return set()
    carried: Counter[str] = Counter()
    by_brand: Counter[str] = Counter()
    for i, text in enumerate(texts):
        found = set(flat_key(text).split()) & initials.keys()
        own = flat_key(brands[i] or "") if i < len(brands) else ""
        for w in found:
            carried[w] += 1
            by_brand[w] += own in initials[w]
    return {w for w, n in carried.items() if by_brand[w] >= min_share * n}


def spelled_out_brands(brands: Sequence[str], texts: Sequence[str], min_items: int = 3, min_share: float = 0.5) -> set[str]:
    """A brand written out in full where the brand field holds its initials ("Hewlett Packard" for
    "HP"), as :func:`names.flat_key` writes it: a run of words whose initials spell a brand of 2 to
    4 letters, in at least ``min_items`` item texts, at least ``min_share`` of them that brand's
    items or texts that also write the initials, with at least one word the English lexicon does
    not know (a proper name). The lexicon test keeps a kind whose initials happen to spell a brand
    ("Blood Draw" beside "BD") usable."""
    from agentictagger.vocab.name_rules import flat_key, in_lexicon

    short: set[str] = set()
    for b in brands:
        k = flat_key(b or "")
        if 2 <= len(k) <= 4 and k.isalpha() and k not in NO_BRAND:
            short.add(k)
    if not short:
        return set()
    carried: Counter[str] = Counter()
    by_brand: Counter[str] = Counter()
    for i, text in enumerate(texts):
        toks = flat_key(text).split()
        own = flat_key(brands[i] or "") if i < len(brands) else ""
        found: dict[str, str] = {}  # run -> the initials it spells
        for n in range(2, 5):
            for j in range(len(toks) - n + 1):
                run = toks[j : j + n]
                initials = "".join(w[0] for w in run)
                if initials in short and all(w.isalpha() and len(w) >= 3 for w in run):
                    found[" ".join(run)] = initials
        words = set(toks)
        for g, initials in found.items():
            carried[g] += 1
            by_brand[g] += own == initials or initials in words
    return {
        g
        for g, n in carried.items()
        if n >= min_items and by_brand[g] >= min_share * n and not all(in_lexicon(w) for w in g.split())
    }


def opener_brands(texts: Sequence[str], min_count: int = 5, min_first_share: float = 0.7, max_words: int = 3) -> set[str]:
    """Brand and product-line strings learned from the catalog itself: word sequences (2 to
    ``max_words`` words, as :func:`names.flat_key` writes them) that open at least ``min_count``
    item texts and occur mostly there ("electronic arts", "call of duty"). A catalog without a
    brand field still names its brands this way, and a name made of a fragment of one ("Arts",
    "Duty") is caught by :func:`debrand`."""
    from agentictagger.vocab.name_rules import flat_key

    first: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for text in texts:
        toks = flat_key(text.split("\n", 1)[0]).split()
        if len(toks) < 2:
            continue
        for n in range(2, max_words + 1):
            if len(toks) < n:
                break
            first[" ".join(toks[:n])] += 1
        seen = {" ".join(toks[i : i + n]) for n in range(2, max_words + 1) for i in range(len(toks) - n + 1)}
        for g in seen:
            if g in first:
                total[g] += 1
    out = set()
    for g, c in first.items():
        ws = g.split()
        if c < min_count or c / max(1, total[g]) < min_first_share:
            continue
        if any(w.isdigit() for w in ws) or all(w in ENGLISH_STOP_WORDS for w in ws):
            continue
        out.add(g)
    # Keep the shortest opener of a family ("call of duty" beside "call of duty black"), since
    # removing it from a text removes the longer one's fragment too.
    return {g for g in out if not any(o != g and g.startswith(o + " ") for o in out)}


#: What ends a phrase in an item text: punctuation between parts of a title ("Storage Boxes, Letter
#: Size"), a line or sentence end ("... Torque. Brand: ..."), a spaced dash.
_BREAK = re.compile(r"[,;:()\[\]{}|!?\n]+|\.(?:\s|$)|\s[-\u2013\u2014]+\s")


def debrand(text: str, brands: frozenset[str] | set[str]) -> str:
    """``text`` as :func:`names.flat_key` writes it, with every whole brand string removed and
    " | " wherever a brand or a break (:data:`_BREAK`) stood: key phrases are then never
    fragments of brands ("Arts" from "Electronic Arts") and never span two parts of a text
    ("boxes letter" from "Storage Boxes, Letter Size")."""
    return _debrand(text, brands if isinstance(brands, frozenset) else frozenset(brands))


# Cached: a build debrands every item text in each job it is in (one per level), two or three
# times per job (naming, renaming, kinds); uncached it held the GIL for about 3 % of a first
# Beauty build's samples in an ad hoc py-spy profile.
@lru_cache(maxsize=1 << 16)
def _debrand(text: str, brands: frozenset[str]) -> str:
    from agentictagger.vocab.name_rules import flat_key

    flat = " " + " | ".join(flat_key(part) for part in _BREAK.split(text)) + " "
    if brands:
        flat = _brand_pattern(brands).sub(" | ", flat)
    return " ".join(flat.split())


_PATTERNS: dict[frozenset[str], "re.Pattern[str]"] = {}


def _brand_pattern(brands: frozenset[str]) -> "re.Pattern[str]":
    pat = _PATTERNS.get(brands)
    if pat is None:
        alts = sorted((re.escape(b) for b in brands if b), key=len, reverse=True)
        pat = re.compile(r"(?<= )(?:" + "|".join(alts) + r")(?= )") if alts else re.compile(r"(?!x)x")
        if len(_PATTERNS) > 8:
            _PATTERNS.clear()
        _PATTERNS[brands] = pat
    return pat


def _phrases(text: str) -> list[str]:
    """Unigrams and bigrams of *adjacent* words of a :func:`debrand` text (a stop word, number,
    brand or break between two words breaks the pair: "Length 12 Parts" gives no "length parts",
    "boxes | letter" no "boxes letter")."""
    out: list[str] = []
    for part in text.split("|"):
        toks = [t for t in re.split(r"[^a-z0-9\-']+", part) if t]
        ok = [bool(_TOKEN.fullmatch(t)) and t not in STOP_WORDS and len(t) >= 3 for t in toks]
        out += [t for t, good in zip(toks, ok) if good]
        out += [f"{a} {b}" for a, b, ga, gb in zip(toks, toks[1:], ok, ok[1:]) if ga and gb and a != b]
    return out


_SEGMENT_END = re.compile(r",|;|:|\(|\[|\|| - | – | — |\s(?:for|with|by|from|in|on|to|of|and|&|w/)\s", re.I)


def kind_phrases(text: str) -> set[str]:
    """The phrase that names what an item *is*, as product titles put it: the last one or two
    words of the title's first segment (before a comma, dash, bracket or "for/with/..."), once
    trailing numbers, sizes and packaging words are dropped: "VTech CS6114 DECT 6.0 Cordless
    Phone, White/Grey" -> {"phone", "cordless phone"}. A segment with no word (where a
    :func:`debrand` text lost the brand that opened it) does not count."""
    segments = _SEGMENT_END.split(text.split("\n", 1)[0])
    head = next((seg for seg in segments if re.search(r"[a-z]", seg, re.I)), "").lower()
    toks = [t for t in re.split(r"[^a-z0-9\-']+", head) if t]
    while toks and (toks[-1] in STOP_WORDS or not _TOKEN.fullmatch(toks[-1]) or len(toks[-1]) < 3):
        toks.pop()
    if not toks:
        return set()
    out = {toks[-1]}
    if len(toks) >= 2 and _TOKEN.fullmatch(toks[-2]) and toks[-2] not in STOP_WORDS and len(toks[-2]) >= 3:
        out.add(f"{toks[-2]} {toks[-1]}")
    return out


def title_kind_heads(texts: Sequence[str]) -> list[frozenset[str]]:
    """Per text, the lemmas of the words its :func:`kind_phrases` end in: what the title says the
    item is, ready for :func:`title_kind_share` to be asked about many names."""
    from agentictagger.vocab.name_rules import lemma

    return [frozenset(lemma(p.rsplit(" ", 1)[-1]) for p in kind_phrases(t)) for t in texts]


def title_kind_share(name: str, texts: Sequence[str], heads: Sequence[frozenset[str]] | None = None) -> float:
    """The share of ``texts`` whose titles say the item is what ``name`` names: a
    :func:`kind_phrases` phrase ends in the name's last word (as lemmas; for "A & B", either
    part's). "Notes" for a group of copy paper and sticky notes counts the titles ending their
    first segment in "notes"; "Straight" counts none. ``heads`` (:func:`title_kind_heads` of
    ``texts``) saves finding the phrases again for each name (about 30 ms for 500 titles)."""
    from agentictagger.vocab.name_rules import lemma, words

    names = {lemma(ws[-1]) for part in name.split("&") if (ws := words(part))}
    if not names or not texts:
        return 0.0
    if heads is None:
        heads = title_kind_heads(texts)
    return sum(1 for h in heads if h & names) / len(texts)


#: A completed name must occur, word for word, in at least ``COMPLETION_MIN_TEXTS`` of its
#: group's texts, at least ``COMPLETION_MIN_SHARE`` of them and at least ``COMPLETION_OF_NAME`` of
#: the texts that write the name (a "Steel" group of rulers, bolts, hinges and rods is not "Steel
#: Rulers"; a "Carbide" group of burrs, bits and end mills is not "Carbide End Mills"), end the
#: compound in at least ``COMPLETION_MIN_ENDS`` of the places it occurs, and have at most
#: ``COMPLETION_MAX_WORDS`` words.
COMPLETION_MIN_TEXTS, COMPLETION_MIN_SHARE, COMPLETION_OF_NAME, COMPLETION_MIN_ENDS, COMPLETION_MAX_WORDS = 2, 0.1, 0.5, 0.5, 4
#: Words a completion never adds: they say nothing about what the item is ("Metal Working
#: Product Companies").
GENERIC_WORDS = frozenset("product products item items brand brands".split())
#: A name whose first word the job's texts write as half of a fixed phrase gets the other half
#: ("Duty Pencil Sharpener" -> "Heavy Duty Pencil Sharpener", "Emitting Diodes" -> "Light Emitting
#: Diodes"; :func:`mend_bound_opener`; ``bench/compound_names.py``, setting ``keepbound``).
MEND_BOUND_OPENERS = True
#: Also add the noun the texts write before a name (:func:`complete_compound`;
#: ``bench/compound_names.py``).
COMPLETE_MODIFIERS = True


def complete_compound(name: str, texts: Sequence[str], top_level: bool = False) -> str:
    """``name`` completed to the noun compound its group's ``texts`` write around it, or "".

    Key phrases are one or two words, so a name can stop inside the compound the titles write:
    "Glass" for glass bottles, "Heat Shrink" for heat shrink tubing, "Black Toner" for black toner
    cartridges (:func:`name_rules.cut_short` finds the commonest continuation). The completion
    keeps the name and adds the continuation word by word, up to the first word where the texts
    end the compound ("Step Drill" goes on to "Step Drill Bit"; :func:`name_rules.written`),
    adding only plain nouns (:func:`name_rules.plain_nouns`: not "Bags Food Safe", "Extrusion
    Temperature Range"); the completed name must name a kind (:func:`name_rules.is_kind_name`)
    and occur in enough of the texts (see ``COMPLETION_MIN_SHARE``); else the name stays as it is.
    With ``COMPLETE_MODIFIERS``, a name with no continuation that the texts mostly write after the
    same plain noun gets that noun ("Maker" for label makers -> "Label Maker"; :func:`with_modifier`)."""
    if "&" in name or not texts:
        return ""
    return _continued(name, texts, top_level) or (with_modifier(name, texts, top_level) if COMPLETE_MODIFIERS else "")


def _continued(name: str, texts: Sequence[str], top_level: bool) -> str:
    """``name`` with the words the texts write after it, or "" (see :func:`complete_compound`)."""
    from agentictagger.vocab.name_rules import cut_short, is_kind_name, plain_nouns, words, written

    run = cut_short(name, texts).split()
    if not run:
        return ""
    least = max(COMPLETION_MIN_TEXTS, COMPLETION_MIN_SHARE * len(texts), COMPLETION_OF_NAME * written(name, texts)[0])
    for k in range(2, len(run) + 1):
        longer = " ".join([name, *(_title(w) for w in run[1:k])])
        added = run[k - 1]
        if len(words(longer)) > COMPLETION_MAX_WORDS or not plain_nouns([added]) or added in GENERIC_WORDS:
            return ""
        held, ends = written(longer, texts)
        if held < least:
            return ""
        if ends >= COMPLETION_MIN_ENDS:
            return longer if is_kind_name(longer, top_level) else ""
    return ""


def mend_bound_opener(name: str, texts: Sequence[str], top_level: bool, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``name`` whole again when its first word is half of a fixed phrase in the job's ``texts``
    (:func:`name_rules.bound_opener`): the other half put beside it ("Duty Pencil Sharpener" ->
    "Heavy Duty Pencil Sharpener", "Caller Cordless Phone" -> "Caller Id Cordless Phone"), or, when
    that is too long or no kind name, the half word left out ("Duty Pencil Sharpener" -> "Pencil
    Sharpener"). A half the English lexicon does not know is a maker's name, not a fixed phrase: the
    name stays ("Copy Paper" in "Hammermill copy paper"). A result whose key is in ``taken`` (siblings,
    ancestors) is not used; the name stays as it is when neither works."""
    from agentictagger.vocab.name_rules import bound_opener, in_lexicon, is_kind_name, name_key, words

    fixed = bound_opener(name, texts).split()
    if not fixed:
        return name
    ws = name.split()
    first = fixed[1] == ws[0].lower()
    other = fixed[0] if first else fixed[1]
    if not in_lexicon(other):
        return name
    longer = [_title(other), *ws] if first else [ws[0], _title(other), *ws[1:]]
    for option in (" ".join(longer), " ".join(ws[1:])):
        if (option and len(words(option)) <= COMPLETION_MAX_WORDS and is_kind_name(option, top_level)
                and name_key(option) not in taken):
            return option
    return name


def with_modifier(name: str, texts: Sequence[str], top_level: bool) -> str:
    """``name`` with the plain noun the texts most often write right before it, when at least
    half of the texts that write the name write it there (and enough of the group, as for the
    continuation): "Maker" -> "Label Maker"; "Printer" written after "photo", "inkjet" and
    "laser" stays as it is. The noun must begin the compound, as a continuation must end it: not
    when half of the texts that write both write the same word before them ("heavy duty mounting
    tape", "fine point permanent markers", "2 line scientific calculator"). Else ""."""
    from agentictagger.vocab.name_rules import is_kind_name, lemma, plain_nouns, words, words_before

    before, held = words_before(name, texts)
    if not before or len(words(name)) >= COMPLETION_MAX_WORDS:
        return ""
    word, n = before.most_common(1)[0]
    least = max(COMPLETION_MIN_TEXTS, COMPLETION_MIN_SHARE * len(texts), COMPLETION_OF_NAME * held)
    if n < least or word in GENERIC_WORDS or not plain_nouns([word]) or lemma(word) in {lemma(w.lower()) for w in words(name)}:
        return ""
    longer = f"{_title(word)} {name}"
    further, both = words_before(longer, texts)
    if further and further.most_common(1)[0][1] >= max(COMPLETION_MIN_TEXTS, COMPLETION_OF_NAME * both):
        return ""
    return longer if is_kind_name(longer, top_level) else ""


@dataclass
class GroupName:
    name: str
    definition: str
    phrases: list[str]
    #: Per phrase, the share of the group's titles whose first segment ends in it (see
    #: :func:`kind_phrases`): how often the titles themselves say the items *are* that.
    kind_shares: list[float] = field(default_factory=list)
    #: The group's most distinctive usable phrases (kinds or not, brands left out): the examples a
    #: definition may cite (see :func:`separating_examples`).
    pool: list[str] = field(default_factory=list)


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
    separate: bool = True,
    complete: bool = True,
    separating_sweeps: int = 1,
    separating_pool: int | None = None,
    separating_shortlist: int | None = None,
) -> list[GroupName]:
    """One distinct, human-readable name + definition per group of item texts.

    ``groups`` are the texts of sibling groups (the contrast set for distinctiveness);
    ``exclude_terms`` are brand-like words never used in names; ``taken_names`` are names
    already used by siblings that a new name must not repeat; ``context`` (the parent's name)
    opens each definition, so a child named without its parent's words still matches its items.
    ``separate``: each definition's examples are then chosen from the group's pool so that the
    sibling texts tell the groups' items apart (:func:`separating_examples`, in ``separating_sweeps``
    passes, trying at most ``separating_pool`` phrases first and ``separating_shortlist`` after;
    defaults ``POOL_SIZE`` and ``SHORTLIST``). ``complete``: a name
    that stops inside a compound its titles write is completed (:func:`complete_compound`).
    """
    from agentictagger.vocab.name_rules import adds_to_parent, flat_key, is_kind_name, is_noun_phrase, name_key

    parent_keys = {name_key(p) for p in parent_path}

    parent = parent_path[-1] if parent_path else ""
    if not groups:
        return []
    vec = CountVectorizer(analyzer=_phrases, binary=True)
    all_texts = [debrand(t, brand_strings) for g in groups for t in g]
    try:
        x = vec.fit_transform(all_texts)
    except ValueError:  # no usable words at all
        return [_fallback(i, taken_names) for i in range(len(groups))]
    vocab = np.asarray(vec.get_feature_names_out())
    ok = np.array(
        [
            _usable(p, exclude_terms)
            and is_kind_name(p, top_level=not parent_path)
            and (not parent or adds_to_parent(p, parent))
            and name_key(p) not in parent_keys
            and flat_key(p) not in brand_strings
            for p in vocab
        ]
    )
    example_ok = np.array(
        [_usable(p, exclude_terms) and name_key(p) not in parent_keys and flat_key(p) not in brand_strings for p in vocab]
    )
    df_all = np.asarray(x.sum(axis=0)).ravel() / max(1, len(all_texts))
    bounds = np.cumsum([0] + [len(g) for g in groups])
    pools: list[list[str]] = []
    # Each group's item vectors, encoded once for its centroid and reused to choose its examples.
    item_vecs: list[np.ndarray | None] = [None] * len(groups)
    used_names = {name_key(n) for n in taken_names}
    # Pass 1, per group: its example pool and up to 40 candidate phrases (what does not depend on
    # the names siblings take). The candidates of all groups are then encoded in one call: one
    # model call per group made the model's fixed cost per call most of a first build's naming
    # time (ad hoc count: ~2,500 encoding calls of ~5 texts each on Beauty).
    prepared: list[tuple[np.ndarray, float, np.ndarray, Counter[str], list[str]] | None] = []
    for gi in range(len(groups)):
        lo, hi = bounds[gi], bounds[gi + 1]
        if hi <= lo:
            pools.append([])
            prepared.append(None)
            continue
        df_g = np.asarray(x[lo:hi].sum(axis=0)).ravel() / (hi - lo)
        min_df = max(min_df_share, 2.0 / (hi - lo)) if hi - lo >= 2 else 0.0
        distinctive = np.where(example_ok & (df_g >= min_df), df_g * np.log((df_g + 1e-9) / (df_all + 1e-9)), 0.0)
        pools.append([str(vocab[j]) for j in np.argsort(-distinctive, kind="stable")[:POOL_SIZE] if distinctive[j] > 0])
        cand_mask = ok & (df_g >= min_df)
        if not cand_mask.any():
            cand_mask = ok & (df_g > 0)
        cand = np.flatnonzero(cand_mask)
        kinds: Counter[str] = Counter()
        if len(cand):
            lift = np.log((df_g[cand] + 1e-9) / (df_all[cand] + 1e-9))
            # Phrases that end the first segment of many titles name what the items are (the
            # debranded texts are the ones made for the vectorizer above).
            for t, flat in zip(groups[gi], all_texts[lo:hi]):
                kinds.update(kind_phrases(flat if brand_strings else t))
            kind_share = np.array([kinds.get(str(vocab[c]), 0) / (hi - lo) for c in cand])
            pre = (df_g[cand] + kind_share) * np.exp(np.clip(lift, -3, 3))
            cand = cand[np.argsort(-pre, kind="stable")[:40]]
        prepared.append((df_g, min_df, cand, kinds, [str(vocab[c]) for c in cand]))
    all_phrases = list(dict.fromkeys(p for prep in prepared if prep is not None for p in prep[4]))
    phrase_vecs = dict(zip(all_phrases, np.asarray(encode(all_phrases), dtype=np.float32))) if all_phrases else {}
    out: list[GroupName] = []
    for gi in range(len(groups)):
        lo, hi = bounds[gi], bounds[gi + 1]
        prep = prepared[gi]
        if prep is None:
            out.append(_fallback(gi, list(used_names)))
            continue
        df_g, min_df, cand, kinds, phrases = prep
        if len(cand) == 0:
            # No phrase passes the name filters: the group's most distinctive word that no sibling
            # or ancestor uses (even a filtered one) says more than a numbered "Group N".
            words_g = [j for j in np.flatnonzero(df_g > 0) if " " not in str(vocab[j]) and str(vocab[j]) not in exclude_terms
                       and flat_key(str(vocab[j])) not in brand_strings and name_key(str(vocab[j])) not in used_names
                       and name_key(str(vocab[j])) not in parent_keys and (not parent or adds_to_parent(str(vocab[j]), parent))]
            if words_g:
                j = max(words_g, key=lambda j: (df_g[j] * np.log((df_g[j] + 1e-9) / (df_all[j] + 1e-9)), df_g[j]))
                nm = _title(str(vocab[j]))
                used_names.add(name_key(nm))
                out.append(GroupName(nm, definition_sentence(nm, context, []), [str(vocab[j])]))
            else:
                out.append(_fallback(gi, list(used_names)))
            continue
        item_vecs[gi] = np.asarray(encode(list(groups[gi])), dtype=np.float32)
        centroid = item_vecs[gi].mean(axis=0)
        centroid = centroid / max(np.linalg.norm(centroid), 1e-12)
        pe = np.stack([phrase_vecs[p] for p in phrases])
        rel = pe @ centroid
        kind_c = np.array([kinds.get(p, 0) / (hi - lo) for p in phrases])
        score = rel + 0.5 * df_g[cand] + kind_c + 0.1 * np.clip(np.log((df_g[cand] + 1e-9) / (df_all[cand] + 1e-9)), 0, 3)
        chosen = _mmr(pe, score, n_phrases)
        picked = [phrases[i] for i in chosen]
        texts_g = all_texts[lo:hi] if brand_strings else groups[gi]
        name = _make_name(picked, [df_g[cand[i]] for i in chosen], used_names, phrases)
        if name_key(name) in used_names:
            # Every candidate is a sibling's name: qualify it by the word that most sets this group
            # apart, even one the brand filter keeps out of names on its own ("Apple Number").
            distinct = np.flatnonzero((df_g >= min_df) & np.array([" " not in str(v) and is_noun_phrase(str(v)) for v in vocab]))
            if len(distinct):
                best = distinct[np.argmax(df_g[distinct] * np.log((df_g[distinct] + 1e-9) / (df_all[distinct] + 1e-9)))]
                qualified = f"{_title(str(vocab[best]))} {name}"
                if name_key(qualified) not in used_names and str(vocab[best]) not in name.lower():
                    name = qualified
        if complete:
            longer = complete_compound(name, texts_g, top_level=not parent_path)
            if longer and name_key(longer) not in used_names and name_key(longer) not in parent_keys:
                used_names.add(name_key(name))  # no sibling takes "Glass" beside "Glass Bottles"
                name = longer
        if QUALIFY_SHARE is not None and "&" not in name and not whole_kind(name, texts_g, not parent_path, QUALIFY_SHARE):
            qualified = _qualified(name, kinds, hi - lo, not parent_path, exclude_terms, brand_strings)
            if qualified and name_key(qualified) not in used_names and name_key(qualified) not in parent_keys:
                name = qualified
        if MEND_BOUND_OPENERS:
            name = mend_bound_opener(name, all_texts, not parent_path, used_names | parent_keys)
        used_names.add(name_key(name))
        examples = [p for p in picked if p.lower() != name.lower()][:5] or picked[:1]
        definition = definition_sentence(name, context, examples)
        out.append(GroupName(name, definition, picked, [round(float(kind_c[i]), 4) for i in chosen]))
    for g, pool in zip(out, pools):
        g.pool = pool
    if separate and len(out) > 1:
        starts = [[p for p in g.phrases if p.lower() != g.name.lower()][:5] for g in out]
        chosen_examples = separating_examples([g.name for g in out], context, [g.pool for g in out], groups, encode, starts,
                                              vectors=item_vecs, sweeps=separating_sweeps,
                                              pool_size=separating_pool, shortlist=separating_shortlist)
        for g, ex in zip(out, chosen_examples):
            g.definition = definition_sentence(g.name, context, ex)
    return out


#: Phrases per group a definition may cite as examples.
POOL_SIZE = 20
#: Groups whose items find their own text at least this often (and whose text takes no other
#: group's items) keep their examples.
SEPARATED_ENOUGH = 1.0
#: After the first example, the rest are tried among the best this many first choices.
SHORTLIST = 8


def separating_examples(
    names: Sequence[str],
    context: str,
    pools: Sequence[Sequence[str]],
    groups: Sequence[Sequence[str]],
    encode: EncodeFn,
    starts: Sequence[Sequence[str]],
    max_examples: int = 4,
    vectors: Sequence[np.ndarray | None] | None = None,
    sweeps: int = 1,
    pool_size: int | None = None,
    shortlist: int | None = None,
) -> list[list[str]]:
    """Per group, the examples its definition cites: chosen greedily from its pool so that more of
    the sibling groups' items find their own group's text ("name: definition", the text the
    annotator and the assigner match) the most similar among the siblings'. No labels are used:
    only the groups themselves. A group keeps ``starts`` unless a choice sets more items right.
    ``vectors``: the groups' item vectors where already encoded (None rows are encoded here).
    ``sweeps``: passes over the groups; a group's best choice depends on its siblings' texts, so a
    later pass can set more items right (it stops early when a pass changes nothing).
    ``pool_size``: the first example is tried among a group's first this-many readable phrases
    (default ``POOL_SIZE``); ``shortlist``: later ones among the best this-many first choices
    (default ``SHORTLIST``). Each trial is a sentence to embed: together they set the cost.

    Chosen on Scientific's development half (``bench/tune_renames.py``, 2 seeds): names-alone
    agreement rises by about 0.06 at level 1 and 0.08 at level 2 against citing the phrases picked
    for naming. The trial texts are embedded (and cached) like any text: the build's naming takes
    longer by their count, about 40 per group and job."""
    from agentictagger.structures.vocabulary import descriptor_text
    from agentictagger.vocab.name_rules import name_key

    n = len(names)
    # A reader learns nothing from an example the name already says ("printer" for Printer
    # Filament) or from the same word twice ("printer", "printers").
    readable: list[list[str]] = []
    for name, pool in zip(names, pools):
        said, seen, keep = set(name_key(name).split()), set(), []
        for p in pool:
            k = name_key(p)
            if k and k not in seen and not set(k.split()) <= said:
                seen.add(k)
                keep.append(p)
        readable.append(keep[: POOL_SIZE if pool_size is None else pool_size])
    pools = readable
    short = SHORTLIST if shortlist is None else shortlist
    given = list(vectors) if vectors is not None else [None] * len(groups)
    vecs = [v if v is not None else np.asarray(encode(list(g)), dtype=np.float32) if len(g) else np.zeros((0, 1), np.float32)
            for v, g in zip(given, groups)]
    if n < 2 or any(len(v) == 0 for v in vecs):
        return [list(s) for s in starts]
    x = np.concatenate(vecs)
    own = np.repeat(np.arange(n), [len(v) for v in vecs])
    rows = np.arange(len(x))
    chosen = [list(s) for s in starts]

    def texts_of(j: int, options: Sequence[Sequence[str]]) -> list[str]:
        return [descriptor_text(names[j], definition_sentence(names[j], context, list(o))) for o in options]

    t = np.asarray(encode([texts_of(j, [chosen[j]])[0] for j in range(n)]), dtype=np.float32)
    sims = x @ t.T

    def separated(j: int) -> bool:
        """Its items find it, and no other group's items take it for theirs."""
        pred = sims.argmax(axis=1)
        return bool(np.mean(pred[own == j] == j) >= SEPARATED_ENOUGH and np.all(own[pred == j] == j))

    # The first step's trials of every group that needs them, in one encoding call: their texts
    # depend on nothing another group chooses. A call per group paid the encoder's fixed per-call
    # cost again each time and ran on one thread; one large call runs with every thread (see
    # embed._EncodeGate), which matters most at level 1, where the root is the only job (measured
    # together with grouping.draw_workers: bench/build_speed.py's --baseline-rev run). A group
    # found separated only later (after a sibling's change) has encoded its trials for nothing;
    # they stay in the cache.
    first_trials: dict[int, np.ndarray] = {}
    need = [j for j in range(n) if pools[j] and not separated(j)]
    first_texts = [texts_of(j, [[p] for p in pools[j]]) for j in need]
    if need:
        flat = np.asarray(encode([q for ts in first_texts for q in ts]), dtype=np.float32)
        for j, part in zip(need, np.split(flat, np.cumsum([len(ts) for ts in first_texts])[:-1])):
            first_trials[j] = part
    for _sweep in range(sweeps):
        changed = False
        for j in range(n):
            if not pools[j]:
                continue
            others = sims.copy()
            others[:, j] = -np.inf
            best_other = others.max(axis=1)
            own_sim = sims[rows, own]
            # The best sibling other than j and the item's own group, for items of other groups.
            others[rows, own] = -np.inf
            rival = others.max(axis=1)
            mine = own == j

            def right(trial_sims: np.ndarray) -> np.ndarray:
                """Items set right, per trial column."""
                ok_mine = trial_sims[mine] > best_other[mine, None]
                ok_rest = own_sim[~mine, None] > np.maximum(trial_sims[~mine], rival[~mine, None])
                return ok_mine.sum(axis=0) + ok_rest.sum(axis=0)

            best_score = int(right(sims[:, j : j + 1])[0])
            if separated(j):
                continue
            best, prefix = chosen[j], []
            shortlist = list(pools[j])
            for step in range(max_examples):
                options = [p for p in shortlist if p not in prefix]
                if not options:
                    break
                if step == 0 and j in first_trials:
                    tv = first_trials[j]  # options == pools[j] here, in the same order
                else:
                    tv = np.asarray(encode(texts_of(j, [[*prefix, p] for p in options])), dtype=np.float32)
                scores = right(x @ tv.T)
                k = int(np.argmax(scores))
                if step == 0:  # later steps try only the best single examples: half the encodes
                    shortlist = [options[i] for i in np.argsort(-scores, kind="stable")[:short]]
                prefix = [*prefix, options[k]]
                if scores[k] > best_score:
                    best_score, best = int(scores[k]), list(prefix)
            if best is not chosen[j]:
                changed = True
                chosen[j] = best
                t[j] = encode(texts_of(j, [best]))[0]
                sims[:, j] = x @ t[j]
        if not changed:
            break
    return chosen


def definition_sentence(name: str, context: str, examples: Sequence[str]) -> str:
    """One sentence saying which items belong: what they are, where they sit, what marks them."""
    scope = f" in {context}" if context else ""
    ex = [e for e in examples if e]
    tail = f", for example items described as {_join_words(ex)}" if ex else ""
    return f"Items{scope} that are {name.lower()}{tail}."


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


#: With a share, a name that the group's texts write as the end of a noun compound in under that
#: share of the places they write it, and that completes to no longer compound, reads as a modifier
#: of other kinds, not a kind ("Wireless": wireless all-in-one printers, wireless phones; "Caller":
#: caller ID), and is followed by the kind the group's titles
#: name most ("Wireless" -> "Wireless Printer", "Coated Cloth" -> "Coated Cloth Duct Tape";
#: :func:`_qualified`); ``None``: names stay as picked. 0.2 was chosen on Scientific's development
#: half (``bench/compound_names.py``, setting ``qualify20``: the level-2 names came nearer their items'
#: Amazon category names in every seed, names alone level; ``qualified_names.json``), and held-out
#: Office moved the same way (``qualified_names_office.json``).
QUALIFY_SHARE: float | None = 0.2
#: The kind a modifier name is qualified with must be what at least this share of the group's
#: titles name the items (:func:`kind_phrases`).
QUALIFY_MIN_KIND_SHARE = 0.2
#: The kind a modifier name is qualified with must end in a word the English lexicon knows:
#: "Inlet Check Valve", not "Inlet Npt"; "Crystal Oscillator", not "Crystal Usb"
#: (``bench/compound_names.py``, setting ``unlexhead``, ``lexicon_heads.json``).
QUALIFY_LEXICON_HEAD = True


def _qualified(
    name: str,
    kinds: Mapping[str, int],
    n_items: int,
    top_level: bool,
    exclude: set[str] | frozenset[str],
    brand_strings: set[str] | frozenset[str],
) -> str:
    """``name`` followed by the kind phrase the group's titles end their first segment with most
    (``kinds``: per phrase, the titles that do), when at least ``QUALIFY_MIN_KIND_SHARE`` of the
    ``n_items`` do; a two-word kind ("inkjet printer") before its one-word head ("printer") when it
    has at least half the head's count. "" when there is none, or the result is no kind name."""
    from agentictagger.vocab.name_rules import content_lemmas, flat_key, in_lexicon, is_kind_name, words

    said = content_lemmas(name)
    ok = [(k, c) for k, c in kinds.items()
          if c >= QUALIFY_MIN_KIND_SHARE * n_items and _usable(k, exclude) and flat_key(k) not in brand_strings
          and not (content_lemmas(k) & said) and is_kind_name(k)
          and (not QUALIFY_LEXICON_HEAD or in_lexicon(k.split()[-1]))]
    if not ok:
        return ""
    best, count = max(ok, key=lambda kc: (kc[1], -len(kc[0])))
    if " " not in best:
        longer = [(k, c) for k, c in ok if k.endswith(" " + best) and 2 * c >= count]
        if longer:
            best = max(longer, key=lambda kc: kc[1])[0]
    out = f"{name} {_title(best)}"
    return out if len(words(out)) <= COMPLETION_MAX_WORDS and is_kind_name(out, top_level) else ""


def whole_kind(option: str, texts: Sequence[str], top_level: bool, min_share: float) -> bool:
    """``option`` (a name, or a pair "A & B") names a whole kind in the group's ``texts``: each part
    ends a compound in at least ``min_share`` of the places the texts write it (punctuation,
    a function or packaging word, a number or the text's end follows; :func:`name_rules.written`),
    or completes to a longer kind (:func:`complete_compound`; a single phrase only, since pairs are
    not completed). A part the texts never write word for word is not judged."""
    from agentictagger.vocab.name_rules import written

    parts = [p for p in re.split(r"\s*&\s*", option) if p]
    for part in parts:
        held, ends = written(part, texts)
        if held and ends < min_share and (len(parts) > 1 or not complete_compound(part, texts, top_level)):
            return False
    return True


def _make_name(
    picked: list[str],
    coverage: list[float],
    used: set[str],
    ranked: Sequence[str] = (),
) -> str:
    """The first of the group's name options that no sibling has (``used``): its best phrase, a
    pair, its other phrases, the rest of ``ranked``. Measured and not adopted
    (``bench/compound_names.py``): pairing only phrases the titles name as kinds
    (``paired_names*.json``), kind phrases first after a taken name (``taken_names.json``), and
    modifier names last (``whole_kinds.json``); a modifier name is qualified instead
    (``QUALIFY_SHARE``)."""
    from agentictagger.vocab.name_rules import name_key

    if not picked:
        return _fallback(len(used), list(used)).name
    options = [_title(picked[0])]
    # Two phrases only when both are single nouns; first when the first covers a minority of the
    # group and the second a real share too ("Shampoo & Conditioner"). A pair of longer phrases
    # reads as noise ("Adhesive & Length Width"); so can one whose second phrase is no kind the
    # titles name ("Calculator & Glare"), but keeping only kind pairs left "Glare" alone in its place
    # on the held-out Office catalog (``paired_names_office.json``).
    if len(picked) > 1:
        a, b = picked[0], picked[1]
        if len(a.split()) == 1 and len(b.split()) == 1 and a != b:
            pair = f"{_title(a)} & {_title(b)}"
            if coverage[0] < 0.3 and coverage[1] >= 0.2:
                options.insert(0, pair)
            else:
                options.append(pair)
    options += [_title(p) for p in picked[1:]]
    # Then the group's other candidate phrases, best first. When every one is taken the group
    # keeps its best name: the architect merges groups that share a name into one descriptor
    # (two groups that only a number would tell apart are one descriptor).
    options += [_title(p) for p in ranked if p not in picked]
    free = [opt for opt in options if name_key(opt) not in used]
    return free[0] if free else options[0]


def _fallback(i: int, used: Sequence[str]) -> GroupName:
    name = f"Group {i + 1}"
    while name.lower() in {u.lower() for u in used}:
        i += 1
        name = f"Group {i + 1}"
    return GroupName(name, "Items with too little text to characterise.", [])
