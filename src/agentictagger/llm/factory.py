"""Build a backend / client from an :class:`~agentictagger.config.LLMConfig`."""

from __future__ import annotations

from pathlib import Path

from agentictagger.config import LLMConfig
from agentictagger.llm.client import LLMClient
from agentictagger.llm.types import Backend
from agentictagger.llm.usage import UsageTracker


def make_backend(cfg: LLMConfig) -> Backend:
    """The backend ``cfg.backend`` names; its dependencies are imported only when chosen."""
    if cfg.backend == "embedded":
        try:
            from agentictagger.llm.backends.embedded import EmbeddedBackend
        except ImportError as exc:
            if exc.name == "agentictagger.llm.backends.embedded":
                raise
            raise ImportError(
                f"the embedded LLM backend needs llama-cpp-python ({exc}); install it with "
                "`make embedded` or `pip install 'agentictagger[embedded]'`, or set llm.backend: openai"
            ) from exc
        return EmbeddedBackend(cfg)
    if cfg.backend == "openai":
        from agentictagger.llm.backends.openai_compat import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.backend == "local":
        from agentictagger.llm.backends.local import LocalBackend

        return LocalBackend(cfg)
    raise ValueError(f"unknown LLM backend {cfg.backend!r}; expected 'embedded', 'openai' or 'local'")


def make_client(cfg: LLMConfig, cache_dir: str | Path | None, usage: UsageTracker | None = None) -> LLMClient:
    """An :class:`LLMClient` around the configured backend, caching under ``cache_dir`` (None = off)."""
    return LLMClient(make_backend(cfg), cfg, cache_dir, usage)
