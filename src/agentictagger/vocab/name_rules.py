"""What makes a descriptor name acceptable: a noun phrase naming a kind of item.

Used by every namer (key phrases offline, the LLM namer) and by the name-quality figures of the
benchmarks, so "acceptable" means one thing everywhere. Word classes come from ``lemminflect``
(a maintained English lemma/inflection lexicon, no model download): a name's head (its last
word) must have a noun reading; colour, marketing and unit words never head a name; lemmas make
"Filament" and "Filaments" the same name among siblings and catch a child that only repeats its
parent ("Screw > Screws"): a child must add a word that says what sets it apart, and a name says
each content word once ("Screw Screws", "VoIP Phone Cordless Phones" are rejected).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterable, Sequence

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-']*")

COLOUR_WORDS = frozenset(
    """black white red blue green yellow pink purple orange brown grey gray silver gold golden beige
    ivory cream navy teal turquoise violet magenta cyan maroon burgundy tan khaki bronze copper-colored
    clear transparent translucent multicolor multicolored rainbow neon pastel nude
    blk wht blu grn""".split()
)
# Words that praise, size or package an item rather than say what it is.
MARKETING_WORDS = frozenset(
    """super deluxe premium pro professional ultra mini max plus best top new original genuine
    authentic classic luxury quality great perfect ideal advanced basic standard heavy-duty
    universal essential essentials collection series edition bundle kit kits set sets pack packs
    assorted assortment various variety value bulk lot travel size large small medium xl registered
    trademark trademarked patented""".split()
)
UNIT_WORDS = frozenset(
    """oz ounce ounces fl ml l lb lbs g gram grams kg mg mm cm m ft inch inches in psi
    awg volt volts v watt watts w amp amps a mah ohm hz rpm pcs pc pk ct count
    gallon gallons gal quart quarts qt pint pints liter liters litre litres pound pounds
    millimeter millimeters centimeter centimeters khz mhz ghz kv mv kw ma celsius fahrenheit""".split()
)
# Marketing words that are also packaging nouns: a name may end in one when a noun names what is
# packed ("Tool Set", "First Aid Kit", "Gift Set"), never on its own or after marketing words only
# ("Set", "Value Pack").
PACKAGING_WORDS = frozenset("set sets kit kits pack packs bundle collection assortment".split())
# Materials an item is made of. Under a parent a material says what sets a kind apart ("Rotary
# Burrs > Carbide"); at the top of a tree a material alone ("Aluminum", "Glass", "Steel") gathers
# unrelated kinds and tells a shopper nothing. Materials sold as such ("Paper", "Epoxy", "Wire",
# "Tape") are not listed.
MATERIAL_WORDS = frozenset(
    """aluminum aluminium steel stainless brass copper bronze zinc nickel titanium tungsten carbide
    iron metal metals silicone rubber plastic plastics nylon glass wood wooden leather cotton
    polyester ceramic ceramics latex vinyl acrylic borosilicate neoprene polypropylene polyethylene
    pvc ptfe teflon carbon chrome""".split()
)
# Measured properties: a name made of these alone ("Length", "Temperature", "Weight Capacity",
# "Precision Measurement") names a spec the items share, not a kind of item.
ATTRIBUTE_WORDS = frozenset(
    """length width height depth thickness diameter radius size sizes weight capacity volume
    temperature pressure speed power voltage current resistance wattage amperage frequency
    resolution accuracy precision tolerance range measurement measurements dimension dimensions
    dimensional strength density viscosity brightness output input high low quantity""".split()
)
# Heads that name a property of a kind, never the kind ("Package Quantity", "Pen Type", "Shaft
# Diameter", "Extrusion Temperature", "Specifications", "Safety Features"): a name ending in one is
# rejected whatever precedes it.
# Heads that are also products or kinds ("Fishing Weight", "Solar Power", "Kitchen Range") are not
# listed.
PROPERTY_HEADS = frozenset(
    """quantity quantities type types style styles capacity thickness diameter length width height
    depth dimensions resolution accuracy tolerance precision temperature pressure speed voltage
    wattage amperage frequency viscosity density strength specification specifications feature features""".split()
)
# Words that praise an item ("Affordable Printer", "Effective Brush", "Excellent Adhesion",
# "Popular Pencil Sharpener", "Economy Nylon"): a seller's claim, true of any item, never what sets
# a kind apart. Superlatives ("Strongest Magnets") count too (:func:`praises`).
PRAISE_WORDS = frozenset(
    """affordable excellent effective superior reliable exceptional outstanding amazing awesome
    incredible innovative revolutionary unbeatable superb fantastic wonderful ultimate optimal
    economical inexpensive cheap economy popular durable sturdy versatile convenient handy easy
    simple""".split()
)
# Heads that name a benefit or a claim of a seller, or the maker, never a kind of item ("Smooth
# Technology", "Printing Experience", "Durability Guarantee", "Maximum Flexibility", "Cement &
# Manufacturer"). A name ending in one is rejected whatever precedes it. Heads that are kinds in
# some catalog ("Buffer Solution" in a lab) are not listed.
BENEFIT_HEADS = frozenset(
    """technology technologies experience guarantee warranty flexibility durability reliability
    versatility performance convenience comfort efficiency satisfaction innovation result results
    manufacturer manufacturers supplier suppliers company companies""".split()
)
# Verbs that open a clause of a product description. The lexicon cannot tell these apart from
# plural nouns it lacks ("Caulks", "Disconnects" and "Oils" have only a verb reading in it, yet
# name products), so they are listed.
CLAUSE_VERBS = frozenset(
    """includes including contains containing featuring prevents provides allows ensures reduces
    protects requires comes displaces eliminates removes keeps makes delivers creates gives lets""".split()
)
FUNCTION_WORDS = frozenset(
    """and or with for of the a an to in on by from without per x & &amp; + / vs""".split()
)


def words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def content_words(name: str) -> list[str]:
    """The name's lower-cased words without function words ("and", "for", "&")."""
    return [w for w in words(name) if w not in FUNCTION_WORDS]


