"""Checks on an architect's descriptors, whatever produced them (no silent nonsense)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from agentictagger.vocab.agents import DescriptorDraft

_CATCH_ALL = re.compile(
    r"^\s*(other|others|misc|miscellaneous|general|generic|various|everything( else)?|"
    r"all (items|products)|uncategori[sz]ed|unknown|none|n/?a|remaining|mixed)( (items|products|stuff))?\s*$",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-']*")
MAX_NAME_WORDS = 6


@dataclass
class Problem:
    index: int | None  # descriptor index, None for set-level problems
    message: str

    def __str__(self) -> str:
        where = f"descriptor {self.index + 1}" if self.index is not None else "the set"
        return f"{where}: {self.message}"


def _norm(s: str) -> str:
    return " ".join(w.lower() for w in _WORD.findall(s))


def check_descriptors(
    drafts: Sequence[DescriptorDraft],
    *,
    min_count: int,
    max_count: int,
    brand_terms: set[str] | frozenset[str] = frozenset(),
    item_texts: Sequence[str] = (),
    parent_path: Sequence[str] = (),
) -> list[Problem]:
    """Every reason the set is unusable; empty list = valid."""
    problems: list[Problem] = []
    if not drafts:
        return [Problem(None, "no descriptors")]
    if not min_count <= len(drafts) <= max_count:
        problems.append(Problem(None, f"{len(drafts)} descriptors; expected {min_count}-{max_count}"))
    seen: dict[str, int] = {}
    titles = {_norm(t) for t in item_texts}
    parents = {_norm(p) for p in parent_path}
    for i, d in enumerate(drafts):
        name = _norm(d.name)
        words = name.split()
        if not name:
            problems.append(Problem(i, "empty name"))
            continue
        if not any(ch.isalpha() for ch in name):
            problems.append(Problem(i, f"{d.name!r} has no letters; name a kind of item in words"))
        if not d.definition.strip():
            problems.append(Problem(i, f"{d.name!r} has no definition"))
        if name in seen:
            problems.append(Problem(i, f"{d.name!r} repeats descriptor {seen[name] + 1}"))
        seen.setdefault(name, i)
        if _CATCH_ALL.match(d.name):
            problems.append(Problem(i, f"{d.name!r} is a catch-all; name what the items are"))
        if len(words) > MAX_NAME_WORDS or name in titles:
            problems.append(Problem(i, f"{d.name!r} looks like a product title, not a category"))
        if brand_terms and sum(w in brand_terms for w in words) * 2 > len(words):
            problems.append(Problem(i, f"{d.name!r} looks like a brand name, not a category"))
        if name in parents:
            problems.append(Problem(i, f"{d.name!r} repeats its parent category"))
    return problems


def drop_invalid(
    drafts: Sequence[DescriptorDraft], problems: Sequence[Problem]
) -> list[DescriptorDraft]:
    """The drafts without those named by a per-descriptor problem."""
    bad = {p.index for p in problems if p.index is not None}
    return [d for i, d in enumerate(drafts) if i not in bad]


def unique_by_name(drafts: Sequence[DescriptorDraft]) -> list[DescriptorDraft]:
    """The drafts with later case-insensitive repeats of a name removed, order kept."""
    seen: set[str] = set()
    out = []
    for d in drafts:
        key = d.name.lower()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
