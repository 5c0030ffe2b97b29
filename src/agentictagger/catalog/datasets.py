"""The shared datasets (``shared/data/<name>/``, see its README): their items as a
:class:`~agentictagger.catalog.readers.Catalog` with each dataset's fields and labels, and their
interaction sequences. ``Catalog.load("shared:<name>")`` reaches them by name."""

from __future__ import annotations

import gzip
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from agentictagger.catalog.readers import DATASET_LOADERS, MAX_LISTED_PROBLEMS, Catalog, read_sequences, truncate_text
from agentictagger.config import CatalogConfig
from agentictagger.errors import CatalogError

log = logging.getLogger(__name__)

SHARED_DATASETS = ("scientific", "office", "beauty", "sports")
#: Datasets in the LC-Rec format (title, brand, categories, description; 0-based integer ids) and
#: the Amazon category level used as their label: Office's level 2 has only 3 values, so level 3.
LCREC_LABEL_LEVEL = {"scientific": 2, "office": 3}


_HTML_JUNK = re.compile(r"<!--.*?-->|<!\[[^\]]*\]>|</?[a-zA-Z][a-zA-Z0-9]*\s*/?>", re.S)


# Style sheets pasted into product descriptions ("div.aplusAnnotate {font-family: Arial; ...}",
# ".aplusAcontentLegal ol {list-style-position: outside; ...}"): a rule is a chain of selectors
# (an HTML element and/or .class / #id parts) and a brace body; the source cuts some bodies off,
# so a body also ends where the next rule starts or at the end of the text. An element name alone
# counts only as a whole word, so prose before a rule stays ("USB cablediv.aplus..." keeps "USB cable").
_CSS_ELEM = r"(?:div|span|ul|ol|li|table|td|th|tr|hr|h[1-6]|img|body|strong|em|p|a|b|i)"
_CSS_SEL = rf"(?:(?<![A-Za-z0-9]){_CSS_ELEM}(?![\w.#-])|{_CSS_ELEM}?(?:[.#][A-Za-z][\w-]*)+)"
_CSS_HEAD = rf"{_CSS_SEL}(?:[\s,>]+{_CSS_SEL})*\s*\{{"
_CSS_RULE = re.compile(rf"{_CSS_HEAD}[^{{}}]*?(?:\}}|$|(?=\s*{_CSS_HEAD}))|/\*.*?(?:\*/|$)", re.S)


def _clean(s: str | None) -> str:
    s = html.unescape(_HTML_JUNK.sub(" ", s or ""))
    s = _CSS_RULE.sub(" ", s)
    return " ".join(s.split())


# 23 scientific titles are a scraping artefact, literally "Industrial & Scientific />": the
# level-1 category, not a title. They are dropped so no category text reaches the item text.
_BROKEN_TITLE = re.compile(r"^Industrial & Scientific\s*/?>?\.?$")


def _sentence(s: str) -> str:
    return s + "." if s and s[-1] not in ".!?" else s


def shared_data_root(root: str | Path | None = None, name: str | None = None) -> Path:
    """Where shared datasets live: ``root``, else $AGENTICTAGGER_DATA, else ``../shared/data``
    next to the repository (or inside it)."""
    repo = Path(__file__).resolve().parents[3]  # src/agentictagger/catalog/datasets.py -> the repository
    candidates = [Path(root)] if root is not None else []
    if root is None:
        if os.environ.get("AGENTICTAGGER_DATA"):
            candidates.append(Path(os.environ["AGENTICTAGGER_DATA"]))
        candidates += [repo.parent / "shared" / "data", repo / "shared" / "data"]
    for c in candidates:
        if (c / name).is_dir() if name else c.is_dir():
            return c
    raise CatalogError(
        f"shared dataset {name or ''!r} not found; looked in {', '.join(map(str, candidates))}. "
        "Pass root= or set AGENTICTAGGER_DATA to the folder holding <name>/items.jsonl.gz."
    )


def _read_shared_items(name: str, root: str | Path | None) -> tuple[Path, list[dict[str, Any]]]:
    if name not in SHARED_DATASETS:
        raise CatalogError(f"unknown shared dataset {name!r}; choose one of {', '.join(SHARED_DATASETS)}")
    path = shared_data_root(root, name) / name / "items.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return path, rows


