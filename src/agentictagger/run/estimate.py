"""`agentictagger estimate`: time and dollars of building a vocabulary and assigning a catalog of
10^5 ... 10^8 items on N workers, before a run starts, from measured per-item and per-call costs.

The figures ship with the package (``agentictagger/data/estimate_calibration.json``, written by
``bench/make_estimate_calibration.py`` from ``bench/results/scale.json`` and the LLM build
benchmarks), so the command works from any folder; ``--measured`` reads another ``scale.json``.
The printed tables name the field of every figure:

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
batch mode; every table shows dollars with and without prefix caching, since how much of a prompt
a provider caches is its own business.

The build (:func:`build_estimate`) runs on the build set (``build.subsample`` of the catalog, or
all of it). Its job tree is modelled with equal splits: the root job splits into
``root_descriptors`` groups, a group above the sub-job threshold becomes a job of its own one
level down, split into ``child_descriptors`` (capped by its size), to ``max_depth``. For the roles
configured as ``llm``: the architect makes 1 + ``refine_steps`` calls per job, the annotators one
call per ``items_per_call`` items of a job per step (every step counted, so an upper figure), and
the namer one call per job at levels up to ``naming.max_level``, with tokens per named group.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from agentictagger.config import RunConfig

SIZES = (10**5, 10**6, 10**7, 10**8)

#: The shipped calibration (see bench/make_estimate_calibration.py).
CALIBRATION = "estimate_calibration.json"


def calibration_path() -> Path:
    return Path(str(resources.files("agentictagger") / "data" / CALIBRATION))


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
    usd_uncached: float = 0.0  # the same calls with no prompt token cached


def load_measured(path: str | Path | None = None) -> dict[str, Any]:
    """The per-item figures: the shipped calibration (``path`` None), or a ``scale.json`` written
    by ``bench/scale.py`` (build figures then come from the shipped calibration)."""
    shipped = calibration_path()
    p = Path(path) if path is not None else shipped
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; leave out --measured to use the figures shipped with agentictagger")
    data = json.loads(p.read_text(encoding="utf-8"))
    if "per_item" not in data:
        raise ValueError(f"{p} has no 'per_item' section; it was not written by bench/scale.py")
    if "build" not in data:
        base = json.loads(shipped.read_text(encoding="utf-8"))
        data["build"], data["build_sources"] = base["build"], {k: f"{shipped.name}: {v}" for k, v in base["build_sources"].items()}
    data["_path"] = str(p) if path is not None else f"agentictagger/data/{CALIBRATION}"
    return data


def check_options(**values: float | int | None) -> None:
    """Every number given to ``estimate`` is finite and in its range; else ValueError naming the
    option (``price_in=-3`` -> ``--price-in must be ...``)."""
    ranges = {
        "items": (1, None), "workers": (1, None), "price_in": (0, None), "price_out": (0, None),
        "cached_price_factor": (0, 1), "rpm": (0, None), "latency_s": (0, None),
    }
    for name, v in values.items():
        if v is None:
            continue
        lo, hi = ranges[name]
        flag = "--" + name.replace("_", "-")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{flag} must be a finite number (given: {v})")
        if (name == "rpm" and v <= 0) or v < lo or (hi is not None and v > hi):
            allowed = "> 0" if name == "rpm" else f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
            raise ValueError(f"{flag} must be {allowed} (given: {v:g})")


def count_items(cfg: RunConfig) -> int:
    """Items of the configured catalog, counted in batches (memory O(shard))."""
    from agentictagger.run.shards import iter_item_batches

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
        uncached_prompt = calls * float(per["llm_tokens_per_item"]["without_prefix_caching"]["prompt"])
        usd_uncached = (uncached_prompt * p_in + completion * p_out) / 1e6
        if in_batch:
            usd *= llm.batch_price_factor
            usd_uncached *= llm.batch_price_factor
        cpu_h = (embed_s + assign_s) / 3600
        rows.append(
            EstimateRow(
                items=n, workers=workers, embed_h=embed_s / workers / 3600, assign_h=assign_s / workers / 3600,
                llm_h=llm_h, wall_h=cpu_h / workers + (llm_h or 0.0), core_h=cpu_h, llm_calls=int(round(calls)),
                prompt_tokens=prompt, usd=usd, batch=in_batch, sources=sources, usd_uncached=usd_uncached,
            )
        )
    return rows


@dataclass
class BuildRow:
    items: int
    build_items: int
    levels: int
    jobs: int
    calls: dict[str, int]  # per LLM role: architect, annotator, namer
    prompt_tokens: float
    usd: float
    usd_uncached: float
    llm_h: float | None
    sources: dict[str, str] = field(default_factory=dict)


def build_jobs(cfg: RunConfig, build_items: int) -> list[tuple[int, int, float, int]]:
    """The modelled job tree: per level (level, jobs, items per job, descriptors per job)."""
    b = cfg.build
    threshold = b.sub_job_threshold(build_items)
    out: list[tuple[int, int, float, int]] = []
    jobs, size, level = 1, float(build_items), 1
    while level <= b.max_depth:
        target = b.root_descriptors if level == 1 else int(min(b.child_descriptors, max(b.min_descriptors, int(size) // 10)))
        target = max(1, target)
        out.append((level, jobs, size, target))
        child = size / target
        if child <= threshold or target == 1:
            break
        jobs, size, level = jobs * target, child, level + 1
    return out


def _build_set(cfg: RunConfig, n: int) -> int:
    s = cfg.build.subsample
    if s is None:
        return n
    return int(min(n, s)) if s > 1 else max(1, int(round(n * s)))


def _namer_figure(definitions: str, figures: dict[str, Any]) -> str:
    """The namer's calibration: names with definitions, or names only (``definitions: keyphrase``,
    answers about a third as long) where the calibration has that figure."""
    names_only = "namer_tokens_per_group_names_only"
    return names_only if definitions == "keyphrase" and names_only in figures else "namer_tokens_per_group"


def build_estimate(
    cfg: RunConfig,
    measured: dict[str, Any],
    items: int | None = None,
    *,
    price_in: float | None = None,
    price_out: float | None = None,
    cached_price_factor: float = 0.5,
    prefix_caching: bool = True,
    batch: bool | None = None,
    workers: int = 1,
    rpm: float | None = None,
    latency_s: float = 1.0,
    sizes: tuple[int, ...] = SIZES,
) -> list[BuildRow]:
    """LLM calls, tokens, dollars and LLM time of building the vocabulary, per catalog size, for
    the roles the config runs on an LLM (architect, annotator, namer); zero calls offline."""
    from agentictagger.run.roles import role_llm

    b = cfg.build
    figures = measured["build"]
    roles = {
        "architect": (b.architect.kind == "llm", b.architect.llm, "architect_tokens_per_call"),
        "annotator": (b.annotator.kind == "llm", b.annotator.llm, "annotator_tokens_per_call"),
        "namer": (b.naming.kind == "llm", b.naming.llm, _namer_figure(b.naming.definitions, figures)),
    }
    src = measured.get("build_sources", {})
    sources = {f"build {k}": src.get(key, key) + f" = {figures[key]}" for k, (on, _, key) in roles.items() if on}
    rows = []
    for n in sorted(set(sizes) | ({items} if items else set())):
        nb = _build_set(cfg, n)
        tree = build_jobs(cfg, nb)
        calls = {k: 0 for k in roles}
        prompt = usd = usd_unc = seconds = 0.0
        for role, (on, llm_name, key) in roles.items():
            if not on:
                continue
            llm = role_llm(cfg, llm_name)
            tok = figures[key]
            n_calls = units = 0.0
            for level, jobs, size, target in tree:
                steps = 1 + b.refine_steps
                if role == "architect":
                    n_calls += jobs * steps
                    units += jobs * steps
                elif role == "annotator":
                    per_step = math.ceil(size / b.annotator.items_per_call)
                    n_calls += jobs * steps * per_step
                    units += jobs * steps * size  # tokens of a one-item call, per item: an upper figure
                elif level <= b.naming.max_level:  # namer: one call per job, tokens per named group
                    n_calls += jobs
                    units += jobs * target
            p_in = llm.price_per_million_input if price_in is None else price_in
            p_out = llm.price_per_million_output if price_out is None else price_out
            factor = llm.batch_price_factor if ((llm.mode == "batch") if batch is None else batch) else 1.0
            pr, ca, co = units * tok["prompt"], units * tok.get("cached_prompt", 0.0), units * tok["completion"]
            usd += factor * ((pr - (ca if prefix_caching else 0)) * p_in + (ca * p_in * cached_price_factor if prefix_caching else 0) + co * p_out) / 1e6
            usd_unc += factor * (pr * p_in + co * p_out) / 1e6
            prompt += pr
            calls[role] = int(round(n_calls))
            limit = llm.requests_per_minute if rpm is None else rpm
            paced = n_calls / limit * 60 if limit else 0.0
            seconds += max(paced, n_calls * latency_s / (workers * llm.max_concurrency))
        rows.append(BuildRow(
            items=n, build_items=nb, levels=len(tree), jobs=sum(j for _, j, _, _ in tree), calls=calls,
            prompt_tokens=prompt, usd=usd, usd_uncached=usd_unc, llm_h=seconds / 3600 if any(calls.values()) else None,
            sources=sources,
        ))
    return rows


def estimate_warnings(cfg: RunConfig, model: str | None = None, price_in: float | None = None,
                      price_out: float | None = None) -> list[str]:
    """What the tables cannot show: a --model no configured role uses, a price that is unknown."""
    from agentictagger.run.roles import role_llm

    b = cfg.build
    used = {
        "assignment": cfg.assign.llm if cfg.assign.assigner != "embedding" else None,
        "build architect": b.architect.llm if b.architect.kind == "llm" else None,
        "build annotator": b.annotator.llm if b.annotator.kind == "llm" else None,
        "build namer": b.naming.llm if b.naming.kind == "llm" else None,
    }
    used = {k: v for k, v in used.items() if v is not None}
    out = []
    if model and cfg.assign.assigner == "embedding":
        out.append(
            f"--model {model}: assign.assigner is 'embedding', so the assignment makes no LLM call and costs $0 whatever "
            "the model; add --set assign.assigner=llm (or hybrid, single_call) to price an LLM assignment"
        )
    if model and not used:
        out.append(f"--model {model}: no role of this configuration calls an LLM, so the model is not used")
    for stage, name in used.items():
        llm = role_llm(cfg, name)
        p_in = llm.price_per_million_input if price_in is None else price_in
        p_out = llm.price_per_million_output if price_out is None else price_out
        if p_in == 0 and p_out == 0 and (llm.backend == "openai" or model):
            out.append(
                f"{stage}: no price known for {model or llm.model or name!r} (USD reads 0); pass --price-in/--price-out "
                f"or set llms.{name}.price_per_million_input/output"
            )
    return out


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


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    return lines + ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]


def render_estimate(rows: list[EstimateRow]) -> str:
    """The assignment table as text, with the source of every per-item figure under it. USD is
    shown with prefix caching as configured and with no prompt token cached."""
    head = ["items", "workers", "embedding", "assignment", "LLM", "wall", "core-hours", "LLM calls", "prompt tokens",
            "USD cached", "USD uncached"]
    body = [
        [
            f"{r.items:,}", str(r.workers), _hours(r.embed_h if r.embed_h else None), _hours(r.assign_h if r.assign_h else None),
            _hours(r.llm_h, r.batch), _hours(r.wall_h) + (" + batch" if r.batch and r.llm_h else ""), f"{r.core_h:.2f}",
            f"{r.llm_calls:,}", f"{r.prompt_tokens:,.0f}", f"{r.usd:,.2f}", f"{r.usd_uncached:,.2f}",
        ]
        for r in rows
    ]
    lines = _table(head, body) if rows else []
    if rows:
        lines.append("per-item figures:")
        lines += [f"  {k}: {v}" for k, v in rows[0].sources.items()]
    return "\n".join(lines)


def render_build(rows: list[BuildRow]) -> str:
    """The build table as text: build set, modelled job tree, LLM calls per role, dollars."""
    head = ["items", "build set", "levels", "jobs", "architect calls", "annotator calls", "namer calls", "LLM",
            "USD cached", "USD uncached"]
    body = [
        [
            f"{r.items:,}", f"{r.build_items:,}", str(r.levels), f"{r.jobs:,}", f"{r.calls['architect']:,}",
            f"{r.calls['annotator']:,}", f"{r.calls['namer']:,}", _hours(r.llm_h), f"{r.usd:,.2f}", f"{r.usd_uncached:,.2f}",
        ]
        for r in rows
    ]
    lines = _table(head, body) if rows else []
    if rows and rows[0].sources:
        lines.append("per-call figures:")
        lines += [f"  {k}: {v}" for k, v in rows[0].sources.items()]
    elif rows:
        lines.append("  (no build role runs on an LLM: the build makes no LLM call)")
    return "\n".join(lines)


__all__ = [
    "BuildRow", "EstimateRow", "SIZES", "build_estimate", "build_jobs", "calibration_path", "check_options", "count_items",
    "estimate_table", "estimate_warnings", "load_measured", "render_build", "render_estimate",
]
