"""Interaction sequences, the leave-last-out split and TIGER-style sliding-window samples.

Items are addressed by a dense index ``0..n_items-1`` everywhere below this module; the string
item ids live only in :class:`SequenceData.item_ids`, so tokenizers, models and metrics never see
where an item came from.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def _shared_root(name: str) -> Path:
    """The shared-data folder holding ``name`` (repo-relative or $AGENTICTAGGER_DATA; see catalog)."""
    from agentictagger.catalog import shared_data_root

    return shared_data_root(None, name)



@dataclass
class SequenceData:
    """Chronological item sequences, one per user, over a dense item index."""

    item_ids: list[str]
    users: list[str]
    sequences: list[np.ndarray]
    item_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_index = {iid: i for i, iid in enumerate(self.item_ids)}
        if len(self.item_index) != len(self.item_ids):
            raise ValueError("SequenceData.item_ids has duplicates; item ids must be unique")
        if len(self.users) != len(self.sequences):
            raise ValueError(f"{len(self.users)} users but {len(self.sequences)} sequences")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    @classmethod
    def from_id_sequences(cls, users: Sequence[str], sequences: Iterable[Sequence[str]]) -> "SequenceData":
        """Build from sequences of string item ids; items are indexed in order of first appearance."""
        index: dict[str, int] = {}
        seqs: list[np.ndarray] = []
        for seq in sequences:
            seqs.append(np.fromiter((index.setdefault(i, len(index)) for i in seq), dtype=np.int64))
        return cls(item_ids=list(index), users=list(users), sequences=seqs)


def load_shared_sequences(name_or_path: str | Path) -> SequenceData:
    """Read a ``shared/data`` ``sequences.tsv.gz`` (a dataset name such as "beauty", or a path).

    Columns ``user_idx user_id item_ids`` (ASINs, space separated, oldest first) or, for
    ``scientific``, ``user_idx item_idxs``.
    """
    path = Path(name_or_path)
    if not path.exists() and not path.suffix:
        path = _shared_root(str(name_or_path)) / str(name_or_path) / "sequences.tsv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sequences file; pass a shared/data dataset name or a sequences.tsv.gz path")
    users: list[str] = []
    seqs: list[list[str]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader)
        item_col = "item_ids" if "item_ids" in header else "item_idxs"
        if item_col not in header:
            raise ValueError(f"{path}: header {header} has neither 'item_ids' nor 'item_idxs'")
        user_col = header.index("user_id") if "user_id" in header else header.index("user_idx")
        ic = header.index(item_col)
        for lineno, row in enumerate(reader, start=2):
            items = row[ic].split()
            if not items:
                raise ValueError(f"{path}:{lineno}: user {row[user_col]} has an empty item sequence")
            users.append(row[user_col])
            seqs.append(items)
    return SequenceData.from_id_sequences(users, seqs)


def from_interactions(
    table, user_col: str = "user_id", item_col: str = "item_id", time_col: str | None = "timestamp"
) -> SequenceData:
    """Build sequences from a generic (user, item, timestamp) table.

    ``table`` is a pandas DataFrame or a path to CSV / TSV / Parquet / JSONL. Rows are sorted by
    timestamp within each user (stable, so ties keep file order); without ``time_col`` file order is
    taken as chronological.
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        p = Path(table)
        name = p.name.lower()
        if name.endswith((".parquet", ".pq")):
            table = pd.read_parquet(p)
        elif name.endswith((".jsonl", ".jsonl.gz", ".json")):
            table = pd.read_json(p, lines=True)
        else:
            sep = "\t" if ".tsv" in name else ","
            table = pd.read_csv(p, sep=sep)
    missing = [c for c in (user_col, item_col, time_col) if c and c not in table.columns]
    if missing:
        raise ValueError(f"interaction table lacks columns {missing}; it has {list(table.columns)}")
    df = table[[c for c in (user_col, item_col, time_col) if c]].copy()
    df[user_col] = df[user_col].astype(str)
    df[item_col] = df[item_col].astype(str)
    df["_order"] = np.arange(len(df))
    sort_cols = [user_col] + ([time_col] if time_col else []) + ["_order"]
    df = df.sort_values(sort_cols, kind="stable")
    users, seqs = [], []
    for user, g in df.groupby(user_col, sort=False):
        users.append(str(user))
        seqs.append(g[item_col].tolist())
    return SequenceData.from_id_sequences(users, seqs)