@lru_cache(maxsize=65536)
def _lemmas(word: str) -> dict[str, tuple[str, ...]]:
    import lemminflect

    return dict(lemminflect.getAllLemmas(word))


def in_lexicon(word: str) -> bool:
    """The English lexicon knows ``word`` (any word class)."""
    return bool(_lemmas(word.lower()))


@lru_cache(maxsize=1 << 16)
def lemma(word: str) -> str:
    """Noun lemma when the word has a noun reading ("Gloves" -> "glove"), else the word."""
    w = word.lower()
    lem = _lemmas(w)
    if "NOUN" in lem:
        return lem["NOUN"][0].lower()
    for pos in ("PROPN", "VERB", "ADJ"):
        if pos in lem:
            return lem[pos][0].lower()
    return w


# The rules here are pure, and a build asks the ones below (flat_key, name_key, is_noun_phrase,
# is_kind_name) about the same phrases in every job: cached (they took about a tenth of a
# Beauty rebuild's naming time uncached, in an ad-hoc profile).
@lru_cache(maxsize=1 << 18)
def flat_key(text: str) -> str:
    """Lower-case letters and digits, every other run of characters one space: "PORTER-CABLE" and
    "Porter Cable" meet as "porter cable" (whole-brand comparisons)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@lru_cache(maxsize=1 << 18)
def name_key(name: str) -> str:
    """Comparison key for sibling names: lemmas of the content words, in order."""
    return " ".join(lemma(w) for w in words(name) if w not in FUNCTION_WORDS)


def head_word(name: str) -> str:
    """The lemma of the last content word: the noun a noun phrase names ("Lab Gloves" -> "glove")."""
    content = content_words(name)
    return lemma(content[-1]) if content else ""


def is_noun(word: str) -> bool:
    """True when the word can be a noun: a noun reading in the lexicon, or an unknown word that is
    not a number (unknown words are mostly technical nouns: "nitrile", "thermocouple")."""
    w = word.lower()
    if w in COLOUR_WORDS or w in MARKETING_WORDS or w in UNIT_WORDS or w in FUNCTION_WORDS:
        return False
    if not any(c.isalpha() for c in w):
        return False
    lem = _lemmas(w)
    if not lem:
        return len(w) > 2
    return "NOUN" in lem or "PROPN" in lem


def opens_with_a_verb(content: Sequence[str]) -> bool:
    """The first word is a verb that opens a clause of a product description ("Includes
    Filaments", "Displaces Moisture"): a piece of a sentence, not a name."""
    return len(content) >= 2 and content[0].lower() in CLAUSE_VERBS


def is_abbreviation(content: Sequence[str]) -> bool:
    """A one-word name of at most three letters the lexicon does not know ("Ipg", "Pcb", "Blk"):
    at the top of a tree it tells a reader nothing; under a parent an abbreviation of a kind may
    set it apart ("3D Printer Filament > PLA"), so the rules apply this at level 1 only."""
    return len(content) == 1 and len(content[0]) <= 3 and content[0].isalpha() and not in_lexicon(content[0])


def has_noun_head(content: Sequence[str]) -> bool:
    """The last content word is a noun, or a packaging noun after a noun ("Tool Set")."""
    if not content:
        return False
    if content[-1].lower() in PACKAGING_WORDS:
        return any(is_noun(w) for w in content[:-1])
    return is_noun(content[-1])


def names_a_property(content: Sequence[str]) -> bool:
    """The content words name a measured property ("Length", "Weight Capacity", "Pen Type"), not a
    kind."""
    return bool(content) and (
        content[-1] in PROPERTY_HEADS
        or (
            any(w in ATTRIBUTE_WORDS for w in content)
            and all(w in ATTRIBUTE_WORDS or w in MARKETING_WORDS or w in UNIT_WORDS for w in content)
        )
    )


def praises(content: Sequence[str]) -> bool:
    """The content words praise the item or name a benefit, not a kind: a praise word or a
    superlative anywhere ("Strongest Magnets"), or a benefit head ("Heatguard Technology")."""
    return bool(content) and (
        content[-1] in BENEFIT_HEADS or any(w in PRAISE_WORDS or _superlative(w) for w in content)
    )


def _superlative(word: str) -> bool:
    """An adjective's superlative ("strongest" -> strong, "latest" -> late; not "honest")."""
    lem = _lemmas(word).get("ADJ")
    return word.endswith("est") and bool(lem) and lem[0].lower() != word


def names_a_material(content: Sequence[str]) -> bool:
    """The content words name a material alone ("Aluminum", "Stainless Steel")."""
    return bool(content) and all(w in MATERIAL_WORDS for w in content)


@lru_cache(maxsize=1 << 18)
def is_kind_name(phrase: str, top_level: bool = False) -> bool:
    """A noun phrase that names a kind of item: not a measured property nor praise, and at the top of a
    tree not a material alone (the key-phrase namer's filter; :func:`name_problems` says the
    same with reasons)."""
    content = content_words(phrase)
    return (
        is_noun_phrase(phrase)
        and not names_a_property(content)
        and not praises(content)
        and not (top_level and (names_a_material(content) or is_abbreviation(content)))
    )


#: The rule behind each reason a name is turned down (:func:`name_problems`, the LLM namer's own
#: checks in ``vocab.naming``), by a phrase its message always holds: how a build's key-phrase
#: fallbacks are counted per rule (:func:`problem_rule`). Keep in step with the messages.
PROBLEM_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("no answer", ("empty name", "was not valid JSON")),
    ("too many words", ("words; use at most",)),
    ("not a noun phrase", ("is not a noun phrase",)),
    ("opens with a verb", ("opens with the verb",)),
    ("abbreviation", ("is an abbreviation or initials",)),
    ("colour, size or marketing word", ("names a colour, size or marketing word",)),
    ("measured property", ("names a measured property",)),
    ("praise or benefit", ("praises the item",)),
    ("material", ("names a material",)),
    ("cut off", ("is cut off",)),
    ("punctuation", ("joins phrases with punctuation",)),
    ("repeated word", ("; name the kind of item once",)),
    ("joined phrases", ("joins more than two phrases", "joins two unrelated phrases")),
    ("brand or product line", ("is a brand name", "contains the brand", "looks like a brand", "part of a brand or product line")),
    ("repeats its parent", ("repeats a parent category", "adds no word to its parent")),
    ("repeats a sibling", ("repeats a sibling's name", "is also another group's name")),
    ("definition not a sentence", ("the definition must be a sentence",)),
    ("stops inside a longer name", ("stops inside a longer name",)),
    ("rare title words", ("from a few items' titles",)),
    ("packaging", ("few of these items are sold as a",)),
    ("fits a sibling's items better", ("better than this group's",)),
)


