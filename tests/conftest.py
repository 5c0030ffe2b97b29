"""Shared fixtures. ``fake_openai`` is a real local OpenAI-compatible server (see
tests/fake_openai_server.py); ``openai_cfg`` builds an LLMConfig pointing at it with tiny
backoff delays so retry tests take milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_openai_server import FakeOpenAIServer

from agentictagger.config import LLMConfig


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_cfg(fake_openai: FakeOpenAIServer) -> Callable[..., LLMConfig]:
    def make(**overrides: Any) -> LLMConfig:
        fields: dict[str, Any] = dict(
            backend="openai",
            model="fake-model",
            base_url=fake_openai.url,
            api_key_env="AGENTICTAGGER_TEST_KEY_UNSET",
            timeout_s=5.0,
            max_retries=3,
            backoff_base_s=0.001,
            backoff_max_s=0.01,
            max_reasks=2,
            max_concurrency=4,
        )
        fields.update(overrides)
        return LLMConfig(**fields)

    return make
