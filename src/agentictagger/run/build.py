"""`build_vocabulary`: wires configuration, catalog, embeddings and agents into a build."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agentictagger.catalog import Catalog
from agentictagger.config import RunConfig
from agentictagger.run.folder import build_fingerprint
from agentictagger.run.roles import llm_client_factory, role_fingerprint, role_llm
from agentictagger.vocab.agents import EmbeddingAnnotator, EmbeddingArchitect
from agentictagger.vocab.builder import BuildResult, VocabularyBuilder
from agentictagger.vocab.keyphrases import catalog_brands

log = logging.getLogger(__name__)


def make_namer(naming: Any, encode: Callable, client: Callable[[str], Any]) -> Any:
    """The offline architect's namer: key phrases, or the LLM for levels 1..max_level."""
    from agentictagger.vocab.naming import KeyphraseNamer, LevelNamer, LLMNamer

    offline = KeyphraseNamer(encode, separating_levels=naming.separating_levels, separating_sweeps=naming.separating_sweeps,
                             separating_pool=naming.separating_pool, separating_shortlist=naming.separating_shortlist)
    if naming.kind != "llm":
        return offline
    llm = LLMNamer(
        client(naming.llm),
        offline,
        titles_per_group=naming.titles_per_group,
        max_reasks=naming.max_reasks,
        refine_steps=naming.refine_steps,
        definitions=naming.definitions,
        titles=naming.titles,
        hints_at_top=naming.hints == "every_level",
        misfits=naming.misfits,
    )
    return LevelNamer(llm, offline, naming.max_level)


def build_set(catalog: Catalog, cfg: RunConfig) -> Catalog:
    """The items the vocabulary is built from: all, or a seeded subsample (§6.2)."""
    from agentictagger.errors import RunError

    sub = cfg.build.subsample
    if sub is None:
        return catalog
    n = int(round(sub * len(catalog))) if sub <= 1 else int(sub)
    if n < 2 or n > len(catalog):
        raise RunError(
            f"build.subsample={sub:g} selects {n} of the catalog's {len(catalog)} items; a build needs at least 2 and "
            f"can use at most all {len(catalog)}: give a fraction in (0, 1] or a count between 2 and {len(catalog)}"
        )
    return catalog.sample(n, seed=cfg.seed)


def build_vocabulary(
    catalog: Catalog,
    cfg: RunConfig,
    *,
    embedder: Any = None,
    progress: Callable[[dict], None] | None = None,
    restart: bool = False,
    architect: Any = None,
    annotator: Any = None,
) -> BuildResult:
    """Build the descriptor tree for ``catalog`` into ``cfg.run_dir`` (resumes if state is there).

    LLM clients come from :func:`agentictagger.run.roles.llm_client_factory`, made only for roles
    configured as 'llm'. ``architect`` and ``annotator`` (optional) replace the agents the config
    names (their classes go into the fingerprint). State left by a build with other settings (see
    :func:`agentictagger.run.folder.build_fingerprint`) raises
    :class:`~agentictagger.run.folder.StaleStateError` before any work, unless ``restart``, which
    removes it first.
    """
    from agentictagger.embed import Embedder  # heavy import (torch): only when building

    run_dir = Path(cfg.run_dir)
    items = build_set(catalog, cfg)
    texts = items.texts
    brand_field = cfg.catalog.brand_field
    brands = [str(it.fields.get(brand_field) or "") if brand_field else "" for it in items]
    fingerprint = {
        **build_fingerprint(cfg, items.ids, texts, brands),
        **role_fingerprint("architect", architect),
        **role_fingerprint("annotator", annotator),
    }
    _prepare_folder(run_dir, cfg, fingerprint, items.ids, restart)
    embedder = embedder or Embedder(cfg.embedding, cache_dir=cfg.cache_dir)
    t0 = time.monotonic()
    emb = np.asarray(embedder.encode(texts, show_progress=len(texts) > 2000), dtype=np.float32)
    embed_s = time.monotonic() - t0
    if isinstance(embedder, Embedder):
        # With the item vectors all in the cache, the model is not loaded yet, and the first
        # job's grouping needs none of it: it loads beside that grouping, not in the way of the
        # first job's naming (a no-op when the items were just encoded).
        embedder.load_in_background()

    exclude, whole_brands = catalog_brands(brands, texts)
    usage = _load_usage(run_dir)
    client = llm_client_factory(cfg, usage)
    architect, fallback = _architects(cfg, embedder, client, exclude, custom=architect)
    annotator = annotator if annotator is not None else _annotator(cfg, embedder, client)
    report = _progress_with_usage(progress, usage)
    builder = VocabularyBuilder(
        cfg.build,
        texts=texts,
        embeddings=emb,
        architect=architect,
        annotator=annotator,
        run_dir=run_dir,
        fallback_architect=fallback,
        exclude_terms=exclude,
        brand_strings=whole_brands,
        item_ids=items.ids,
        seed=cfg.seed,
        progress=report,
    )
    # Calls and tokens grow inside a job step too: refresh the progress line while building.
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            report(dict(builder.stats))

    if progress is not None:
        threading.Thread(target=tick, daemon=True).start()
    try:
        result = builder.run()
        # What produced it: every setting that shapes the result (as checked on resume).
        result.vocabulary.meta["fingerprint"] = fingerprint
        result.vocabulary.save(run_dir / "vocabulary.json")
        return result
    finally:
        stop.set()
        _save_usage(run_dir, usage, embed_s, len(texts))


