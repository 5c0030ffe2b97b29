"""'local' backend: llama.cpp's OpenAI-compatible server, run in-process by ``xllamacpp``.

One server per (model file, context, threads, slots) per process, started on first use on a
free localhost port, shared by every client that asks for the same thing, and stopped at exit.
Requests go through :class:`~agentictagger.llm.backends.openai_compat.OpenAIBackend`, so output
constraints (``response_format`` JSON schema, which llama.cpp compiles to a grammar), errors,
retries, the response cache and usage accounting are exactly those of any OpenAI-compatible
server. What this module adds:

* the model comes from an alias (:func:`agentictagger.llm.models.resolve_model`) or a path;
* the cache identity names the model file by SHA-256 and size, never the temporary port;
* ``context_tokens()`` is the server's per-request context, and ``count_tokens()`` renders the
  chat template and tokenizes on the server, so prompts can be trimmed to fit exactly;
* JSON answers are decoded under a compact grammar, and a choice among options under a grammar
  of the bare options (no JSON wrapper, which made a small model answer one option for nearly
  every question).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agentictagger.config import LLMConfig
from agentictagger.llm.backends.openai_compat import _PROMPT_FORMAT, OpenAIBackend
from agentictagger.llm.grammar import choice_grammar
from agentictagger.llm.models import DEFAULT_LOCAL_MODEL, file_identity, resolve_model
from agentictagger.llm.types import ChatRequest, ChatResponse, LLMError

log = logging.getLogger(__name__)

# A 1.5B model on 2 CPU threads needs minutes for a long architect answer, and requests queue
# behind each other on the server's slots: the per-request timeout of a hosted API is too short.
LOCAL_DEFAULT_TIMEOUT_S = 900.0
_HTTP_TIMEOUT_S = 30.0


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ImportError(
            f"the local LLM backend needs xllamacpp ({exc}); install it with `make local-llm` or "
            "`pip install 'agentictagger[local]'`"
        ) from exc
    return xllamacpp


class LocalServer:
    """One in-process llama.cpp server (``xllamacpp.Server``); stopped by :meth:`stop`."""

    def __init__(self, model_path: Path, n_ctx: int, n_threads: int, n_parallel: int) -> None:
        xllamacpp = _import_xllamacpp()
        if n_ctx < 64 or n_threads < 1 or n_parallel < 1:
            raise ValueError(f"local server: bad n_ctx={n_ctx}, n_threads={n_threads}, n_parallel={n_parallel}")
        self.model_path = Path(model_path)
        self.n_threads, self.n_parallel = n_threads, n_parallel
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        # llama.cpp splits n_ctx between the slots: give each slot the configured context.
        params.n_ctx = n_ctx * n_parallel
        params.n_parallel = n_parallel
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.port = 0  # the OS picks a free port
        params.hostnames = ["127.0.0.1"]
        params.ui = False
        params.verbosity = 0  # llama.cpp logs every load and request to stderr otherwise
        t0 = time.perf_counter()
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise LLMError(
                f"the local llama.cpp server could not load {self.model_path} (n_ctx={n_ctx}, "
                f"slots={n_parallel}): {exc}. Is it a GGUF file, and is there memory for it?"
            ) from exc
        self.start_seconds = time.perf_counter() - t0
        self.url = str(self._server.listening_address).rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        props = self._get("/props")
        settings = props.get("default_generation_settings", {}) if isinstance(props, dict) else {}
        self.n_ctx = int(settings.get("n_ctx") or n_ctx)  # per slot = what one request may use
        log.info("local llama.cpp server for %s on %s: n_ctx %d per slot, %d slot(s), %d thread(s), started in %.1fs",
                 self.model_path.name, self.url, self.n_ctx, n_parallel, n_threads, self.start_seconds)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _get(self, path: str) -> Any:
        with self._opener.open(self.url + path, timeout=_HTTP_TIMEOUT_S) as r:
            return json.loads(r.read().decode("utf-8"))

    def _post(self, path: str, body: dict) -> Any:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(req, timeout=_HTTP_TIMEOUT_S) as r:
                return json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise LLMError(f"local server {path} answered HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise LLMError(f"local server {path}: {exc}") from exc

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens the server will evaluate for these chat messages (template included)."""
        prompt = self._post("/apply-template", {"messages": messages})["prompt"]
        tokens = self._post("/tokenize", {"content": prompt, "add_special": True, "parse_special": True})["tokens"]
        return len(tokens)

    @property
    def stopped(self) -> bool:
        return getattr(self, "_server", None) is None

    def stop(self) -> None:
        server, self._server = getattr(self, "_server", None), None
        del server  # xllamacpp stops the server when the object goes away


