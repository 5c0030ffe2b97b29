"""Interaction sequences, the leave-last-out split and TIGER-style sliding-window samples.

Items are addressed by a dense index ``0..n_items-1`` everywhere below this module; the string
item ids live only in :class:`SequenceData.item_ids`, so tokenizers, models and metrics never see
where an item came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


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

    def subset_users(self, rows: Sequence[int]) -> "SequenceData":
        """Only the given users (rows of ``users``); items re-indexed in order of first appearance."""
        return SequenceData.from_id_sequences([self.users[r] for r in rows],
                                              [[self.item_ids[i] for i in self.sequences[r]] for r in rows])

    def without_items(self, item_ids: Iterable[str]) -> "SequenceData":
        """The same users without the interactions with ``item_ids`` (users left with none are
        dropped); items re-indexed in order of first appearance."""
        gone = set(item_ids)
        kept = [[self.item_ids[i] for i in s if self.item_ids[i] not in gone] for s in self.sequences]
        rows = [r for r, s in enumerate(kept) if s]
        return SequenceData.from_id_sequences([self.users[r] for r in rows], [kept[r] for r in rows])

    @classmethod
    def from_id_sequences(cls, users: Sequence[str], sequences: Iterable[Sequence[str]]) -> "SequenceData":
        """Build from sequences of string item ids; items are indexed in order of first appearance."""
        index: dict[str, int] = {}
        seqs: list[np.ndarray] = []
        for seq in sequences:
            seqs.append(np.fromiter((index.setdefault(i, len(index)) for i in seq), dtype=np.int64))
        return cls(item_ids=list(index), users=list(users), sequences=seqs)


def load_shared_sequences(name_or_path: str | Path) -> SequenceData:
    """Sequences of a ``shared/data`` dataset name ("beauty", "scientific", "sports"; read by
    :func:`agentictagger.catalog.load_sequences`, so item ids match the catalog), or of a
    sequences file (:func:`agentictagger.catalog.read_sequences`, the one TSV sequence reader:
    one user per line, the space-separated item ids, oldest first, in the last column).
    """
    from agentictagger.catalog import SHARED_DATASETS, load_sequences, read_sequences

    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in SHARED_DATASETS:
        rows = load_sequences(str(name_or_path))
        return SequenceData.from_id_sequences([u for u, _ in rows], [s for _, s in rows])
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such sequences file; pass a shared dataset name "
                                f"({', '.join(SHARED_DATASETS)}) or a path to a sequences TSV")
    rows = read_sequences(path)
    return SequenceData.from_id_sequences([u for u, _ in rows], [s for _, s in rows])


def from_interactions(
    table, user_col: str = "user_id", item_col: str = "item_id", time_col: str | None = "timestamp"
) -> SequenceData:
    """Build sequences from a generic (user, item, timestamp) table.

    ``table`` is a pandas DataFrame or a path to CSV / TSV / Parquet / JSONL. Rows are sorted by
    timestamp within each user (stable, so ties keep file order); without ``time_col`` file order is
    taken as chronological. Timestamps are read as numbers or as dates and times (whichever reads
    every value); a value that is neither is a bad row, and the table is refused naming its lines.
    """
    import pandas as pd

    where = "the table"
    first_line = 1  # file line of the first row (CSV/TSV: after the header)
    if not isinstance(table, pd.DataFrame):
        p = Path(table)
        where = str(p)
        first_line = 1 if p.name.lower().endswith((".jsonl", ".jsonl.gz", ".json", ".parquet", ".pq")) else 2
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
    if time_col:
        df[time_col] = parse_timestamps(df[time_col], where, first_line, time_col)
    df["_order"] = np.arange(len(df))
    sort_cols = [user_col] + ([time_col] if time_col else []) + ["_order"]
    df = df.sort_values(sort_cols, kind="stable")
    users, seqs = [], []
    for user, g in df.groupby(user_col, sort=False):
        users.append(str(user))
        seqs.append(g[item_col].tolist())
    return SequenceData.from_id_sequences(users, seqs)


def parse_timestamps(col, where: str, first_line: int, name: str):
    """``col`` as sortable times: numbers (epoch seconds, counters) or dates and times, whichever
    reads every value; otherwise a ValueError naming the lines (``first_line`` = the first row's
    line in the file) whose value is neither."""
    import warnings

    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
        bad = col.isna().to_numpy()
        if not bad.any():
            return col
        parsed = col
    else:
        text = col.astype(str).str.strip()
        as_num = pd.to_numeric(text, errors="coerce")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            as_time = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        bad_num, bad_time = as_num.isna().to_numpy(), as_time.isna().to_numpy()
        parsed, bad = (as_num, bad_num) if bad_num.sum() <= bad_time.sum() else (as_time, bad_time)
        if not bad.any():
            return parsed
    rows = np.flatnonzero(bad)
    shown = ", ".join(f"line {first_line + int(r)} ({col.iloc[int(r)]!r})" for r in rows[:5])
    raise ValueError(
        f"{where}: {len(rows)} row(s) have a {name} that is neither a number nor a date: {shown}"
        f"{' ...' if len(rows) > 5 else ''}; fix or drop those rows (sorting them as text would put '10' before '5')"
    )


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

    def item_counts(self, n_items: int) -> np.ndarray:
        """Training interactions per item (the prefixes before each user's validation item)."""
        seqs = [s for s in self.train_sequences if len(s)]
        return np.bincount(np.concatenate(seqs), minlength=n_items) if seqs else np.zeros(n_items, int)


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
