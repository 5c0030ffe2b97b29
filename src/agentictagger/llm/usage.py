"""LLM usage and cost accounting, per stage (e.g. "architect", "annotator", "assign").

One :class:`UsageTracker` is shared by every client of a run. With a log (:meth:`UsageTracker.
with_log`), every change is also appended as one JSON line to an append-only file in the run
folder the moment it happens: a request is counted as it leaves (an HTTP request: once its
connection is open, just before its first byte; an in-process call: when it answers), its tokens
and cost when its answer arrives. A killed run loses nothing it had counted, and the totals (``usage.json``) are
the sum of the log (:meth:`UsageTracker.from_log`), so after any crash the calls counted equal
the requests the server received; cache hits are counted apart and cost nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agentictagger.llm.types import TokenUsage

log = logging.getLogger(__name__)

@dataclass
class StageUsage:
    answered: int = 0  # requests answered (validly) by the backend
    cache_hits: int = 0  # requests answered from the cache
    calls: int = 0  # backend invocations, including retried and re-asked ones
    batch_calls: int = 0  # of which sent through a Batch API (llm.mode: batch), billed at the batch price
    failures: int = 0  # requests that raised for good (after retries / re-asks)
    reasks: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cost_usd: float = 0.0
    # Seconds during which at least one request of this stage was in progress (concurrent
    # requests are counted once), and the summed latency of the backend calls themselves.
    wall_s: float = 0.0
    backend_s: float = 0.0

    @property
    def requests(self) -> int:
        """Requests answered from the backend or the cache (failed ones excluded)."""
        return self.answered + self.cache_hits

    def add(self, other: "StageUsage") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageUsage":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"usage record has unknown fields {sorted(unknown)}")
        return cls(**d)


def estimate_cost(usage: TokenUsage, price_per_million_input: float, price_per_million_output: float) -> float:
    """USD for one call. Cached prompt tokens are billed at the full input price (an upper bound:
    providers that discount them do so at different rates)."""
    return (
        usage.prompt_tokens * price_per_million_input + usage.completion_tokens * price_per_million_output
    ) / 1_000_000


class UsageTracker:
    """Thread-safe per-stage counters, optionally mirrored to an append-only log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, StageUsage] = {}
        self._active: dict[str, int] = {}
        self._active_since: dict[str, float] = {}
        self._log_path: Path | None = None

    def _emit(self, stage: str, **delta: Any) -> None:
        """Append one change to the log (called with ``_lock`` held, so lines keep their order).
        Opened, written and closed per line: the line is with the OS before the call returns,
        so killing the process loses none."""
        if self._log_path is None:
            return
        line = json.dumps({"stage": stage, **delta, "t": round(time.time(), 3)}) + "\n"
        with open(self._log_path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def _stage(self, stage: str) -> StageUsage:
        s = self._stages.get(stage)
        if s is None:
            s = self._stages[stage] = StageUsage()
        return s

    # -- recording -------------------------------------------------------------------------
    def record_sent(self, stage: str, batch: bool = False) -> None:
        """A backend invocation is about to be sent: counted now, so a run killed while it is in
        flight still counts it. Pass ``sent=True`` to :meth:`record_call` / :meth:`record_failed_call`.
        ``batch``: one request of a submitted Batch API job (counted when the batch is created)."""
        self._add(stage, calls=1, batch_calls=1 if batch else 0)

    def record_call(self, stage: str, usage: TokenUsage, latency_s: float, cost_usd: float, sent: bool = False) -> None:
        """One backend invocation that returned an answer (valid or not); ``sent``: already
        counted by :meth:`record_sent`."""
        self._add(
            stage,
            calls=0 if sent else 1,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_prompt_tokens=usage.cached_prompt_tokens,
            cost_usd=cost_usd,
            backend_s=latency_s,
        )

    def record_failed_call(self, stage: str, latency_s: float, sent: bool = False) -> None:
        """One backend invocation that raised (it may still be retried)."""
        self._add(stage, calls=0 if sent else 1, backend_s=latency_s)

    def record_unsent(self, stage: str, latency_s: float) -> None:
        """A backend invocation that failed before its request left (no server saw it): time only."""
        self._add(stage, backend_s=latency_s)

    def record_answered(self, stage: str) -> None:
        self._add(stage, answered=1)

    def record_cache_hit(self, stage: str) -> None:
        self._add(stage, cache_hits=1)

    def record_failure(self, stage: str) -> None:
        self._add(stage, failures=1)

    def record_reask(self, stage: str) -> None:
        self._add(stage, reasks=1)

    def record_retry(self, stage: str) -> None:
        self._add(stage, retries=1)

    def _add(self, stage: str, **delta: Any) -> None:
        delta = {k: v for k, v in delta.items() if v}
        with self._lock:
            s = self._stage(stage)
            for k, v in delta.items():
                setattr(s, k, getattr(s, k) + v)
            if delta:
                self._emit(stage, **delta)

    def begin(self, stage: str) -> None:
        """A request of ``stage`` starts; pair with :meth:`end` (wall time counts overlaps once)."""
        with self._lock:
            n = self._active.get(stage, 0)
            if n == 0:
                self._active_since[stage] = time.perf_counter()
            self._active[stage] = n + 1

    def end(self, stage: str) -> None:
        with self._lock:
            n = self._active.get(stage, 0) - 1
            self._active[stage] = max(n, 0)
            if n <= 0 and stage in self._active_since:
                wall = time.perf_counter() - self._active_since.pop(stage)
                self._stage(stage).wall_s += wall
                self._emit(stage, wall_s=wall)

    # -- reading ---------------------------------------------------------------------------
    def stage(self, name: str) -> StageUsage:
        """A copy of one stage's counters (zeros if the stage never ran)."""
        with self._lock:
            return StageUsage.from_dict(self._stages[name].to_dict()) if name in self._stages else StageUsage()

    @property
    def stages(self) -> list[str]:
        with self._lock:
            return sorted(self._stages)

    def total(self) -> StageUsage:
        with self._lock:
            t = StageUsage()
            for s in self._stages.values():
                t.add(s)
            return t

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            stages = {name: s.to_dict() for name, s in sorted(self._stages.items())}
        total = StageUsage()
        for d in stages.values():
            total.add(StageUsage.from_dict(d))
        return {"stages": stages, "total": total.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UsageTracker":
        t = cls()
        for name, d in data.get("stages", {}).items():
            t._stages[name] = StageUsage.from_dict(d)
        return t

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
        from agentictagger.files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "UsageTracker":
        """Totals saved by an earlier (possibly interrupted) run; a missing file means none yet."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a usage file written by UsageTracker.save ({exc})") from exc

    # -- the append-only log -----------------------------------------------------------------
    @classmethod
    def from_log(cls, path: str | Path) -> "UsageTracker":
        """The sum of a usage log (a missing log sums to zero). A line cut short (a full disk)
        is skipped with a warning."""
        t = cls()
        path = Path(path)
        if not path.exists():
            return t
        known = {f.name for f in fields(StageUsage)}
        bad = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                stage = row["stage"]
                delta = {k: v for k, v in row.items() if k in known}
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            s = t._stage(stage)
            for k, v in delta.items():
                setattr(s, k, getattr(s, k) + v)
        if bad:
            log.warning("%s: %d unreadable line(s) skipped (cut short by a crash or a full disk)", path, bad)
        return t

    @classmethod
    def with_log(cls, path: str | Path, carried_from: str | Path | None = None) -> "UsageTracker":
        """A tracker that appends every change to ``path`` and starts from the log's sum, so a
        resumed run keeps adding to what its killed predecessors counted. ``carried_from``: a
        ``usage.json`` written before logs existed; its totals become the log's first lines."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            t = cls.from_log(path)
            with open(path, "rb+") as fh:  # a line cut short must not swallow the next one
                fh.seek(0, os.SEEK_END)
                if fh.tell():
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
        else:
            t = cls()
            if carried_from is not None and Path(carried_from).exists():
                try:
                    t = cls.load(carried_from)
                except ValueError as exc:
                    log.warning("%s; usage starts from zero", exc)
                    t = cls()
            lines = [
                json.dumps({"stage": name, **{k: v for k, v in d.items() if v}, "carried_from": Path(str(carried_from)).name})
                for name, d in t.to_dict()["stages"].items()
            ]
            path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        t._log_path = path
        return t

    @classmethod
    def appending_to(cls, path: str | Path) -> "UsageTracker":
        """A tracker starting from zero that appends every change to ``path`` without reading it:
        one per worker process of a run whose driver opened the log with :meth:`with_log` (the
        run's totals stay the sum of the one log)."""
        t = cls()
        t._log_path = Path(path)
        return t

    def sync(self) -> None:
        """fsync the log (its lines already survive a killed process; this covers power loss)."""
        if self._log_path is not None and self._log_path.exists():
            with open(self._log_path, "rb") as fh:
                os.fsync(fh.fileno())

    def merge(self, other: "UsageTracker") -> "UsageTracker":
        """Add ``other``'s counters into this tracker (returns self)."""
        snapshot = other.to_dict()["stages"]
        with self._lock:
            for name, d in snapshot.items():
                self._stage(name).add(StageUsage.from_dict(d))
                self._emit(name, **{k: v for k, v in d.items() if v})
        return self

    # -- display ---------------------------------------------------------------------------
    def table(self, title: str = "LLM usage") -> Any:
        """A ``rich.table.Table`` with one row per stage and a total row."""
        from rich.table import Table

        data = self.to_dict()
        table = Table(title=title)
        cols = [
            ("stage", "left"),
            ("requests", "right"),
            ("backend calls", "right"),
            *([("batch calls", "right")] if data["total"]["batch_calls"] else []),
            ("cache hits", "right"),
            ("retries", "right"),
            ("re-asks", "right"),
            ("failures", "right"),
            ("prompt tok", "right"),
            ("cached prompt tok", "right"),
            ("completion tok", "right"),
            ("cost USD", "right"),
            ("wall s", "right"),
        ]
        for name, justify in cols:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]

        def row(name: str, d: dict[str, Any]) -> list[str]:
            return [
                name,
                f"{d['answered'] + d['cache_hits']:,}",
                f"{d['calls']:,}",
                *([f"{d['batch_calls']:,}"] if data["total"]["batch_calls"] else []),
                f"{d['cache_hits']:,}",
                f"{d['retries']:,}",
                f"{d['reasks']:,}",
                f"{d['failures']:,}",
                f"{d['prompt_tokens']:,}",
                f"{d['cached_prompt_tokens']:,}",
                f"{d['completion_tokens']:,}",
                f"{d['cost_usd']:.4f}",
                f"{d['wall_s']:.1f}",
            ]

        for name, d in data["stages"].items():
            table.add_row(*row(name, d))
        if len(data["stages"]) > 1:
            table.add_row(*row("total", data["total"]), style="bold")
        return table

    def render(self, title: str = "LLM usage", width: int = 160) -> str:
        """The table as plain text (for logs and reports)."""
        import io

        from rich.console import Console

        buf = io.StringIO()
        Console(width=width, file=buf, color_system=None).print(self.table(title))
        return buf.getvalue()