def problem_rule(message: str) -> str:
    """The rule (a key of :data:`PROBLEM_RULES`) a name problem's message reports; "other" when none."""
    for rule, marks in PROBLEM_RULES:
        if any(m in message for m in marks):
            return rule
    return "other"


def name_problems(
    name: str,
    *,
    parent_path: Sequence[str] = (),
    siblings: Iterable[str] = (),
    brand_terms: frozenset[str] | set[str] = frozenset(),
    brand_strings: frozenset[str] | set[str] = frozenset(),
    max_words: int = 5,
) -> list[str]:
    """Why ``name`` is not an acceptable descriptor name; [] when it is."""
    ws = words(name)
    out: list[str] = []
    if not ws:
        return ["empty name"]
    content = [w for w in ws if w not in FUNCTION_WORDS]
    if len(ws) > max_words:
        out.append(f"{name!r} has {len(ws)} words; use at most {max_words}")
    if not has_noun_head(content):
        out.append(f"{name!r} is not a noun phrase naming a kind of item (its last word must be a noun)")
    elif opens_with_a_verb(content):
        out.append(f"{name!r} opens with the verb {content[0]!r}; name the kind of item, not a clause")
    if not parent_path and is_abbreviation(content):
        out.append(f"{name!r} is an abbreviation or initials; name the kind of item in words")
    if content and all(w in COLOUR_WORDS or w in MARKETING_WORDS or w in UNIT_WORDS for w in content):
        out.append(f"{name!r} names a colour, size or marketing word, not a kind of item")
    if names_a_property(content):
        out.append(f"{name!r} names a measured property, not a kind of item")
    if praises(content):
        out.append(f"{name!r} praises the item or names a benefit, not a kind of item; say what the items are")
    if not parent_path and names_a_material(content):
        out.append(f"{name!r} names a material, not a kind of item; name the kind of item made of it")
    if not _balanced(name):
        out.append(f"{name!r} is cut off (an unclosed or stray bracket); name the whole kind of item")
    if re.search(r"\s[-–—:|/]\s|[:>,]", name):
        out.append(f"{name!r} joins phrases with punctuation; name one kind of item")
    parts = [p for p in re.split(r"\s*(?:&|\+|\band\b)\s*", name, flags=re.I) if words(p)]
    # One phrase says each content word once; across "&" a word may recur ("Pipes & Pipe Fittings").
    repeated = sorted({w for p in parts for w in _repeated_lemmas(p)})
    if repeated:
        out.append(f"{name!r} repeats {', '.join(map(repr, repeated))}; name the kind of item once")
    if len(parts) > 2:
        out.append(f"{name!r} joins more than two phrases")
    elif len(parts) == 2:
        # "Shampoo & Conditioner", "Pipes and Fittings" read as one kind of item; a pair of
        # longer phrases ("Adhesive & Length Width") is two unrelated key phrases glued together.
        if any(len(content_words(p)) > 1 for p in parts) or not all(
            is_noun(words(p)[-1]) for p in parts
        ):
            out.append(f"{name!r} joins two unrelated phrases")
    inner = brand_inside(name, brand_strings)
    if flat_key(name) in brand_strings:
        out.append(f"{name!r} is a brand name")
    elif inner:
        out.append(f"{name!r} contains the brand or product line {inner!r}; name the kind of item")
    elif brand_terms and sum(w in brand_terms for w in content) * 2 > len(content):
        out.append(f"{name!r} looks like a brand name, not a category")
    elif inside := brand_words(name, brand_terms, brand_strings):
        # A maker's word inside a kind ("Scotch Tape Products", "Sonicare Toothbrush"): the
        # catalog uses it almost only as an item's own brand (see keyphrases.brand_terms), so a
        # platform a kind is made for ("Xbox Games") stays allowed.
        out.append(f"{name!r} contains the brand {', '.join(map(repr, inside))}; name the kind of item")
    if parent_path:
        if name_key(name) in {name_key(p) for p in parent_path}:
            out.append(f"{name!r} repeats a parent category")
        elif not adds_to_parent(name, parent_path[-1]):
            out.append(
                f"{name!r} adds no word to its parent {parent_path[-1]!r}: say what sets these items apart"
            )
    key = name_key(name)
    if key and key in {name_key(s) for s in siblings}:
        out.append(f"{name!r} repeats a sibling's name")
    return out


