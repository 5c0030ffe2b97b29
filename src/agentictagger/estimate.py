"""`agentictagger estimate`: time and dollars of assigning a catalog of 10^5 ... 10^8 items on N
workers, before a run starts, from per-item costs measured by ``bench/scale.py``.

Every per-item figure comes from the benchmark JSON (``bench/results/scale.json``, field
``per_item``), and the printed table names the field of each:

* ``embedding_texts_per_s_per_core``: sentence-embedding throughput of one core (1 torch thread);
* ``embedding_assigner_items_per_s``: the sharded embedding assigner on precomputed vectors, one
  core, at the largest size measured;
* ``llm_tokens_per_item.with_prefix_caching`` / ``.without_prefix_caching``: prompt, cached prompt
  and completion tokens of one LLM-assigner call, and ``llm_calls_per_item`` (one call per level).

The model, per stage, is linear in the item count: embedding time = N / (texts/s/core x workers);
assignment time = N / (items/s x workers); the LLM assigner's calls = N x calls per item, paced by
the provider's rate limit (requests per minute) or by ``workers x max_concurrency`` requests in
flight of ``latency_s`` each, whichever is slower; in batch mode, "within 24 h" (the providers'
window) instead. Dollars = tokens x the price table (cached prompt tokens at
``cached_price_factor`` of the input price when prefix caching is on), x ``batch_price_factor`` in
batch mode. Build time is not included (a build runs on a subsample: see ``build.subsample``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentictagger.config import RunConfig

SIZES = (10**5, 10**6, 10**7, 10**8)


@dataclass
class EstimateRow:
    items: int
    workers: int
    embed_h: float
    assign_h: float
    llm_h: float | None  # None: no LLM; float('nan') never
    wall_h: float
    core_h: float
    llm_calls: int
    prompt_tokens: float
    usd: float
    batch: bool
    sources: dict[str, str]


def load_measured(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: run `python bench/scale.py` first (it writes the per-item figures)")
    data = json.loads(p.read_text(encoding="utf-8"))
    if "per_item" not in data:
        raise ValueError(f"{p} has no 'per_item' section; it was not written by bench/scale.py")
    data["_path"] = str(p)
    return data


def count_items(cfg: RunConfig) -> int:
    """Items of the configured catalog, counted in batches (memory O(shard))."""
    from agentictagger.shards import iter_item_batches

    return sum(len(b) for b in iter_item_batches(cfg.catalog.path, cfg.catalog, 50_000))


def estimate_table(
    cfg: RunConfig,
    measured: dict[str, Any],
    items: int | None = None,
    *,
    workers: int = 1,
    model: str | None = None,
    price_in: float | None = None,
    price_out: float | None = None,
    prefix_caching: bool = True,
    cached_price_factor: float = 0.5,
    batch: bool | None = None,
    rpm: float | None = None,
    latency_s: float = 1.0,
    sizes: tuple[int, ...] = SIZES,
) -> list[EstimateRow]:
    """One row per size (and ``items``, when given, in order), for ``cfg.assign.assigner``."""
    per = measured["per_item"]
    src = measured.get("_path", "bench/results/scale.json")
    role = cfg.assign.llm if cfg.assign.llm in cfg.llms else "default"
    llm = cfg.llms.get(role) or next(iter(cfg.llms.values()))
    uses_llm = cfg.assign.assigner != "embedding"
    uses_vectors = cfg.assign.assigner in ("embedding", "hybrid")
    p_in = llm.price_per_million_input if price_in is None else price_in
    p_out = llm.price_per_million_output if price_out is None else price_out
    in_batch = (llm.mode == "batch") if batch is None else batch
    limit = llm.requests_per_minute if rpm is None else rpm
    key = "with_prefix_caching" if prefix_caching else "without_prefix_caching"
    tok = per["llm_tokens_per_item"][key]
    calls_per_item = float(per["llm_calls_per_item"])
    embed_rate = float(per["embedding_texts_per_s_per_core"])
    assign_rate = float(per["embedding_assigner_items_per_s"])
    sources = {
        "embedding": f"{src}: per_item.embedding_texts_per_s_per_core = {embed_rate:g}",
        "assignment": f"{src}: per_item.embedding_assigner_items_per_s = {assign_rate:g}",
        "llm tokens": f"{src}: per_item.llm_tokens_per_item.{key} = {tok}",
        "llm calls": f"{src}: per_item.llm_calls_per_item = {calls_per_item:g}",
        "prices": f"{model or llm.model}: ${p_in:g} / ${p_out:g} per 1M prompt / completion tokens"
        + (f", cached prompt x{cached_price_factor:g}" if prefix_caching else "")
        + (f", batch x{llm.batch_price_factor:g}" if in_batch else ""),
    }
    if uses_llm and p_in == 0 and p_out == 0 and llm.backend == "openai":
        sources["prices"] += (" -- NO PRICE SET, so USD reads 0: pass --price-in/--price-out or set "
                              f"llms.{role}.price_per_million_input/output")
    if uses_llm and not in_batch:
        sources["pace"] = (f"{limit:g} requests/min (rate limit)" if limit else "no rate limit") + (
            f"; {workers} worker(s) x {llm.max_concurrency} in flight x {latency_s:g} s per request (assumed latency)"
        )
    ns = sorted(set(sizes) | ({items} if items else set()))
    rows = []
    for n in ns:
        embed_s = n / embed_rate if uses_vectors else 0.0
        assign_s = n / assign_rate if cfg.assign.assigner == "embedding" else 0.0
        calls = n * calls_per_item if uses_llm else 0.0
        llm_h: float | None = None
        if uses_llm:
            if in_batch:
                llm_h = 24.0
            else:
                paced = calls / limit * 60 if limit else 0.0
                flight = calls * latency_s / (workers * llm.max_concurrency)
                llm_h = max(paced, flight) / 3600
        prompt = calls * float(tok["prompt"])
        cached = calls * float(tok.get("cached_prompt", 0.0)) if prefix_caching else 0.0
        completion = calls * float(tok["completion"])
        usd = ((prompt - cached) * p_in + cached * p_in * cached_price_factor + completion * p_out) / 1e6
        if in_batch:
            usd *= llm.batch_price_factor
        cpu_h = (embed_s + assign_s) / 3600
        rows.append(
            EstimateRow(
                items=n, workers=workers, embed_h=embed_s / workers / 3600, assign_h=assign_s / workers / 3600,
                llm_h=llm_h, wall_h=cpu_h / workers + (llm_h or 0.0), core_h=cpu_h, llm_calls=int(round(calls)),
                prompt_tokens=prompt, usd=usd, batch=in_batch, sources=sources,
            )
        )
    return rows


def _hours(h: float | None, batch: bool = False) -> str:
    if h is None:
        return "-"
    if batch:
        return "<= 24 h"
    if h < 1 / 60:
        return f"{h * 3600:.1f} s"
    if h < 1:
        return f"{h * 60:.1f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} d"


def render_estimate(rows: list[EstimateRow]) -> str:
    """The table as text, with the source of every per-item figure under it."""
    head = ["items", "workers", "embedding", "assignment", "LLM", "wall", "core-hours", "LLM calls", "prompt tokens", "USD"]
    body = [
        [
            f"{r.items:,}", str(r.workers), _hours(r.embed_h if r.embed_h else None), _hours(r.assign_h if r.assign_h else None),
            _hours(r.llm_h, r.batch), _hours(r.wall_h) + (" + batch" if r.batch and r.llm_h else ""), f"{r.core_h:.2f}",
            f"{r.llm_calls:,}", f"{r.prompt_tokens:,.0f}", f"{r.usd:,.2f}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    if rows:
        lines.append("per-item figures:")
        lines += [f"  {k}: {v}" for k, v in rows[0].sources.items()]
    return "\n".join(lines)


__all__ = ["EstimateRow", "SIZES", "count_items", "estimate_table", "load_measured", "render_estimate"]
