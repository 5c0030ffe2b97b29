"""build -> assign -> report, each a function over the run folder (the CLI calls these)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentictagger.catalog import Catalog
from agentictagger.config import RunConfig
from agentictagger.vocabulary import Vocabulary


def llm_client_factory(cfg: RunConfig, usage: Any = None):
    """``factory(role_name) -> LLMClient`` over the run's named LLM endpoints, one client each."""
    from agentictagger.llm.factory import make_client
    from agentictagger.vocab.api import role_llm

    clients: dict[str, Any] = {}

    def factory(name: str) -> Any:
        if name not in clients:
            clients[name] = make_client(role_llm(cfg, name), Path(cfg.cache_dir) / "llm", usage=usage)
        return clients[name]

    return factory


def assign(cfg: RunConfig, catalog: Catalog, progress: Any = None) -> Any:
    """Assign every catalog item a valid path; writes assignments and the semantic-ID table."""
    from agentictagger.assign import run_assign
    from agentictagger.embed import Embedder
    from agentictagger.llm.usage import UsageTracker

    run_dir = Path(cfg.run_dir)
    vocab = Vocabulary.load(run_dir / "vocabulary.json")
    usage = UsageTracker.load(run_dir / "assign_usage.json")
    embedder = Embedder(cfg.embedding, cache_dir=cfg.cache_dir)
    try:
        return run_assign(
            catalog, vocab, cfg.assign, run_dir, embedder=embedder,
            llm_client_factory=llm_client_factory(cfg, usage), progress=progress,
        )
    finally:
        usage.save(run_dir / "assign_usage.json")


def report(cfg: RunConfig, catalog: Catalog | None) -> dict:
    from agentictagger.diagnostics import run_report

    return run_report(cfg.run_dir, catalog)


def assign_and_report(cfg: RunConfig, catalog: Catalog, console: Any) -> dict:
    from agentictagger.diagnostics import print_diagnostics

    assignment = assign(cfg, catalog)
    diag = report(cfg, catalog)
    print_diagnostics(diag, console)
    run_dir = Path(cfg.run_dir)
    console.print(
        f"assigned {len(assignment)} items. Outputs in {run_dir}/: "
        "vocabulary.json, assignments.jsonl, semantic_ids.parquet/.jsonl, diagnostics.json, build_log.jsonl, usage.json"
    )
    return diag