def _balanced(name: str) -> bool:
    """Every bracket closes in order: a title cut mid-parenthesis ("Scrub Sponge (O-C") fails."""
    stack: list[str] = []
    for c in name:
        if c in "([{":
            stack.append({"(": ")", "[": "]", "{": "}"}[c])
        elif c in ")]}" and (not stack or stack.pop() != c):
            return False
    return not stack


def _repeated_lemmas(phrase: str) -> set[str]:
    lemmas = [lemma(w) for w in words(phrase) if w not in FUNCTION_WORDS and any(c.isalpha() for c in w)]
    return {w for w in lemmas if lemmas.count(w) > 1}


def brand_inside(name: str, brand_strings: frozenset[str] | set[str]) -> str:
    """A whole brand string that appears inside ``name`` ("X-Treme Tape" in "X-Treme Tape Fusing
    Tapes"): brands of two or more words, or one word the English lexicon does not know (a
    one-word brand that is an ordinary word, "Safety", would ban that word); "" when none."""
    flat = f" {flat_key(name)} "
    toks = flat.split()
    for n in range(len(toks), 0, -1):
        for i in range(len(toks) - n + 1):
            g = " ".join(toks[i : i + n])
            if g in brand_strings and (n >= 2 or (not in_lexicon(g) and not g.isdigit())):
                return g
    return ""


