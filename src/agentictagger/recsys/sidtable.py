"""Reader (and writer, for tests and exports) of the agentictagger semantic-ID table.

The table is the only thing recsys takes from the tagging side: one row per item with
``item_id: str``, ``path: list[str]`` (globally unique descriptor ids, level 1 first, variable
length >= 1), ``path_names: list[str]`` and ``resolver: int`` (0-based among items sharing the same
path). Parquet or JSONL. Level-1 descriptor names come from ``vocabulary.json``, read here as
plain JSON so recsys never imports the vocabulary builder or the LLM layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class SemanticIDRow:
    item_id: str
    path: tuple[str, ...]
    path_names: tuple[str, ...]
    resolver: int


@dataclass(frozen=True)
class Level1Descriptor:
    id: str
    name: str
    definition: str

    @property
    def text(self) -> str:
        return f"{self.name}: {self.definition}" if self.definition else self.name


def _rows_from_records(records: list[dict], source: str) -> list[SemanticIDRow]:
    rows: list[SemanticIDRow] = []
    errors: list[str] = []
    for n, rec in enumerate(records, start=1):
        try:
            item_id = str(rec["item_id"])
            path = tuple(str(p) for p in rec["path"])
            names = tuple(str(p) for p in (rec.get("path_names") or [""] * len(path)))
            resolver = int(rec["resolver"])
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(f"row {n}: missing or malformed field ({exc!r})")
            continue
        if not path:
            errors.append(f"row {n} (item {item_id}): empty path")
        if resolver < 0:
            errors.append(f"row {n} (item {item_id}): negative resolver {resolver}")
        rows.append(SemanticIDRow(item_id, path, names, resolver))
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


def read_semantic_id_table(path: str | Path) -> list[SemanticIDRow]:
    """Read and validate a semantic-ID table (``.parquet`` or ``.jsonl``)."""
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
    return _rows_from_records(records, str(p))


def write_semantic_id_table(rows: Sequence[SemanticIDRow], path: str | Path) -> None:
    p = Path(path)
    records = [
        {"item_id": r.item_id, "path": list(r.path), "path_names": list(r.path_names), "resolver": r.resolver}
        for r in rows
    ]
    if p.suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), p)
    else:
        p.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


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
