"""LLM usage and cost accounting, per stage (e.g. "architect", "annotator", "assign").

One :class:`UsageTracker` is shared by every client of a run. It is saved as JSON next to the
run's checkpoints; a resumed run loads it and keeps adding, so the totals cover the whole run.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agentictagger.llm.types import TokenUsage


@dataclass
class StageUsage:
    answered: int = 0  # requests answered (validly) by the backend
    cache_hits: int = 0  # requests answered from the cache
    calls: int = 0  # backend invocations, including retried and re-asked ones
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
    """Thread-safe per-stage counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, StageUsage] = {}
        self._active: dict[str, int] = {}
        self._active_since: dict[str, float] = {}

    def _stage(self, stage: str) -> StageUsage:
        s = self._stages.get(stage)
        if s is None:
            s = self._stages[stage] = StageUsage()
        return s

    # -- recording -------------------------------------------------------------------------
    def record_call(self, stage: str, usage: TokenUsage, latency_s: float, cost_usd: float) -> None:
        """One backend invocation that returned an answer (valid or not)."""
        with self._lock:
            s = self._stage(stage)
            s.calls += 1
            s.prompt_tokens += usage.prompt_tokens
            s.completion_tokens += usage.completion_tokens
            s.cached_prompt_tokens += usage.cached_prompt_tokens
            s.cost_usd += cost_usd
            s.backend_s += latency_s

    def record_failed_call(self, stage: str, latency_s: float) -> None:
        """One backend invocation that raised (it may still be retried)."""
        with self._lock:
            s = self._stage(stage)
            s.calls += 1
            s.backend_s += latency_s

    def record_answered(self, stage: str) -> None:
        with self._lock:
            self._stage(stage).answered += 1

    def record_cache_hit(self, stage: str) -> None:
        with self._lock:
            self._stage(stage).cache_hits += 1

    def record_failure(self, stage: str) -> None:
        with self._lock:
            self._stage(stage).failures += 1

    def record_reask(self, stage: str) -> None:
        with self._lock:
            self._stage(stage).reasks += 1

    def record_retry(self, stage: str) -> None:
        with self._lock:
            self._stage(stage).retries += 1

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
                self._stage(stage).wall_s += time.perf_counter() - self._active_since.pop(stage)

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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(blob + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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

    def merge(self, other: "UsageTracker") -> "UsageTracker":
        """Add ``other``'s counters into this tracker (returns self)."""
        snapshot = other.to_dict()["stages"]
        with self._lock:
            for name, d in snapshot.items():
                self._stage(name).add(StageUsage.from_dict(d))
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
