"""The assigner interface: items in, one descriptor path per item out.

Every assigner walks the vocabulary tree from the root and may only choose among the children of
the descriptor it chose one level up (or stop), so a path is valid by construction. The path
validator (:func:`agentictagger.structures.assignment.check_path`) is the second line of defence:
``assign_catalog`` runs every path an assigner returns through it and refuses to write an invalid one.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from agentictagger.structures.assignment import Assignment, check_path  # noqa: F401 (what assigners produce)
from agentictagger.structures.vocabulary import Vocabulary


@runtime_checkable
class ItemLike(Protocol):
    item_id: str
    text: str


class Assigner(Protocol):
    """One small interface, like the build's agents: items in, one descriptor path per item out."""

    name: str

    def assign(self, items: Sequence[ItemLike], vocab: Vocabulary) -> list[list[str]]:
        """Return one path (descriptor ids, level 1 first; may be empty) per item, in order."""
        ...
