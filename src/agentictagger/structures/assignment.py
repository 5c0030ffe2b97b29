"""The assignment: item id -> descriptor path (ids, level 1 first), with JSONL and Parquet
round-trips, and the path validator every written path goes through."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from agentictagger.errors import InvalidPathError
from agentictagger.structures.vocabulary import Vocabulary


def check_path(vocab: Vocabulary, item_id: str, path: Sequence[str]) -> None:
    """Raise :class:`InvalidPathError` naming the item and the first bad step."""
    if vocab.is_valid_path(list(path)):
        return
    parent = "root"
    for i, did in enumerate(path):
        if did not in vocab:
            raise InvalidPathError(
                f"item {item_id!r}: level {i + 1} descriptor {did!r} is not in the vocabulary "
                f"(path {list(path)}); the assigner and the vocabulary file do not match"
            )
        if vocab[did].parent != parent:
            raise InvalidPathError(
                f"item {item_id!r}: level {i + 1} descriptor {did!r} is not a child of {parent!r} "
                f"(path {list(path)}); an assigner must only choose among the children of its previous choice"
            )
        parent = did
    raise InvalidPathError(f"item {item_id!r}: invalid path {list(path)}")


@dataclass
class Assignment:
    """item_id -> descriptor path (ids, level 1 first). Insertion order is catalog order."""

    paths: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[tuple[str, list[str]]]:
        return iter(self.paths.items())

    def __getitem__(self, item_id: str) -> list[str]:
        return self.paths[item_id]

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.paths

    @property
    def item_ids(self) -> list[str]:
        return list(self.paths)

    def validate(self, vocab: Vocabulary) -> None:
        for item_id, path in self.paths.items():
            check_path(vocab, item_id, path)

    def subset(self, item_ids: Iterable[str]) -> "Assignment":
        return Assignment({i: self.paths[i] for i in item_ids}, dict(self.meta))

    # -- I/O ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"meta": self.meta, "paths": self.paths}

    @classmethod
    def from_dict(cls, data: dict) -> "Assignment":
        return cls({str(k): list(v) for k, v in data["paths"].items()}, dict(data.get("meta") or {}))

    def save_json(self, path: str | Path) -> None:
        _atomic_write(Path(path), json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def load_json(cls, path: str | Path) -> "Assignment":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def save_jsonl(self, path: str | Path) -> None:
        """One ``{"item_id", "path"}`` object per line; the meta goes into a first ``{"meta": ...}`` line."""
        _atomic_write(Path(path), meta_line(self.meta) + "".join(path_line(i, p) for i, p in self.paths.items()))

    @classmethod
    def load_jsonl(cls, path: str | Path) -> "Assignment":
        out = cls()
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e}); delete the line or the file to redo it") from e
            if "meta" in row:
                out.meta.update(row["meta"])
            else:
                out.paths[str(row["item_id"])] = list(row["path"])
        return out

    def save_parquet(self, path: str | Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "item_id": pa.array(list(self.paths), pa.string()),
                "path": pa.array(list(self.paths.values()), pa.list_(pa.string())),
            }
        )
        table = table.replace_schema_metadata({"agentictagger.meta": json.dumps(self.meta)})
        from agentictagger.files import atomic_file

        with atomic_file(path) as tmp:
            pq.write_table(table, str(tmp))

    @classmethod
    def load_parquet(cls, path: str | Path) -> "Assignment":
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        meta_raw = (table.schema.metadata or {}).get(b"agentictagger.meta")
        ids = table.column("item_id").to_pylist()
        paths = table.column("path").to_pylist()
        return cls({str(i): list(p or []) for i, p in zip(ids, paths)}, json.loads(meta_raw) if meta_raw else {})


def meta_line(meta: dict[str, Any]) -> str:
    """The first line of ``assignments.jsonl`` (newline included)."""
    return json.dumps({"meta": meta}, ensure_ascii=False) + "\n"


def path_line(item_id: str, path: Sequence[str]) -> str:
    """One item's line of ``assignments.jsonl`` (newline included)."""
    return json.dumps({"item_id": item_id, "path": list(path)}, ensure_ascii=False) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    from agentictagger.files import atomic_write_text

    atomic_write_text(path, text)
