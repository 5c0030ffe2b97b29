"""What recsys takes from the tagging side: the semantic-ID table and the level-1 descriptors.

The table (:mod:`agentictagger.structures.semantic_ids`, its one schema and reader) has one row per
item: ``item_id: str``, ``path: list[str]`` (globally unique descriptor ids, level 1 first, variable
length >= 1), ``path_names: list[str]`` and ``resolver: int`` (0-based among items sharing the same
path), as Parquet or JSONL. Level-1 descriptor names come from ``vocabulary.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agentictagger.structures.semantic_ids import SemanticId, SemanticIds


@dataclass(frozen=True)
class Level1Descriptor:
    id: str
    name: str
    definition: str

    @property
    def text(self) -> str:
        return f"{self.name}: {self.definition}" if self.definition else self.name


def read_semantic_id_table(path: str | Path) -> list[SemanticId]:
    """Read and validate a semantic-ID table (``.parquet`` or ``.jsonl``): the rows of
    :meth:`agentictagger.structures.semantic_ids.SemanticIds.read`; every item needs a path."""
    return SemanticIds.read(path, allow_empty_paths=False).rows


def read_level1_descriptors(vocab_path: str | Path, text: str | None = None) -> list[Level1Descriptor]:
    """Level-1 descriptors of a ``vocabulary.json`` ({"descriptors": [{id, name, definition, level, ...}]}).

    ``text``: the file's content when the caller already read it (then ``vocab_path`` only names it)."""
    p = Path(vocab_path)
    data = json.loads(text if text is not None else p.read_text(encoding="utf-8"))
    descs = data.get("descriptors") if isinstance(data, dict) else None
    if not isinstance(descs, list):
        raise ValueError(f"{p}: expected an object with a 'descriptors' list")
    out = [
        Level1Descriptor(str(d["id"]), str(d.get("name", "")), str(d.get("definition", "") or ""))
        for d in descs
        if int(d.get("level", 0)) == 1
    ]
    if not out:
        raise ValueError(f"{p}: no level-1 descriptors (level == 1)")
    return out
