"""The one request/response interface every backend speaks.

Algorithms build a :class:`ChatRequest`, hand it to an :class:`~agentictagger.llm.client.LLMClient`
and read a :class:`ChatResponse`; they never know which backend answered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, Union, runtime_checkable
from agentictagger.errors import LLMError, TransientLLMError, InvalidAnswerError  # noqa: F401 (defined in errors.py, with every cross-layer error)

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChoiceConstraint:
    """The answer must be exactly one of ``choices``."""

    choices: tuple[str, ...]
    kind: Literal["choice"] = "choice"

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("ChoiceConstraint needs at least one choice")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError("ChoiceConstraint choices must be unique")


@dataclass(frozen=True)
class JsonSchemaConstraint:
    """The answer must be JSON that validates against ``schema`` (objects, arrays, enums)."""

    schema: dict[str, Any]
    name: str = "answer"
    kind: Literal["json_schema"] = "json_schema"
    #: Append the schema to the prompt. False when the prompt already shows the answer's shape and
    #: the backend enforces the schema itself (``structured_output: json_schema``): the schema's
    #: JSON costs ~100 prompt tokens a call, seconds each on a small local model.
    show_schema: bool = True


Constraint = Union[ChoiceConstraint, JsonSchemaConstraint]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float = 1.0
    seed: int | None = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    params: SamplingParams = field(default_factory=SamplingParams)
    constraint: Constraint | None = None
    # Picks a ChoiceConstraint by scoring each choice's log-probability instead of generating;
    # only backends that expose token log-probabilities (embedded) support it.
    choice_mode: Literal["generate", "likelihood"] = "generate"

    @staticmethod
    def chat(
        system: str | None,
        user: str,
        *,
        constraint: Constraint | None = None,
        params: SamplingParams | None = None,
        choice_mode: Literal["generate", "likelihood"] = "generate",
    ) -> "ChatRequest":
        msgs: list[Message] = []
        if system:
            msgs.append(Message("system", system))
        msgs.append(Message("user", user))
        return ChatRequest(tuple(msgs), params or SamplingParams(), constraint, choice_mode)

    def canonical(self) -> dict[str, Any]:
        return {
            "messages": [asdict(m) for m in self.messages],
            "params": asdict(self.params),
            "constraint": _canonical_constraint(self.constraint),
            "choice_mode": self.choice_mode,
        }

    def cache_key(self, model_identity: str) -> str:
        """SHA-256 of the canonical request plus the model identity (never the API key)."""
        blob = json.dumps(
            {"model": model_identity, "request": self.canonical()},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _canonical_constraint(c: Constraint | None) -> dict[str, Any] | None:
    if c is None:
        return None
    out = asdict(c)
    if out.get("show_schema") is True:
        del out["show_schema"]  # the default: cache keys stay those of requests made before it existed
    return out


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the backend did not have to evaluate (prefix/KV cache reuse).
    cached_prompt_tokens: int = 0


@dataclass
class ChatResponse:
    text: str
    parsed: Any = None  # the chosen string for a ChoiceConstraint, the JSON value for a schema
    usage: TokenUsage = field(default_factory=TokenUsage)
    cached: bool = False
    latency_s: float = 0.0
    model: str = ""
    attempts: int = 1


@runtime_checkable
class Backend(Protocol):
    """A thin adapter: one request in, one raw response out. No cache, no retries here."""

    def identity(self) -> str:
        """A stable string naming the model and anything that changes its answers."""
        ...

    def complete(self, request: ChatRequest) -> ChatResponse: ...