#: Part of the cache identity: answers are decoded under :func:`compact_grammar`, choices under
#: :func:`~agentictagger.llm.grammar.choice_grammar` (bare options, no JSON wrapper).
_GRAMMAR_FORMAT = "compact-json;plain-choice"


def compact_grammar(schema: dict[str, Any]) -> str | None:
    """llama.cpp's grammar for ``schema`` with the JSON written compactly, or None when this
    llama.cpp build cannot (its grammar engine is not llguidance): the server then gets the schema
    as ``response_format``, whose grammar lets the model indent. Measured with Qwen 1.5B: it
    pretty-prints when allowed to, and the indentation is half of a short answer's tokens (46
    vs 22 for two names in a spot check, not a committed bench), at ~8 tokens/s on 2 cores."""
    xllamacpp = _import_xllamacpp()
    grammar = xllamacpp.json_schema_to_grammar(json.dumps({**schema, "x-guidance": {"whitespace_flexible": False}}))
    return grammar if grammar.startswith("%llguidance") and "whitespace_flexible" in grammar else None


_servers: dict[tuple[str, int, int, int], LocalServer] = {}
_servers_lock = threading.Lock()


def get_server(model_path: Path, n_ctx: int, n_threads: int, n_parallel: int) -> LocalServer:
    """The process's server for these settings, started on first call (thread-safe)."""
    key = (str(Path(model_path).resolve()), int(n_ctx), int(n_threads), int(n_parallel))
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = LocalServer(Path(key[0]), n_ctx, n_threads, n_parallel)
            _servers[key] = server
        return server


def running_servers() -> list[LocalServer]:
    with _servers_lock:
        return list(_servers.values())


def shutdown_servers() -> None:
    """Stop every local server of this process (also run at interpreter exit)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for s in servers:
        s.stop()


atexit.register(shutdown_servers)


class LocalBackend:
    """An OpenAI-compatible backend on this process's llama.cpp server for ``cfg``'s model."""

    #: Requests go through an OpenAIBackend in the calling thread, which reports when one has left.
    reports_sent = True

    def __init__(self, cfg: LLMConfig) -> None:
        _import_xllamacpp()  # fail now, with the install command, not at the first call
        self.cfg = cfg
        self.model_path = resolve_model(cfg.model_path or DEFAULT_LOCAL_MODEL)
        self.sha256, self.size = file_identity(self.model_path)
        self._inner: OpenAIBackend | None = None
        self._server: LocalServer | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_path.name!r}, n_ctx={self.cfg.n_ctx})"

    def identity(self) -> str:
        # The file's content, not its path or the server's port, decides the answers.
        return (
            f"local:{self.model_path.name}:sha256={self.sha256}:size={self.size}:so={self.cfg.structured_output}:"
            f"{_PROMPT_FORMAT}:{_GRAMMAR_FORMAT}"
        )

    @property
    def server(self) -> LocalServer:
        self._ensure()
        assert self._server is not None
        return self._server

    def _ensure(self) -> OpenAIBackend:
        with self._lock:
            if self._inner is not None and self._server is not None and self._server.stopped:
                self._inner.close()  # shut down (shutdown_servers): start a new one
                self._inner = None
            if self._inner is None:
                cfg = self.cfg
                self._server = get_server(self.model_path, cfg.n_ctx, cfg.n_threads, cfg.n_parallel)
                timeout = cfg.timeout_s if "timeout_s" in cfg.model_fields_set else LOCAL_DEFAULT_TIMEOUT_S
                inner_cfg = cfg.model_copy(
                    update={"backend": "openai", "base_url": self._server.base_url, "api_key_env": None, "timeout_s": timeout}
                )
                self._inner = OpenAIBackend(inner_cfg)
                self._inner.grammar = compact_grammar
                self._inner.choice_grammar = choice_grammar
            return self._inner

    def build_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        return self._ensure().build_kwargs(request)

    def complete(self, request: ChatRequest) -> ChatResponse:
        resp = self._ensure().complete(request)
        resp.model = self.model_path.name
        return resp

    def context_tokens(self) -> int:
        """Tokens one request may use (prompt + answer): the server's context per slot."""
        return self.server.n_ctx

    def count_tokens(self, request: ChatRequest) -> int:
        """The exact prompt length of ``request`` as the server will evaluate it."""
        messages = self._ensure().build_kwargs(request)["messages"]
        return self.server.count_tokens(messages)

    def close(self) -> None:
        # The server is shared by the process (other clients may use it); only the HTTP client goes.
        with self._lock:
            if self._inner is not None:
                self._inner.close()
                self._inner = None
