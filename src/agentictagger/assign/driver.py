"""Assign a whole catalog: chunking, checkpoint/resume, validation, and the files a run writes."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from agentictagger.errors import AssignError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.assign.base import Assigner, Assignment, ItemLike, check_path
from agentictagger.config import AssignConfig
from agentictagger.assign.embedding import EmbeddingAssigner, TextEncoder
from agentictagger.assign.llm import HybridAssigner, LLMAssigner, MapClient, SingleCallAssigner
from agentictagger.structures.vocabulary import Vocabulary

log = logging.getLogger(__name__)

PARTIAL = "assignments.partial.jsonl"


def make_assigner(
    cfg: AssignConfig,
    embedder: TextEncoder | None = None,
    llm_client: MapClient | None = None,
    choice_mode: str = "generate",
) -> Assigner:
    """The assigner named by ``cfg.assigner``; ``choice_mode`` comes from the LLM endpoint's config."""
    kind = cfg.assigner
    if kind in ("embedding", "hybrid") and embedder is None:
        raise ValueError(f"assigner {kind!r} needs an embedder")
    if kind in ("llm", "hybrid", "single_call") and llm_client is None:
        raise ValueError(f"assigner {kind!r} needs an LLM client (role {cfg.llm!r})")
    common: dict[str, Any] = dict(choice_mode=choice_mode, allow_stop=cfg.allow_stop, max_level=cfg.max_level, max_item_chars=cfg.max_item_chars)
    if kind == "embedding":
        return EmbeddingAssigner(embedder, stop_quantile=cfg.stop_quantile, min_similarity=cfg.min_similarity, max_level=cfg.max_level, lookahead=cfg.lookahead)  # type: ignore[arg-type]
    if kind == "llm":
        return LLMAssigner(llm_client, items_per_call=cfg.items_per_call, **common)  # type: ignore[arg-type]
    if kind == "hybrid":
        return HybridAssigner(llm_client, embedder, shortlist=cfg.shortlist, lookahead=cfg.lookahead, items_per_call=cfg.items_per_call, **common)  # type: ignore[arg-type]
    if kind == "single_call":
        return SingleCallAssigner(llm_client, max_paths=cfg.single_call_max_paths, max_tree_chars=cfg.single_call_max_tree_chars, **common)  # type: ignore[arg-type]
    raise ValueError(f"unknown assigner {kind!r}; use embedding, llm, hybrid or single_call")


def _items_of(catalog: Any) -> list[ItemLike]:
    return list(catalog.items) if hasattr(catalog, "items") else list(catalog)