def _prepare_folder(run_dir: Path, cfg: RunConfig, fingerprint: dict, ids: list[str], restart: bool) -> None:
    """Before any work: the folder is not an edited run, its checkpoints match the settings (or
    ``restart`` removes them), a killed run's build log is completed, the build set is the one
    the checkpoints were made from; the run's settings are written."""
    from agentictagger.run.folder import (
        BUILD_FINGERPRINT,
        BUILD_STATE,
        check_fingerprint,
        complete_build_log,
        write_run_config,
    )
    from agentictagger.run.stages import check_not_edited

    run_dir.mkdir(parents=True, exist_ok=True)
    check_not_edited(run_dir, "build", restart)
    check_fingerprint(run_dir, "build", fingerprint, fingerprint_file=BUILD_FINGERPRINT, state=BUILD_STATE, restart=restart)
    complete_build_log(run_dir)
    _check_same_build_set(run_dir, ids)
    # The settings of the build these checkpoints belong to (equal in everything that shapes results).
    write_run_config(run_dir, cfg)


def _architects(cfg: RunConfig, embedder: Any, client: Callable[[str], Any], exclude: frozenset,
                custom: Any = None) -> tuple[Any, Any]:
    """The architect the config names (or ``custom``) and the offline architect that may write a
    step the LLM architect could not (only with ``build.architect.fallback: offline``)."""
    if custom is not None:
        return custom, None
    b = cfg.build
    offline = EmbeddingArchitect(
        embedder.encode,
        make_namer(b.naming, embedder.encode, client),
        merge_threshold=b.architect.merge_threshold,
        max_descriptors=b.max_descriptors,
        **b.grouping.model_dump(),
    )
    if b.architect.kind != "llm":
        return offline, None
    from agentictagger.vocab.llm_agents import LLMArchitect

    architect = LLMArchitect(
        client(b.architect.llm),
        min_count=b.min_descriptors,
        max_count=b.max_descriptors,
        max_validation_retries=b.architect.max_validation_retries,
        max_tokens=b.architect.max_tokens,
        brand_terms=exclude,
    )
    # Only invalid answers may hand a step to the offline architect, and only when asked to.
    return architect, offline if b.architect.fallback == "offline" else None


def _annotator(cfg: RunConfig, embedder: Any, client: Callable[[str], Any]) -> Any:
    """The annotator the config names: LLM calls, or the offline embedding judge."""
    b = cfg.build
    if b.annotator.kind == "llm":
        from agentictagger.vocab.llm_agents import LLMAnnotator

        ann_llm = role_llm(cfg, b.annotator.llm)
        return LLMAnnotator(
            client(b.annotator.llm),
            output=b.annotator.output,
            items_per_call=b.annotator.items_per_call,
            choice_mode=ann_llm.choice_mode if ann_llm.backend == "embedded" else "generate",
        )
    return EmbeddingAnnotator(
        embedder.encode,
        threshold=b.annotator.threshold,
        margin=b.annotator.margin,
        threshold_step=b.annotator.threshold_step,
        outlier_z=b.annotator.outlier_z,
        judge=b.annotator.judge,
    )


def _progress_with_usage(progress: Callable[[dict], None] | None, usage: Any) -> Callable[[dict], None]:
    """The builder's progress callback, with the run's LLM calls, tokens and cost added."""

    def report(stats: dict) -> None:
        if progress is None:
            return
        if usage is not None:
            total = usage.total()
            stats = {**stats, "usage": {"calls": total.calls, "cache_hits": total.cache_hits,
                                        "tokens": total.prompt_tokens + total.completion_tokens, "cost": total.cost_usd}}
        progress(stats)

    return report


def _check_same_build_set(run_dir: Path, ids: list[str]) -> None:
    path = run_dir / "build_state" / "build_items.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != ids:
            raise ValueError(
                f"{run_dir} holds a build over different items (catalog, subsample or seed changed). "
                "Use a new run folder, or delete it to start over."
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids), encoding="utf-8")


def _load_usage(run_dir: Path) -> Any:
    """The build's usage tracker: every call is appended to ``usage.jsonl`` as it happens (a
    resumed build adds to what killed ones logged); a ``usage.json`` from before logs existed
    seeds the log."""
    from agentictagger.llm.usage import UsageTracker

    return UsageTracker.with_log(run_dir / "usage.jsonl", carried_from=run_dir / "usage.json")


def _save_usage(run_dir: Path, usage: Any, embed_s: float, n_items: int) -> None:
    """``usage.json``: the sum of ``usage.jsonl``, written atomically (a full disk leaves the old one)."""
    from agentictagger.llm.usage import UsageTracker
    from agentictagger.files import atomic_write_text

    usage.sync()
    data: dict[str, Any] = UsageTracker.from_log(run_dir / "usage.jsonl").to_dict()
    data["embedding"] = {"items": n_items, "seconds": round(embed_s, 3)}
    atomic_write_text(run_dir / "usage.json", json.dumps(data, indent=1))