def brand_words(name: str, brand_terms: frozenset[str] | set[str], brand_strings: frozenset[str] | set[str]) -> list[str]:
    """The content words of ``name`` that are a maker's brand: words the catalog uses almost only
    as brands (``brand_terms``, see :func:`keyphrases.brand_terms`) that are also a word of a whole
    brand string ("scotch"; "sonicare" of "Philips Sonicare"). Either signal alone is not enough:
    a word that merely follows a brand in many titles ("Restickable" after "Scotch") or an ordinary
    word that is also part of some brand ("Safety" of "Lab Safety Supply") stays usable."""
    if not brand_terms or not brand_strings:
        return []
    in_brands = _brand_string_words(frozenset(brand_strings))
    return [w for w in words(name) if w not in FUNCTION_WORDS and w in brand_terms and w in in_brands]


@lru_cache(maxsize=8)
def _brand_string_words(brand_strings: frozenset[str]) -> frozenset[str]:
    return frozenset(w for b in brand_strings for w in b.split())


def content_lemmas(name: str) -> set[str]:
    return {lemma(w) for w in words(name) if w not in FUNCTION_WORDS}


def only_drops_words(new: str, old: str) -> bool:
    """True when ``new`` is ``old`` with words left out ("Pressure Gauge" -> "Gauge", "Bearing
    Balls" -> "Balls"): a vaguer name for the same items, never a better one to a reader."""
    a, b = content_lemmas(new), content_lemmas(old)
    return bool(a) and a < b


def adds_to_parent(name: str, parent: str) -> bool:
    """True when ``name`` has a content word its parent lacks: a child says what sets its items
    apart ("Brass Fitting > Pipe Fitting", "Sleeping Bags > Cold Weather Bags"), not only what
    they share with their siblings ("Brass Fitting > Fittings")."""
    return bool(content_lemmas(name) - content_lemmas(parent))


@lru_cache(maxsize=1 << 18)
def is_noun_phrase(name: str) -> bool:
    content = content_words(name)
    return (
        has_noun_head(content)
        and not opens_with_a_verb(content)
        and not all(w in COLOUR_WORDS or w in MARKETING_WORDS or w in UNIT_WORDS for w in content)
    )


#: A name stops short when at least this share of its head word's occurrences in the group's texts
#: are followed by another noun, and at least ``CUT_MIN_FOLLOWED`` of them are.
CUT_SHARE, CUT_MIN_FOLLOWED = 0.6, 2
#: Words after a kind that say how it comes ("tape roll", "gloves box"), not what it is.
PACKED_AS = frozenset("roll rolls spool spools box boxes case cases pair pairs piece pieces refill refills bag bags carton cartons dozen".split())
_TEXT_TOKEN = re.compile(r"[a-z0-9][a-z0-9\-']*|[^\sa-z0-9]+")


