"""Backend for any OpenAI-compatible chat-completions server (OpenAI, Gemini, vLLM, Ollama,
llama-server, ...), through the official ``openai`` client.

Thin on purpose: the constraint becomes ``response_format`` / vLLM guided-decoding extras (and a
line in the prompt, for servers that ignore both), errors become Transient/permanent LLMErrors.
Retries, caching, validation and re-asks are the client's job, so the SDK's own retries are off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import openai

from agentictagger.config import LLMConfig
from agentictagger.llm.grammar import choice_grammar
from agentictagger.llm.types import (
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    JsonSchemaConstraint,
    LLMError,
    TokenUsage,
    TransientLLMError,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Sent to keyless local servers (llama-server, vLLM, Ollama): the SDK insists on some key.
LOCAL_DUMMY_KEY = "sk-local-no-key"
# Bump when the way requests are rendered changes, so old cache entries are not reused.
_PROMPT_FORMAT = "p1"
# Statuses the server itself says are worth retrying (the same set the SDK retries), plus every
# 5xx. Any other answer (400, 401, 403, 404, 422, ...) is the same on a retry: it fails at once.
_TRANSIENT_STATUS = {408, 409, 429}
#: The endpoint every line of a batch input file names (OpenAI Batch API).
BATCH_ENDPOINT = "/v1/chat/completions"
_T = TypeVar("_T")
_CONTEXT_OVERFLOW = re.compile(r"context (size|length|window)|exceed_context_size|maximum context|too many tokens", re.I)


def is_transient_status(status: int | None) -> bool:
    """Whether an HTTP status is worth asking again (429, 408, 409, 5xx); None (no answer) is."""
    return status is None or status in _TRANSIENT_STATUS or status >= 500


def is_local_url(url: str) -> bool:
    """Loopback / private-network / ``*.local`` hosts: self-hosted servers that need no key."""
    host = (urlparse(url).hostname or "").lower()
    if host in {"localhost", "host.docker.internal"} or host.endswith(".local") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified


#: Per thread: what to call once the current request's connection is open, just before its first
#: byte is written (set by the LLM client around one backend call, so usage counts a request when
#: it leaves: a refused connection counts nothing, and when the count cannot be logged, e.g. on
#: a full disk, the hook raises and the request is not sent).
_SENT = threading.local()


@contextlib.contextmanager
def on_request_sent(fn: Callable[[], None]) -> Any:
    """Call ``fn`` when this thread's next HTTP request is about to be written to its open connection."""
    _SENT.fn = fn
    try:
        yield
    finally:
        _SENT.fn = None


def _trace(name: str, info: Any) -> None:
    if name.endswith("send_request_headers.started"):
        fn = getattr(_SENT, "fn", None)
        if fn is not None:
            fn()


def _add_trace(request: Any) -> None:
    """httpx request hook: follow the request's low-level events (see :func:`on_request_sent`)."""
    request.extensions = {**request.extensions, "trace": _trace}


def choice_schema(choices: tuple[str, ...]) -> dict[str, Any]:
    """The object a ChoiceConstraint is wrapped in for JSON-schema structured output.

    Written to satisfy OpenAI's strict mode (every property required, no extras)."""
    return {
        "type": "object",
        "properties": {"choice": {"type": "string", "enum": list(choices)}},
        "required": ["choice"],
        "additionalProperties": False,
    }


#: Keywords sent without ``strict`` (a hint to the model; the client still validates the answer):
#: string lengths are not in every provider's strict subset, and an unsupported keyword in strict
#: mode is a 400 error.
STRICT_UNSUPPORTED = frozenset({"minLength", "maxLength"})


