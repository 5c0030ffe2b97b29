"""The vocabulary tree: descriptors with stable ids, plain JSON round-trip.

A descriptor id encodes its path as built ("d3.1.7" = child 7 of child 1 of root child 3), so ids
stay stable when a run resumes and two vocabularies can be diffed. Edits
(:mod:`agentictagger.vocab.edits`) keep ids: after a move or merge an id no longer spells its path.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    import numpy as np

ROOT_ID = "root"


def descriptor_text(name: str, definition: str) -> str:
    """The text a descriptor is embedded as: the build's annotator and the assigner must match
    items against the same text, or assignment drifts from what the build measured."""
    return f"{name}: {definition}" if definition and definition != name else name


@dataclass
class Descriptor:
    id: str
    name: str
    definition: str
    level: int  # 1 = top level
    parent: str  # ROOT_ID for level 1
    item_count: int = 0
    children: list[str] = field(default_factory=list)
    named_by: str = ""  # who wrote the name: "llm", "keyphrase", "keyphrase-fallback", "user", "" = unknown
    exemplars: list[str] = field(default_factory=list)  # ids of the most central member items
    #: With ``named_by`` "keyphrase-fallback": why the LLM's name was not used, one entry per name
    #: rule its last answer broke (e.g. "'Arts' is part of a brand or product line in these
    #: titles, not a kind of item").
    naming_problems: list[str] = field(default_factory=list)


#: Descriptor fields kept out of vocabulary.json: vectors live in the prototypes sidecar.
_NOT_IN_JSON = ("children",)
PROTOTYPES_SUFFIX = ".prototypes.npz"


def prototypes_path(vocabulary_json: str | Path) -> Path:
    p = Path(vocabulary_json)
    return p.with_name(p.stem + PROTOTYPES_SUFFIX)


class Vocabulary:
    """A forest of descriptors under a virtual root."""

    def __init__(self, descriptors: Iterable[Descriptor] = (), meta: dict | None = None) -> None:
        self._by_id: dict[str, Descriptor] = {}
        self.meta: dict = dict(meta or {})
        # Prototype rows per descriptor id, (rows, dim), unit length: the centroids of the
        # descriptor's pieces (its fine clusters). ``name_weights[id]`` gives each row the share of
        # the descriptor's *current* "name: definition" embedding blended in when items are matched
        # (:func:`agentictagger.embed.descriptor_rows`), so a renamed or merged descriptor is matched
        # by its new text; no entry = 0, the rows are matched as they are. An item's similarity to
        # a descriptor is its best row. Both are saved beside the JSON.
        self.prototypes: dict[str, "np.ndarray"] = {}
        self.name_weights: dict[str, "np.ndarray"] = {}
        self._root_children: list[str] = []
        for d in descriptors:
            self.add(d)

    # -- construction -------------------------------------------------------------------------
    def add(self, d: Descriptor) -> Descriptor:
        if d.id in self._by_id or d.id == ROOT_ID:
            raise ValueError(f"duplicate descriptor id {d.id!r}")
        if d.parent == ROOT_ID:
            if d.level != 1:
                raise ValueError(f"descriptor {d.id!r} under the root must have level 1, has {d.level}")
            self._root_children.append(d.id)
        else:
            parent = self._by_id.get(d.parent)
            if parent is None:
                raise ValueError(f"descriptor {d.id!r}: parent {d.parent!r} is not in the vocabulary")
            if d.level != parent.level + 1:
                raise ValueError(f"descriptor {d.id!r}: level {d.level} under a level-{parent.level} parent")
            parent.children.append(d.id)
        self._by_id[d.id] = d
        return d

    def add_children(self, parent_id: str, named: list[tuple[str, str]], counts: list[int] | None = None) -> list[Descriptor]:
        """Add ``(name, definition)`` children under ``parent_id`` with path-derived ids."""
        level = 1 if parent_id == ROOT_ID else self._by_id[parent_id].level + 1
        prefix = "d" if parent_id == ROOT_ID else parent_id + "."
        existing = len(self.children(parent_id))
        out = []
        for i, (name, definition) in enumerate(named):
            idx = existing + i + 1
            did = f"{prefix}{idx}"
            out.append(
                self.add(
                    Descriptor(did, name, definition, level, parent_id, counts[i] if counts else 0)
                )
            )
        return out

    # -- queries ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, did: str) -> bool:
        return did in self._by_id

    def __iter__(self) -> Iterator[Descriptor]:
        return iter(self._by_id.values())

    def __getitem__(self, did: str) -> Descriptor:
        return self._by_id[did]

    def children(self, did: str = ROOT_ID) -> list[Descriptor]:
        ids = self._root_children if did == ROOT_ID else self._by_id[did].children
        return [self._by_id[c] for c in ids]

    def level(self, level: int) -> list[Descriptor]:
        return [d for d in self._by_id.values() if d.level == level]

    @property
    def depth(self) -> int:
        return max((d.level for d in self._by_id.values()), default=0)

    def path_to(self, did: str) -> list[Descriptor]:
        out = []
        while did != ROOT_ID:
            d = self._by_id[did]
            out.append(d)
            did = d.parent
        return out[::-1]

    def path_names(self, did: str, sep: str = " > ") -> str:
        return sep.join(d.name for d in self.path_to(did))

    def is_valid_path(self, path: list[str]) -> bool:
        """True when ``path`` starts at level 1 and each id is a child of the one before."""
        parent = ROOT_ID
        for did in path:
            d = self._by_id.get(did)
            if d is None or d.parent != parent:
                return False
            parent = did
        return True

    # -- I/O ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "meta": self.meta,
            "descriptors": [
                {k: v for k, v in asdict(d).items() if k not in _NOT_IN_JSON} for d in self._by_id.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        descs = sorted(data["descriptors"], key=lambda r: r["level"])
        return cls((Descriptor(**r) for r in descs), meta=data.get("meta"))

    def save(self, path: str | Path) -> None:
        """Write the JSON (and, when there are prototypes, ``<path>.prototypes.npz``), each
        atomically; the sidecar first, so a JSON that exists always has its vectors."""
        import numpy as np

        from agentictagger.files import atomic_file, atomic_write_text

        p = Path(path)
        side = prototypes_path(p)
        if self.prototypes:
            ids = [d for d in self._by_id if d in self.prototypes]
            blocks = [np.atleast_2d(np.asarray(self.prototypes[d], dtype=np.float32)) for d in ids]
            owner = np.asarray([d for d, b in zip(ids, blocks) for _ in range(len(b))])
            arrays = {"ids": owner, "vectors": np.concatenate(blocks).astype(np.float16)}
            if any(d in self.name_weights for d in ids):
                arrays["name_weights"] = np.concatenate([self.row_name_weights(d) for d in ids]).astype(np.float32)
            with atomic_file(side) as tmp_side, open(tmp_side, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        elif side.exists():
            side.unlink()
        atomic_write_text(p, json.dumps(self.to_dict(), indent=1, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        p = Path(path)
        vocab = cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        side = prototypes_path(p)
        if side.exists():
            import numpy as np

            with np.load(side, allow_pickle=False) as z:
                owner = z["ids"].tolist()
                vecs = z["vectors"].astype(np.float32)
                weights = z["name_weights"].astype(np.float32) if "name_weights" in z.files else None
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            rows: dict[str, list[int]] = {}
            for r, did in enumerate(owner):
                rows.setdefault(did, []).append(r)
            for did, rs in rows.items():
                if did in vocab:
                    vocab.prototypes[did] = vecs[rs]
                    if weights is not None and np.any(weights[rs]):
                        vocab.name_weights[did] = weights[rs]
        return vocab

    def row_name_weights(self, did: str) -> "np.ndarray":
        """Per prototype row of ``did``, the share of its name's embedding (zeros when none)."""
        import numpy as np

        n = len(np.atleast_2d(self.prototypes[did]))
        w = self.name_weights.get(did)
        return np.zeros(n, dtype=np.float32) if w is None else np.broadcast_to(np.asarray(w, dtype=np.float32), (n,)).copy()

    def copy_prototype(self, source: "Vocabulary", did: str) -> None:
        """Take ``did``'s prototype rows and name weights from ``source`` (nothing when it has none)."""
        if did in source.prototypes:
            self.prototypes[did] = source.prototypes[did]
            if did in source.name_weights:
                self.name_weights[did] = source.name_weights[did]

    def render(self, max_level: int | None = None) -> str:
        """An indented text tree, for people."""
        lines: list[str] = []

        def walk(pid: str, indent: int) -> None:
            for d in self.children(pid):
                if max_level and d.level > max_level:
                    return
                lines.append(f"{'  ' * indent}- {d.name} ({d.item_count})  [{d.id}]")
                walk(d.id, indent + 1)

        walk(ROOT_ID, 0)
        return "\n".join(lines)