def assign_catalog(
    catalog: Any,
    vocab: Vocabulary,
    assigner: Assigner,
    *,
    chunk_size: int = 500,
    checkpoint: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Assignment:
    """Assign every item of ``catalog`` (a Catalog or a sequence of items) in chunks.

    Each finished chunk is validated and appended to ``checkpoint`` (JSONL); a rerun with the same
    checkpoint skips the items already there, except unfinished ones, which are retried: an empty
    path, or a path marked ``"unfinished": true`` because an LLM call for the item failed for good
    at some level (the assigner lists those in ``last_unfinished``). Every path is checked against
    the vocabulary before it is written: an assigner that returns an invalid path stops the run
    with the item named.
    """
    items = _items_of(catalog)
    seen: set[str] = set()
    for it in items:
        if it.item_id in seen:
            raise ValueError(f"item id {it.item_id!r} appears twice in the catalog; item ids must be unique")
        seen.add(it.item_id)
    done: dict[str, list[str]] = {}
    ck = Path(checkpoint) if checkpoint else None
    if ck and ck.exists():
        for n, line in enumerate(ck.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: truncated line (killed mid-write?), the chunk is redone", ck, n)
                continue
            # Empty and unfinished paths (a call that failed for good) are redone; later lines win.
            if row.get("item_id") not in seen:
                continue
            if row.get("path") and not row.get("unfinished"):
                check_path(vocab, row["item_id"], row["path"])
                done[row["item_id"]] = row["path"]
            else:
                done.pop(row["item_id"], None)
        log.info("resuming: %d of %d items already assigned in %s", len(done), len(items), ck)
    todo = [it for it in items if it.item_id not in done]
    unfinished: set[str] = set()
    t0 = time.perf_counter()
    for s in range(0, len(todo), chunk_size):
        chunk = todo[s : s + chunk_size]
        paths = assigner.assign(chunk, vocab)
        if len(paths) != len(chunk):
            raise RuntimeError(f"assigner {assigner.name!r} returned {len(paths)} paths for {len(chunk)} items")
        failed = {chunk[k].item_id for k in (getattr(assigner, "last_unfinished", None) or [])}
        for it, p in zip(chunk, paths):
            check_path(vocab, it.item_id, p)
            done[it.item_id] = list(p)
        unfinished |= failed
        if ck:
            with ck.open("a", encoding="utf-8") as f:
                for it, p in zip(chunk, paths):
                    row = {"item_id": it.item_id, "path": list(p), **({"unfinished": True} if it.item_id in failed else {})}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        if progress:
            progress(len(done), len(items))
    elapsed = time.perf_counter() - t0
    empty = [it.item_id for it in items if not done[it.item_id]]
    if empty:
        # Only an LLM call that failed for good at level 1 leaves a path empty; such items have no
        # semantic ID a recommender can use, so say which ones to rerun (the cache keeps the rest).
        log.warning(
            "%d items have no descriptor (a level-1 call failed for good), e.g. %s; rerun the assignment "
            "to retry them (answered calls come from the cache)",
            len(empty),
            ", ".join(empty[:5]),
        )
    meta = {
        "assigner": assigner.name,
        "items": len(items),
        "resumed_items": len(items) - len(todo),
        "empty_paths": len(empty),
        # Paths cut short above where the assigner would have gone: a call for the item failed for good
        # below level 1. Retried by a rerun, like empty paths.
        "unfinished_paths": len([i for i in unfinished if done[i]]),
        "seconds": round(elapsed, 3),
        "items_per_s": round(len(todo) / elapsed, 2) if elapsed > 0 and todo else None,
        "stats": dict(getattr(assigner, "stats", {}) or {}),
        "vocabulary_descriptors": len(vocab),
    }
    return Assignment({it.item_id: done[it.item_id] for it in items}, meta)


def run_assign(
    catalog: Any,
    vocab: Vocabulary,
    cfg: AssignConfig,
    run_dir: str | Path,
    embedder: TextEncoder | None = None,
    llm_client_factory: Callable[[str], Any] | None = None,
    choice_mode: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    meta: dict | None = None,
    assigner: Assigner | None = None,
) -> Assignment:
    """Assign ``catalog`` and write ``assignments.jsonl``, ``semantic_ids.parquet`` and ``.jsonl`` to ``run_dir``.

    ``llm_client_factory(role_name)`` returns the client for ``cfg.llm`` (only called for LLM
    assigners). ``choice_mode`` defaults to the client's ``cfg.choice_mode`` when it has one.
    ``assigner`` (optional) replaces the one ``cfg.assigner`` names.
    Resumes from ``assignments.partial.jsonl`` in ``run_dir``.
    """
    from agentictagger.structures.semantic_ids import SemanticIds

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    assigner = assigner or run_assigner(cfg, embedder, llm_client_factory, choice_mode)
    assignment = assign_catalog(catalog, vocab, assigner, chunk_size=cfg.checkpoint_every, checkpoint=run / PARTIAL, progress=progress)
    check_empty_share(assignment, cfg)
    assignment.meta["config"] = cfg.model_dump(mode="json")
    assignment.meta.update(meta or {})  # e.g. the settings fingerprint the caller checked
    write_outputs(run, assignment, SemanticIds.from_assignment(assignment, vocab), vocab)
    # Finished: the outputs hold every path; the checkpoint goes (a rerun asks the cache again).
    (run / PARTIAL).unlink(missing_ok=True)
    return assignment


def run_assigner(
    cfg: AssignConfig,
    embedder: TextEncoder | None = None,
    llm_client_factory: Callable[[str], Any] | None = None,
    choice_mode: str | None = None,
) -> Assigner:
    """The assigner a run uses: :func:`make_assigner` with the LLM client of ``cfg.llm`` (from
    ``llm_client_factory``) and its choice mode."""
    client = None
    if cfg.assigner != "embedding":
        if llm_client_factory is None:
            raise ValueError(f"assigner {cfg.assigner!r} needs an LLM: pass llm_client_factory")
        client = llm_client_factory(cfg.llm)
    if choice_mode is None:
        # Likelihood scoring needs token log-probabilities, which only the embedded backend has.
        llm_cfg = getattr(client, "cfg", None)
        choice_mode = llm_cfg.choice_mode if llm_cfg is not None and llm_cfg.backend == "embedded" else "generate"
    return make_assigner(cfg, embedder, client, choice_mode=choice_mode)


def check_empty_share(assignment: Assignment, cfg: AssignConfig) -> None:
    """Too many empty paths (LLM calls failed for good): :class:`AssignError`, nothing written."""
    n, empty = assignment.meta["items"], assignment.meta["empty_paths"]
    cut = int(assignment.meta.get("unfinished_paths") or 0)
    if n and (empty + cut) / n > cfg.max_empty_share:
        stats = assignment.meta.get("stats") or {}
        failed = f", {stats['failed_calls']} LLM call(s) failed for good" if stats.get("failed_calls") else ""
        what = f"{empty} of {n} items got no descriptor" + (f" and {cut} an unfinished path" if cut else "")
        raise AssignError(
            f"{what} ({(empty + cut) / n:.0%} > assign.max_empty_share={cfg.max_empty_share:g}"
            f"{failed}); assignments and semantic IDs not written. Fix the cause (see the log) and run "
            f"`agentictagger assign` again: it retries those items"
        )


def write_outputs(run_dir: str | Path, assignment: Assignment, sids: Any, vocab: Vocabulary) -> None:
    """Write a run's assignment outputs, each atomically: the semantic-ID table (Parquet first:
    it is the table an added batch extends), its JSONL copy, the token report, ``assignments.jsonl``."""
    from agentictagger.files import atomic_write_text

    run = Path(run_dir)
    sids.save_parquet(run / "semantic_ids.parquet")
    sids.save_jsonl(run / "semantic_ids.jsonl")
    atomic_write_text(run / "token_vocabulary.json", json.dumps(sids.token_report(vocab), indent=1))
    assignment.save_jsonl(run / "assignments.jsonl")


__all__ = ["AssignError", "assign_catalog", "check_empty_share", "make_assigner", "run_assign", "run_assigner", "write_outputs", "PARTIAL"]