def cut_short(name: str, texts: Sequence[str]) -> str:
    """The noun compound that ``name`` stops inside of, or "": in the group's ``texts`` the name's
    last word is mostly a modifier of a following noun ("Gauge Brad" where the titles say "18 Gauge
    Brad Nails"; "Industrial Glass" for glass bottles and carboys; "Printing Build" for build
    surfaces and platforms). Returns the commonest continuation as the texts write it ("brad
    nails"). A small model shortens compounds this way when it is asked for short names; the
    lexicon cannot see it, since the fragment is a well-formed noun phrase."""
    content = content_words(name)
    if not content or not texts:
        return ""
    head, before = lemma(content[-1]), {lemma(w) for w in content[:-1]}

    def noun_word(tok: str) -> bool:
        return tok.replace("-", "").isalpha() and tok not in FUNCTION_WORDS and is_noun(tok)

    seen, followed, said = 0, Counter(), Counter()
    for t in texts:
        toks = text_tokens(t)
        for i, tok in enumerate(toks):
            if lemma(tok) != head or not is_noun(tok):
                continue
            seen += 1
            nxt = toks[i + 1] if i + 1 < len(toks) else ""
            # A pack word ("Flask Set", "Tape Roll") or a model number does not make the name a fragment.
            if not noun_word(nxt) or nxt in PACKAGING_WORDS or nxt in PACKED_AS or lemma(nxt) in before:
                continue
            followed[lemma(nxt)] += 1
            run = [tok, nxt]
            for more in toks[i + 2 : i + 4]:  # the compound as written, up to two more words
                if not more.replace("-", "").isalpha() or more in FUNCTION_WORDS:
                    break
                run.append(more)
            while len(run) > 2 and not noun_word(run[-1]):  # ending in a noun ("rubber self fusing tape")
                run.pop()
            said[(lemma(nxt), " ".join(run))] += 1
    n = sum(followed.values())
    if n < CUT_MIN_FOLLOWED or n < CUT_SHARE * seen:
        return ""
    top = followed.most_common(1)[0][0]
    return max(((c, w) for (f, w), c in said.items() if f == top), key=lambda cw: (cw[0], len(cw[1])))[1]


@lru_cache(maxsize=1 << 16)
def text_tokens(text: str) -> tuple[str, ...]:
    """A text's lower-cased words and punctuation runs, as the compound checks read them (cached:
    each group's texts are read once per name and candidate the namer checks)."""
    return tuple(_TEXT_TOKEN.findall(text.lower()))


def _occurrences(phrase: str, texts: Sequence[str]) -> Iterable[tuple[tuple[str, ...], list[int]]]:
    """Per text that holds the first word of ``phrase``, in order: its tokens and where the phrase
    starts in them, word for word (no positions where only the first word is there); nothing when
    the phrase has no words. Texts without the first word hold no occurrence and are skipped."""
    seq = tuple(w.lower() for w in _WORD.findall(phrase))
    if not seq:
        return
    texts = tuple(texts)
    for k in _texts_holding(texts).get(seq[0], ()):
        toks = text_tokens(texts[k])
        yield toks, [i for i in range(len(toks) - len(seq) + 1) if toks[i : i + len(seq)] == seq]


# A job asks about many phrases in the same texts (a Beauty build: about 28,000 questions over
# 2,500 lists of texts; scanning every text each time took about 4 s of a rebuild's job time in
# an ad hoc timing): each list's words are indexed once.
@lru_cache(maxsize=16)
def _texts_holding(texts: tuple[str, ...]) -> dict[str, list[int]]:
    """Word -> the positions in ``texts`` of the texts holding it, in order."""
    out: dict[str, list[int]] = {}
    for k, t in enumerate(texts):
        for w in set(text_tokens(t)):
            out.setdefault(w, []).append(k)
    return out


