"""Semantic IDs: item -> (level-1 id, ..., level-k id, resolver), unique per item (paper §4.4, A.1.4).

The resolver numbers the items that share the same descriptor path, 0, 1, 2, ... in catalog order
(the order of the assignment), so every item gets a unique tuple. Paths may differ in length.
The exported table has exactly the columns ``item_id: str, path: list[str], path_names:
list[str], resolver: int``; recommenders read nothing else.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    from agentictagger.structures.assignment import Assignment
    from agentictagger.structures.vocabulary import Vocabulary

COLUMNS = ("item_id", "path", "path_names", "resolver")


def jsonl_line(item_id: str, path: Sequence[str], path_names: Sequence[str], resolver: int) -> str:
    """One row of ``semantic_ids.jsonl`` (newline included)."""
    return json.dumps({"item_id": item_id, "path": list(path), "path_names": list(path_names), "resolver": int(resolver)},
                      ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class SemanticId:
    item_id: str
    path: tuple[str, ...]
    path_names: tuple[str, ...]
    resolver: int

    @property
    def tokens(self) -> tuple[str, ...]:
        """The ID as tokens: descriptor ids, then the resolver as ``"#<n>"``."""
        return self.path + (f"#{self.resolver}",)


class TokenCounter:
    """The token report of a semantic-ID table fed one row at a time (memory: the descriptors
    used, at most the vocabulary), so a sharded table never has to be in memory at once."""

    def __init__(self) -> None:
        self.items = 0
        self.max_resolver = -1
        self.per_level: dict[int, set[str]] = {}

    def add(self, path: tuple[str, ...] | list[str], resolver: int) -> None:
        self.items += 1
        self.max_resolver = max(self.max_resolver, int(resolver))
        for lvl, d in enumerate(path, start=1):
            self.per_level.setdefault(lvl, set()).add(d)

    def report(self, vocab: "Vocabulary | None" = None) -> dict:
        used = set().union(*self.per_level.values()) if self.per_level else set()
        resolvers = self.max_resolver + 1
        depth = max(self.per_level, default=0)
        out = {
            "items": self.items,
            "base_tokens": len(used),
            "resolvers": resolvers,
            "vocab_size": f"{len(used)}+{resolvers}",
            "total_tokens": len(used) + resolvers,
            "base_tokens_per_level": {lvl: len(self.per_level[lvl]) for lvl in range(1, depth + 1)},
            "max_id_length": depth + 1,
        }
        if vocab is not None:
            out["vocabulary_descriptors"] = len(vocab)
        return out


class SemanticIds:
    def __init__(self, rows: list[SemanticId]) -> None:
        self.rows = rows
        seen: dict[tuple, str] = {}
        for r in rows:
            key = (r.path, r.resolver)
            if key in seen:
                raise ValueError(
                    f"items {seen[key]!r} and {r.item_id!r} share the semantic ID {key}; "
                    "rebuild the table with SemanticIds.from_assignment"
                )
            seen[key] = r.item_id
        self._by_item = {r.item_id: r for r in rows}
        if len(self._by_item) != len(rows):
            dup = next(i for i, c in Counter(r.item_id for r in rows).items() if c > 1)
            raise ValueError(f"item {dup!r} appears more than once in the semantic-ID table")

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[SemanticId]:
        return iter(self.rows)

    def __getitem__(self, item_id: str) -> SemanticId:
        return self._by_item[item_id]

    @classmethod
    def from_assignment(cls, assignment: "Assignment", vocab: "Vocabulary") -> "SemanticIds":
        counter: Counter[tuple[str, ...]] = Counter()
        rows = []
        for item_id, path in assignment.paths.items():
            p = tuple(path)
            rows.append(SemanticId(item_id, p, tuple(vocab[d].name for d in p), counter[p]))
            counter[p] += 1
        return cls(rows)

    def extend(self, assignment: "Assignment", vocab: "Vocabulary") -> "SemanticIds":
        """This table plus the items of ``assignment``, which must all be new: every existing row
        is kept as it is, and a new item on a path already in use gets the next resolver after the
        ones taken (``#0 #1`` in use: the new one is ``#2``), so no earlier ID changes."""
        nxt: dict[tuple[str, ...], int] = {}
        for r in self.rows:
            nxt[r.path] = max(nxt.get(r.path, 0), r.resolver + 1)
        rows = list(self.rows)
        for item_id, path in assignment.paths.items():
            if item_id in self._by_item:
                raise ValueError(f"item {item_id!r} already has a semantic ID; only new items can be added")
            p = tuple(path)
            rows.append(SemanticId(item_id, p, tuple(vocab[d].name for d in p), nxt.get(p, 0)))
            nxt[p] = nxt.get(p, 0) + 1
        return SemanticIds(rows)

    def to_frame(self):
        """The table as a pandas DataFrame: ``item_id, path, path_names, resolver`` (paths as tuples)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "item_id": [r.item_id for r in self.rows],
                "path": [r.path for r in self.rows],
                "path_names": [r.path_names for r in self.rows],
                "resolver": [r.resolver for r in self.rows],
            },
            columns=list(COLUMNS),
        )

    # -- reports ------------------------------------------------------------------------------
    def token_report(self, vocab: "Vocabulary | None" = None) -> dict:
        """Token vocabulary size, "base tokens + resolvers" (Table 7): distinct descriptors used, and
        resolver tokens needed (= the largest number of items sharing one path)."""
        counter = TokenCounter()
        for r in self.rows:
            counter.add(r.path, r.resolver)
        return counter.report(vocab)

    # -- I/O ----------------------------------------------------------------------------------
    def to_arrow(self):
        import pyarrow as pa

        return pa.table(
            {
                "item_id": pa.array([r.item_id for r in self.rows], pa.string()),
                "path": pa.array([list(r.path) for r in self.rows], pa.list_(pa.string())),
                "path_names": pa.array([list(r.path_names) for r in self.rows], pa.list_(pa.string())),
                "resolver": pa.array([r.resolver for r in self.rows], pa.int64()),
            }
        )

    def save_parquet(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        from agentictagger.files import atomic_file

        with atomic_file(path) as tmp:
            pq.write_table(self.to_arrow(), str(tmp))

    def save_jsonl(self, path: str | Path) -> None:
        from agentictagger.files import atomic_file

        with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(jsonl_line(r.item_id, r.path, r.path_names, r.resolver))

    @classmethod
    def read(cls, path: str | Path, *, allow_empty_paths: bool = True) -> "SemanticIds":
        """A semantic-ID table from ``.parquet`` or ``.jsonl`` (the one reader: the run's own
        stages and the recommenders both read tables here). Every row is checked; a bad table
        raises :class:`ValueError` naming its rows and items (up to 20 problems). A run may
        leave an item without a descriptor (an empty path, within ``assign.max_empty_share``);
        ``allow_empty_paths=False`` refuses such rows (a recommender needs every item's tokens)."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: semantic-ID table not found")
        if p.suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            records = pq.read_table(p).to_pylist()
        else:
            records = []
            with p.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise ValueError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
        return cls(_checked_rows(records, str(p), allow_empty_paths))



def _checked_rows(records: list[dict], source: str, allow_empty_paths: bool = True) -> list[SemanticId]:
    """Rows from plain records, with every problem named: a missing or malformed field, an empty
    path (unless allowed), a negative resolver, an item twice, two items on one (path, resolver)."""
    rows: list[SemanticId] = []
    errors: list[str] = []
    for n, rec in enumerate(records, start=1):
        try:
            item_id = str(rec["item_id"])
            path = tuple(str(p) for p in rec["path"])
            names = tuple(str(p) for p in (rec.get("path_names") or [""] * len(path)))
            resolver = int(rec["resolver"])
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(f"row {n}: missing or malformed field ({exc!r}); a row has {list(COLUMNS)}")
            continue
        if not path and not allow_empty_paths:
            errors.append(f"row {n} (item {item_id}): empty path")
        if resolver < 0:
            errors.append(f"row {n} (item {item_id}): negative resolver {resolver}")
        rows.append(SemanticId(item_id, path, names, resolver))
    seen_items: dict[str, int] = {}
    seen_codes: dict[tuple, str] = {}
    for n, r in enumerate(rows, start=1):
        if r.item_id in seen_items:
            errors.append(f"item {r.item_id}: duplicate row (rows {seen_items[r.item_id]} and {n})")
        seen_items.setdefault(r.item_id, n)
        key = (r.path, r.resolver)
        if key in seen_codes:
            errors.append(f"items {seen_codes[key]} and {r.item_id} share path {list(r.path)} and resolver {r.resolver}")
        seen_codes.setdefault(key, r.item_id)
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ValueError(f"{source}: invalid semantic-ID table ({len(errors)} problems); regenerate it:\n  {shown}{more}")
    return rows
