"""LLM layer: one request/response interface, thin backends, and the client around them."""

from agentictagger.llm.types import (  # noqa: F401
    Backend,
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    InvalidAnswerError,
    JsonSchemaConstraint,
    LLMError,
    Message,
    SamplingParams,
    TokenUsage,
    TransientLLMError,
)