def written(phrase: str, texts: Sequence[str]) -> tuple[int, float]:
    """How the ``texts`` write ``phrase``, word for word: (texts that hold it, share of its
    occurrences where a compound ends with it: punctuation, a number, a function, packaging, unit,
    colour or marketing word, or the end of the text follows; "Stainless Steel Phillips" is
    followed by "pan head machine screws" and ends nothing)."""
    n = len(_WORD.findall(phrase))
    boundary = FUNCTION_WORDS | PACKAGING_WORDS | PACKED_AS | UNIT_WORDS | COLOUR_WORDS | MARKETING_WORDS
    held, seen, ended = 0, 0, 0
    for toks, starts in _occurrences(phrase, texts):
        held += bool(starts)
        seen += len(starts)
        for i in starts:
            nxt = toks[i + n] if i + n < len(toks) else ""
            ended += not nxt.replace("-", "").isalpha() or nxt in boundary
    return held, (ended / seen if seen else 0.0)


_NUMBER = re.compile(r"^\d+(?:[./,-]\d+)*$")

#: A name's first word is half of a fixed phrase when the texts write the same other word next to
#: it in at least this share of the places they write it (and in at least ``BOUND_MIN`` places).
BOUND_SHARE = 0.8
BOUND_MIN = 3


def bound_opener(name: str, texts: Sequence[str]) -> str:
    """The fixed phrase that ``name``'s first word is cut from in ``texts``, or "". Given a job's
    texts (all its groups'), not one group's: a group of electric pencil sharpeners writes
    "electric" before every "pencil", the catalog writes "heavy" before nearly every "duty".

    Key phrases are one or two words found anywhere in a title, so a name can open with the second
    half of a phrase ("Duty Pencil Sharpener" where every title says "heavy duty"; "Com Photo
    Printer" from "Amazon.com") or with the first half of one the name then leaves ("Caller
    Cordless Phone" where the titles say "caller ID"). Returns that phrase as the texts write it
    ("heavy duty", "caller id"); a number or a function or stop word beside the word does not bind
    it ("3D Printer", "Set of Pens", "Mom is ..."), nor a word the name itself says next ("Cordless
    Phone")."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    ws = [w.lower() for w in _WORD.findall(name)]
    if not ws:
        return ""
    first, seen = ws[0], 0
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for toks, starts in _occurrences(first, texts):
        seen += len(starts)
        before.update(toks[i - 1] for i in starts if i)
        after.update(toks[i + 1] for i in starts if i + 1 < len(toks))
    least = max(BOUND_MIN, BOUND_SHARE * seen)

    def binds(word: str, count: int, said: str) -> bool:
        return (count >= least and word.replace("-", "").isalpha() and word not in FUNCTION_WORDS
                and word not in ENGLISH_STOP_WORDS and word != said)

    if before:
        word, count = before.most_common(1)[0]
        if binds(word, count, ""):
            return f"{word} {first}"
    if after and len(ws) > 1:
        word, count = after.most_common(1)[0]
        if binds(word, count, ws[1]):
            return f"{first} {word}"
    return ""


def words_before(phrase: str, texts: Sequence[str]) -> tuple[Counter[str], int]:
    """The word the ``texts`` write right before ``phrase`` (word for word): per word, the texts
    that write it there at least once; and the texts that hold the phrase at all. A word written
    after a number is a measure, not a kind ("18 Gauge Brad Nails", "5 Gallon Bucket"): not
    counted. Words are counted in the order the texts write them, so that a tie between two
    words goes the same way in every process (a set's order changes with Python's hash seed)."""
    before: Counter[str] = Counter()
    held = 0
    for toks, starts in _occurrences(phrase, texts):
        held += bool(starts)
        before.update(dict.fromkeys(toks[i - 1] for i in starts if i and not (i > 1 and _NUMBER.match(toks[i - 2]))).keys())
    return before, held


def plain_nouns(ws: Sequence[str]) -> bool:
    """Every word is a noun the lexicon knows and nothing a name could read as a modifier, a
    function word or a property: a noun reading and no adjective reading ("Food Safe", "Good
    Protection"), not an English stop word ("Wireless All" from "all-in-one"), not unknown to the
    lexicon ("Pages Than", a model or a brand), no measured property ("Temperature Range")."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    def plain(w: str) -> bool:
        lem = _lemmas(w)
        return ("NOUN" in lem and "ADJ" not in lem and w not in ENGLISH_STOP_WORDS and w not in ATTRIBUTE_WORDS
                and w not in PROPERTY_HEADS and is_noun(w))

    return all(plain(w.lower()) for w in ws)