def is_strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's ``strict`` mode accepts ``schema``: every object lists all its properties
    as required and forbids additional ones, and no keyword of ``STRICT_UNSUPPORTED`` is used.
    Sending strict=True otherwise is a 400 error."""
    if isinstance(schema, list):
        return all(is_strict_compatible(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if STRICT_UNSUPPORTED & set(schema):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(props):
            return False
    return all(is_strict_compatible(v) for k, v in schema.items() if k not in {"enum", "const", "default"})


def _schema_name(name: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64]
    return cleaned or "answer"


def _choice_lines(choices: tuple[str, ...]) -> str:
    return "\n".join(f"- {c}" for c in choices)


def constraint_hint(request: ChatRequest, structured_output: str) -> str | None:
    """Text appended to the last user message describing the required answer format."""
    c = request.constraint
    if isinstance(c, ChoiceConstraint):
        if structured_output == "json_schema":
            return (
                'Answer with a JSON object {"choice": "<option>"} where <option> is exactly one of these '
                "options, copied verbatim:\n" + _choice_lines(c.choices)
            )
        return "Answer with exactly one of these options, copied verbatim, and nothing else:\n" + _choice_lines(
            c.choices
        )
    if isinstance(c, JsonSchemaConstraint):
        if not c.show_schema and structured_output == "json_schema":
            return None  # the prompt shows the answer's shape; the server holds it to the schema
        return (
            "Answer with only a JSON value (no prose, no code fence) that validates against this JSON schema:\n"
            + json.dumps(c.schema, ensure_ascii=False, sort_keys=True)
        )
    return None


class OpenAIBackend:
    """One model on one OpenAI-compatible endpoint. Thread-safe (the SDK client is)."""

    #: Calls the hook of :func:`on_request_sent` when a request has left.
    reports_sent = True

    def __init__(self, cfg: LLMConfig):
        self.cfg = cfg
        self.base_url = (cfg.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.model = cfg.model
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if not key:
            if not is_local_url(self.base_url):
                if not cfg.api_key_env:
                    raise LLMError(
                        f"no API key for {self.base_url}: llm.api_key_env is empty; set it to the name of "
                        "the environment variable that holds the key (e.g. OPENAI_API_KEY)"
                    )
                raise LLMError(
                    f"no API key for {self.base_url}: environment variable {cfg.api_key_env} is not set. "
                    f"Export it (export {cfg.api_key_env}=...) or set llm.api_key_env to the variable "
                    "that holds the key."
                )
            key = LOCAL_DUMMY_KEY
        # Kept only to scrub it from error messages; never logged, cached or written.
        self._secret = key
        self._client = openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=cfg.timeout_s,
            max_retries=0,  # the LLMClient retries, with its own backoff and accounting
            # A loopback server is never reached through a proxy from the environment.
            http_client=openai.DefaultHttpxClient(trust_env=not _is_loopback(self.base_url), event_hooks={"request": [_add_trace]}),
        )
        self._warned_likelihood = False
        #: Turns a JSON schema into a server-side grammar (``extra_body["grammar"]``) sent in place
        #: of ``response_format``; set by backends that know their server (llama.cpp), else None.
        self.grammar: Callable[[dict[str, Any]], str | None] | None = None
        #: Turns a ChoiceConstraint's choices into a server-side grammar whose language is exactly
        #: the choices, sent with no JSON wrapper; set for ``structured_output: llamacpp`` and by
        #: backends that know their server (llama.cpp), else None. Wrapped as {"choice": <enum>}
        #: under llama.cpp's compact JSON grammar, Qwen 1.5B gave one option to most items (88 % of
        #: 50 Scientific items; ``bench/choice_decoding.py``).
        self.choice_grammar: Callable[[tuple[str, ...]], str] | None = (
            choice_grammar if cfg.structured_output == "llamacpp" else None
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    def identity(self) -> str:
        return f"openai:{self.base_url}:{self.model}:so={self.cfg.structured_output}:{_PROMPT_FORMAT}"

    # -- request -----------------------------------------------------------------------------
    def build_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create`` (public for inspection/tests)."""
        mode = "json_schema" if self._json_schema_mode else self.cfg.structured_output
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        c = request.constraint
        plain_choice = self._plain_choice(request)
        if plain_choice:
            # The grammar holds the answer to the choices; they are listed only when the prompt
            # does not already show every one of them (a second list cost time and no accuracy).
            shown = "\n".join(m["content"] for m in messages if m["role"] == "user")
            hint = None if all(ch in shown for ch in c.choices) else constraint_hint(request, "prompt")  # type: ignore[union-attr]
        else:
            hint = constraint_hint(request, mode)
        if hint:
            for m in reversed(messages):
                if m["role"] == "user":
                    m["content"] = f"{m['content']}\n\n{hint}"
                    break
            else:
                messages.append({"role": "user", "content": hint})
        p = request.params
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": p.temperature,
            "max_tokens": p.max_tokens,
            "top_p": p.top_p,
        }
        if p.seed is not None:
            kwargs["seed"] = p.seed
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if plain_choice:
            kwargs["extra_body"] = {"grammar": self.choice_grammar(c.choices)}  # type: ignore[misc,union-attr]
            return kwargs
        if c is not None and mode == "json_schema":
            if isinstance(c, ChoiceConstraint):
                schema, name, strict = choice_schema(c.choices), "choice", True
            else:
                schema, name, strict = c.schema, _schema_name(c.name), is_strict_compatible(c.schema)
            grammar = self.grammar(schema) if self.grammar is not None else None
            if grammar is not None:
                kwargs["extra_body"] = {"grammar": grammar}
                return kwargs
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict},
            }
        elif c is not None and mode == "guided":
            if isinstance(c, ChoiceConstraint):
                kwargs["extra_body"] = {"guided_choice": list(c.choices)}
            else:
                kwargs["extra_body"] = {"guided_json": c.schema}
        return kwargs

    @property
    def _json_schema_mode(self) -> bool:
        """'llamacpp' sends JSON constraints as 'json_schema' does; only choices differ."""
        return self.cfg.structured_output in ("json_schema", "llamacpp")

    def _plain_choice(self, request: ChatRequest) -> bool:
        """Whether a choice is asked for as the bare option under a grammar (no JSON wrapper)."""
        return isinstance(request.constraint, ChoiceConstraint) and self._json_schema_mode and self.choice_grammar is not None

    # -- call --------------------------------------------------------------------------------
    def complete(self, request: ChatRequest) -> ChatResponse:
        if request.choice_mode == "likelihood" and not self._warned_likelihood:
            self._warned_likelihood = True
            log.warning(
                "choice_mode='likelihood' needs token log-probabilities; %s generates the choice instead", self
            )
        completion = self._api(lambda: self._client.chat.completions.create(**self.build_kwargs(request)))
        return self._to_response(request, completion)

    def _api(self, call: Callable[[], _T]) -> _T:
        """``call()`` with the SDK's errors turned into Transient/permanent LLMErrors."""
        try:
            return call()
        except openai.APITimeoutError as exc:
            raise TransientLLMError(f"{self.base_url}: request timed out after {self.cfg.timeout_s}s") from exc
        except openai.APIConnectionError as exc:
            raise TransientLLMError(f"{self.base_url}: connection failed: {self._scrub(str(exc))}") from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except openai.APIError as exc:
            raise LLMError(f"{self.base_url}: {self._scrub(str(exc))}") from exc

    # -- Batch API (files + batches endpoints; llm.mode: batch drives these from the client) -----
    def batch_line(self, request: ChatRequest, custom_id: str) -> dict[str, Any]:
        """One line of a batch input file: the same body an online call sends (vLLM extras inline)."""
        kwargs = self.build_kwargs(request)
        body = {k: v for k, v in kwargs.items() if k != "extra_body"}
        body.update(kwargs.get("extra_body") or {})
        return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}

    def upload_batch_file(self, data: bytes, filename: str) -> str:
        """Upload a JSONL batch input file (``POST /files``, purpose "batch"); returns its file id."""
        return self._api(lambda: self._client.files.create(file=(filename, data), purpose="batch")).id

    def create_batch(self, input_file_id: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """``POST /batches`` over an uploaded input file (24 h window); the batch object as a dict."""
        batch = self._api(
            lambda: self._client.batches.create(
                input_file_id=input_file_id,
                endpoint=BATCH_ENDPOINT,
                completion_window="24h",
                metadata=metadata or None,
            )
        )
        return batch.model_dump()

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return self._api(lambda: self._client.batches.retrieve(batch_id)).model_dump()

    def list_batches(self, after: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], bool]:
        """One page of this key's batches (newest first) and whether more follow."""
        kwargs: dict[str, Any] = {"limit": limit}
        if after:
            kwargs["after"] = after
        page = self._api(lambda: self._client.batches.list(**kwargs))
        return [b.model_dump() for b in page.data], bool(getattr(page, "has_more", False))

    def file_content(self, file_id: str) -> bytes:
        """A file's bytes (``GET /files/{id}/content``): a batch's output or error file."""
        return self._api(lambda: self._client.files.content(file_id)).content

    def response_from_body(self, request: ChatRequest, body: dict[str, Any]) -> ChatResponse:
        """A batch output line's chat completion, read exactly as an online answer is."""
        return self._to_response(request, self._completion(body))

    def usage_from_body(self, body: dict[str, Any]) -> TokenUsage:
        """The token usage of a batch output line's chat completion (what the provider bills)."""
        return _usage(self._completion(body))

    def _completion(self, body: Any) -> Any:
        try:
            return openai.types.chat.ChatCompletion.model_validate(body)
        except ValueError as exc:
            raise TransientLLMError(f"{self.base_url}: batch answer is not a chat completion ({exc})") from exc

    def _status_error(self, exc: openai.APIStatusError) -> LLMError:
        status = exc.status_code
        msg = f"{self.base_url} answered HTTP {status}: {self._scrub(_error_text(exc))}"
        if is_transient_status(status):
            err: LLMError = TransientLLMError(msg)
            retry_after = _retry_after(exc)
            if retry_after is not None:
                err.retry_after = retry_after  # type: ignore[attr-defined]
            err.status = status  # type: ignore[attr-defined]
            return err
        hint = {
            401: " (not retried: check the API key in the environment variable " + str(self.cfg.api_key_env) + ")",
            403: f" (not retried: the key has no access to model {self.model!r} or to this endpoint)",
            404: f" (not retried: check base_url and that model {self.model!r} exists there)",
            422: " (not retried: the server rejected the request's parameters)",
        }.get(status, " (not retried)")
        if status == 400 and _CONTEXT_OVERFLOW.search(msg):
            hint = (
                " (not retried: the prompt does not fit the model's context; raise llm.n_ctx for a local "
                "model, or set llm.context_tokens to the real context so prompts are trimmed to it)"
            )
        err = LLMError(msg + hint)
        err.status = status  # type: ignore[attr-defined]
        return err

    def _to_response(self, request: ChatRequest, completion: Any) -> ChatResponse:
        if not getattr(completion, "choices", None):
            raise TransientLLMError(f"{self.base_url}: response without choices")
        message = completion.choices[0].message
        text = message.content or ""
        if isinstance(request.constraint, ChoiceConstraint) and self._json_schema_mode and not self._plain_choice(request):
            text = _unwrap_choice(text)
        return ChatResponse(text=text, usage=_usage(completion), model=completion.model or self.model)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def close(self) -> None:
        self._client.close()


def _usage(completion: Any) -> TokenUsage:
    u = getattr(completion, "usage", None)
    if u is None:
        return TokenUsage()
    details = getattr(u, "prompt_tokens_details", None)
    return TokenUsage(
        prompt_tokens=int(u.prompt_tokens or 0),
        completion_tokens=int(u.completion_tokens or 0),
        cached_prompt_tokens=int(getattr(details, "cached_tokens", 0) or 0) if details else 0,
    )


def _is_loopback(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unwrap_choice(text: str) -> str:
    """``{"choice": "x"}`` -> ``x``; anything else is returned unchanged for the validator."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict) and isinstance(value.get("choice"), str):
        return value["choice"]
    return text


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        return json.dumps(body)[:500]
    return str(exc.message)[:500]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None