def scientific_label(categories: str | None, level: int = 2) -> str | None:
    """The level-``level`` Amazon category (level 1 = 'Industrial & Scientific'). Some category
    names contain ', ', so the path is split only on commas not followed by a space."""
    if not categories:
        return None
    parts = re.split(r",(?! )", categories)
    if len(parts) < level:
        return None
    return parts[level - 1].strip() or None


def load_shared(name: str, root: str | Path | None = None, max_description_chars: int = 600) -> Catalog:
    """Load a shared dataset (``scientific``, ``office``, ``beauty`` or ``sports``) as a Catalog.

    * ``scientific``: ``item_id = str(item_idx)``; text = title, ``Brand: <brand>.`` and the
      description (HTML remnants removed, cut at a sentence/word boundary after
      ``max_description_chars``); the 23 titles that read "Industrial & Scientific />" (a scraping
      artefact) are left out. The categories are **never** in the text: they are the ground
      truth. ``label`` = the level-2 Amazon category (None for the 131 items without categories).
    * ``office``: the same format and text; ``label`` = the level-3 category (level 2 has 3 values).
    * ``beauty``: ``item_id`` = ASIN; text = the title. The 7 items with an empty title fall back
      to their IDGenRec text id (a short generated phrase, e.g. "na categories beauty skin care"),
      with one logged warning: the recommender needs text for every item. No labels.
    * ``sports``: ``item_id`` = ASIN; text = the IDGenRec text id, a weak stand-in: the shared
      data has no real Sports metadata. No labels.

    Each item's ``fields`` keep the source row (for scientific also ``categories``); the rendered
    text is in ``fields['text']`` so ``to_jsonl`` + ``Catalog.load(path, catalog.config)`` round-trips.
    """
    path, rows = _read_shared_items(name, root)
    records: list[dict[str, Any]] = []
    if name in LCREC_LABEL_LEVEL:
        empty: list[str] = []
        for r in rows:
            title = _clean(r.get("title"))
            if _BROKEN_TITLE.match(title):
                title = ""
            brand = _clean(r.get("brand"))
            desc = truncate_text(_clean(r.get("description")), max_description_chars)
            text = " ".join(p for p in (_sentence(title), _sentence(f"Brand: {brand}") if brand else "", desc) if p)
            if not text:
                empty.append(str(r["item_idx"]))
                continue
            records.append(
                {
                    "item_id": str(r["item_idx"]),
                    **r,
                    "text": text,
                    "category": scientific_label(r.get("categories"), LCREC_LABEL_LEVEL[name]),
                }
            )
        if empty:
            log.warning("%s: %d item(s) with no title, brand or description left out: %s", name, len(empty), ", ".join(empty))
    elif name == "beauty":
        fallback = []
        for r in rows:
            text = _clean(r.get("title"))
            if not text:
                text = _clean(r.get("idgenrec_text_id"))
                fallback.append(r["item_id"])
            records.append({**r, "text": text})
        if fallback:
            log.warning(
                "beauty: %d items have an empty title; their IDGenRec text id is used instead: %s",
                len(fallback),
                ", ".join(fallback),
            )
    else:
        records = [{**r, "text": _clean(r.get("idgenrec_text_id"))} for r in rows]
    cfg = CatalogConfig(
        id_field="item_id",
        text_template="{text}",
        label_field="category" if name in LCREC_LABEL_LEVEL else None,
        max_text_chars=4000,
    )
    return Catalog.from_records(records, cfg, source=str(path))


def load_sequences(name: str, root: str | Path | None = None) -> list[tuple[str, list[str]]]:
    """Per-user chronological item sequences of a shared dataset, oldest first, in file order.

    The user key is the Amazon reviewerID for beauty/sports and ``str(user_idx)`` for scientific
    (which has no raw ids); item ids match :func:`load_shared`. Every item id is checked against
    the dataset's items file.
    """
    path, rows = _read_shared_items(name, root)
    known = {str(r["item_idx"]) if name in LCREC_LABEL_LEVEL else r["item_id"] for r in rows}
    seq_path = path.parent / "sequences.tsv.gz"
    out = read_sequences(seq_path)
    unknown = [f"user {user}: unknown item id(s) {bad[:5]}" for user, items in out
               if (bad := [i for i in items if i not in known])]
    if unknown:
        raise CatalogError(
            f"{seq_path}: {len(unknown)} sequence(s) name items missing from items.jsonl.gz:\n  "
            + "\n  ".join(unknown[:MAX_LISTED_PROBLEMS]),
            unknown,
        )
    return out


DATASET_LOADERS.update({name: load_shared for name in SHARED_DATASETS})
