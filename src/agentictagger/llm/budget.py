"""How much of a model's context a prompt may use, shared by every role that trims its prompts
(architect, annotators, namer, assigners)."""

from __future__ import annotations

import logging
from typing import Any, Iterable, TypeVar

from agentictagger.llm.types import ChatRequest, LLMError

log = logging.getLogger(__name__)
T = TypeVar("T")


class PromptTooLong(LLMError):
    """Even the most trimmed prompt does not fit the model's context."""


class PromptBudget:
    """How many prompt tokens a request may use: the context minus the answer's max_tokens and a
    margin, counted by the client (exactly on a local server, conservatively otherwise).

    With ``lower_answer``, an answer budget that would leave the prompt less than half the
    context is lowered to half the context (logged; the caller sends ``self.max_tokens``): a
    prompt trimmed to nothing is worse than a shorter cap on a JSON answer that rarely needs it."""

    def __init__(self, client: Any, max_tokens: int, what: str, lower_answer: bool = True) -> None:
        self.client = client
        self.context = getattr(client, "context_tokens", None)
        self.max_tokens = max_tokens
        if self.context:
            self.margin = 32 + self.context // 50
            half = self.context // 2 - self.margin
            if lower_answer and self.context - max_tokens - self.margin < half and max_tokens > half:
                self.max_tokens = max(64, half)
                log.warning(
                    "%s: max_tokens %d leaves too little of the %d-token context for the prompt; using %d",
                    what, max_tokens, self.context, self.max_tokens,
                )
        else:
            self.margin = 0

    @property
    def prompt_tokens(self) -> int | None:
        return self.context - self.max_tokens - self.margin if self.context else None

    def count(self, request: ChatRequest) -> int:
        count = getattr(self.client, "count_tokens", None)
        if callable(count):
            return int(count(request))
        return sum(len(m.content) for m in request.messages) // 3

    def fits(self, request: ChatRequest) -> bool:
        limit = self.prompt_tokens
        return limit is None or self.count(request) <= limit

    def first_fit(self, options: Iterable[tuple[ChatRequest, T]], what: str, remedy: str) -> tuple[int, T]:
        """The first of ``options`` (request, what built it), tried in order, whose request fits:
        (its position, what built it). Requests are built lazily. When none fits, PromptTooLong
        saying ``what`` did not fit this context and ``remedy``."""
        for k, (request, payload) in enumerate(options):
            if self.fits(request):
                return k, payload
        raise PromptTooLong(f"{what} does not fit the model's context ({self.context} tokens) {remedy}")
