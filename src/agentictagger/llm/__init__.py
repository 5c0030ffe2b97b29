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
from agentictagger.llm.cache import ResponseCache  # noqa: F401,E402
from agentictagger.llm.client import LLMClient  # noqa: F401,E402
from agentictagger.llm.factory import make_backend, make_client  # noqa: F401,E402
from agentictagger.llm.usage import StageUsage, UsageTracker  # noqa: F401,E402
from agentictagger.llm.validate import validate_answer  # noqa: F401,E402
