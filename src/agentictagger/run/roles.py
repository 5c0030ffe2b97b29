"""The roles a run fills from its config: the one factory of LLM clients (one client per named
endpoint, sharing the run's usage log and response cache), the embedder, and the fingerprint of a
role object passed in instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from agentictagger.config import LLMConfig, RunConfig


def role_llm(cfg: RunConfig, name: str) -> LLMConfig:
    if name in cfg.llms:
        return cfg.llms[name]
    if "default" in cfg.llms:
        return cfg.llms["default"]
    raise KeyError(f"no LLM named {name!r} (or 'default') under 'llms' in the config")


def llm_client_factory(cfg: RunConfig, usage: Any = None) -> Callable[[str], Any]:
    """``factory(role_name) -> LLMClient`` over the run's named LLM endpoints, one client each."""
    from agentictagger.llm.factory import make_client

    clients: dict[str, Any] = {}

    def factory(name: str) -> Any:
        if name not in clients:
            clients[name] = make_client(role_llm(cfg, name), Path(cfg.cache_dir) / "llm", usage=usage)
        return clients[name]

    return factory


def role_fingerprint(role: str, obj: Any) -> dict[str, str]:
    """A role object passed in (not built from the config) is part of what shapes a stage's
    results: its class goes into the stage's fingerprint, so a checkpoint made by another one is
    not resumed."""
    if obj is None:
        return {}
    cls = type(obj)
    return {f"roles.{role}": f"{cls.__module__}.{cls.__qualname__}"}


def make_embedder(cfg: RunConfig) -> Any:
    """The embedding model the config names, over the run's embedding cache."""
    from agentictagger.embed import Embedder

    return Embedder(cfg.embedding, cache_dir=cfg.cache_dir)