@dataclass
class Samples:
    """(history, target) pairs; ``histories[i]`` holds at most ``max_history`` item indices, oldest first."""

    histories: list[np.ndarray]
    targets: np.ndarray
    users: np.ndarray  # row in SequenceData.users

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, idx: np.ndarray) -> "Samples":
        return Samples([self.histories[i] for i in idx], self.targets[idx], self.users[idx])


@dataclass
class Split:
    train: Samples
    valid: Samples
    test: Samples
    train_sequences: list[np.ndarray]  # per user, the prefix before the validation item (for SASRec)
    n_short_users: int  # users with < 3 items: no validation/test sample


def sliding_windows(seq: np.ndarray, max_history: int, user: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Every prefix of ``seq`` predicts its next item (TIGER): targets seq[1:], histories capped."""
    hists, targets = [], []
    for j in range(1, len(seq)):
        hists.append(seq[max(0, j - max_history) : j])
        targets.append(int(seq[j]))
    return hists, targets


def leave_last_out(data: SequenceData, max_history: int = 20) -> Split:
    """Last item = test target, second-last = validation target, the rest = training windows.

    Users with fewer than 3 items get no validation/test sample; their sequence still yields
    training windows, so no interaction is thrown away.
    """
    tr_h, tr_t, tr_u = [], [], []
    va_h, va_t, va_u = [], [], []
    te_h, te_t, te_u = [], [], []
    train_seqs: list[np.ndarray] = []
    short = 0
    for u, seq in enumerate(data.sequences):
        seq = np.asarray(seq, dtype=np.int64)
        if len(seq) < 3:
            short += 1
            prefix = seq
        else:
            prefix = seq[:-2]
            va_h.append(seq[:-2][-max_history:])
            va_t.append(int(seq[-2]))
            va_u.append(u)
            te_h.append(seq[:-1][-max_history:])
            te_t.append(int(seq[-1]))
            te_u.append(u)
        train_seqs.append(prefix)
        h, t = sliding_windows(prefix, max_history)
        tr_h += h
        tr_t += t
        tr_u += [u] * len(t)

    def mk(h, t, u) -> Samples:
        return Samples(h, np.asarray(t, dtype=np.int64), np.asarray(u, dtype=np.int64))

    return Split(mk(tr_h, tr_t, tr_u), mk(va_h, va_t, va_u), mk(te_h, te_t, te_u), train_seqs, short)


def load_shared_item_texts(name: str, item_ids: Sequence[str]) -> list[str]:
    """Item texts for a ``shared/data`` dataset, aligned with ``item_ids``.

    Uses the title; where a title is empty (7 Beauty items) falls back to ``idgenrec_text_id``,
    and for ``scientific`` joins title, brand, categories and description.
    """
    import json

    path = _shared_root(name) / name / "items.jsonl.gz"
    by_id: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            key = str(row.get("item_id", row.get("item_idx")))
            parts = [row.get("title") or ""]
            if name == "scientific":
                parts += [row.get(k) or "" for k in ("brand", "categories", "description")]
            text = ". ".join(p.strip() for p in parts if p and p.strip())
            by_id[key] = text or (row.get("idgenrec_text_id") or "").strip()
    missing = [i for i in item_ids if not by_id.get(i)]
    if missing:
        raise ValueError(f"{path}: {len(missing)} items have no text, e.g. {missing[:5]}")
    return [by_id[i] for i in item_ids]
