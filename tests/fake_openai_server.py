"""A real local HTTP server speaking the OpenAI ``/v1/chat/completions`` protocol, for tests.

It listens on 127.0.0.1 (a free port) in a background thread, so the real ``openai`` client and
the whole LLM stack (timeouts, status codes, JSON bodies) are exercised; nothing is mocked.

Scripting, in order of precedence for each request:
1. the queue: ``server.enqueue(reply, ...)`` (each entry used once, first in first out);
2. the handler: ``FakeOpenAIServer(handler=fn)`` or ``server.handler = fn``, called as
   ``fn(request_json)`` for every request the queue does not answer;
3. otherwise HTTP 400 "no scripted response", so a test that runs out of script fails loudly.

A queue entry or handler result may be:
- ``"text"``: HTTP 200, a chat completion whose message content is ``text``;
- ``(status, "text")``: ``status`` with that content (200) or an OpenAI-style error message;
- ``(status, {...})``: ``status`` with that JSON body as is;
- ``Reply(...)``: full control (delay before answering, headers, token usage);
- a callable: called with the request JSON, its result interpreted as above (queue only).

Server-side records: ``requests`` (path, headers, JSON body, arrival time and, once answered,
the status sent, the reply's ``tag``, the token usage of a 200 answer, when the answer was
written and whether writing it succeeded: best effort, a client that just hung up may still read
as reached), ``request_count``, ``max_concurrent`` (most requests being handled at once). A fault
script (bench/reliability.py) tags its replies (``Reply(tag="429")``) and reads these records to
tell paid answers from injected faults.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "Reply", "RecordedRequest", "completion_body", "last_user_message"]


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # a chat completion with this message content
    body: Any = None  # a raw JSON body instead (overrides ``content``)
    delay_s: float = 0.0  # wait before answering (longer than the client timeout = a timeout)
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int | None = None  # default: words in the request's messages
    completion_tokens: int | None = None  # default: words in ``content``
    cached_tokens: int | None = None  # reported as usage.prompt_tokens_details.cached_tokens
    tag: str = ""  # recorded on the request (e.g. which injected fault this reply is)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any
    received_at: float  # time.monotonic() on arrival
    status: int | None = None  # the HTTP status answered (None while in progress)
    tag: str = ""  # the reply's tag
    finished_at: float | None = None  # time.monotonic() when the answer was written (or failed to be)
    delivered: bool | None = None  # False: the client had hung up (a timeout, a killed process)
    usage: dict[str, Any] | None = None  # the token usage of a 200 answer (what a provider bills)


Handler = Callable[[dict[str, Any]], Any]


def last_user_message(request_json: dict[str, Any]) -> str:
    """The content of the last user message of a chat-completions request body."""
    for m in reversed(request_json.get("messages", [])):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def completion_body(
    content: str,
    *,
    model: str = "fake-model",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cached_tokens: int | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def _words(request_json: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in request_json.get("messages", []))


class FakeOpenAIServer:
    def __init__(self, handler: Handler | None = None, *, model: str = "fake-model"):
        self.handler = handler
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.max_concurrent = 0
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._active = 0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        server = self

        class _H(_RequestHandler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # cuts scripted delays short
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The ``base_url`` to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -------------------------------------------------------------------------
    def enqueue(self, *replies: Any) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget recorded requests, counters and queued replies (the handler stays)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.max_concurrent = 0

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def chat_bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    # -- internals -------------------------------------------------------------------------
    def _next_reply(self, request_json: dict[str, Any]) -> Reply:
        with self._lock:
            entry = self._queue.popleft() if self._queue else None
        if entry is None:
            if self.handler is None:
                return Reply(status=400, content="FakeOpenAIServer: no scripted response left for this request")
            entry = self.handler(request_json)
        elif callable(entry) and not isinstance(entry, Reply):
            entry = entry(request_json)
        return self._normalize(entry)

    @staticmethod
    def _normalize(entry: Any) -> Reply:
        if isinstance(entry, Reply):
            return entry
        if isinstance(entry, str):
            return Reply(content=entry)
        if isinstance(entry, tuple) and len(entry) == 2:
            status, payload = entry
            if isinstance(payload, str):
                return Reply(status=int(status), content=payload)
            return Reply(status=int(status), body=payload)
        if isinstance(entry, dict):
            return Reply(body=entry)
        raise TypeError(f"FakeOpenAIServer: cannot interpret scripted reply {entry!r}")

    def _render(self, reply: Reply, request_json: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if reply.body is not None:
            return reply.status, reply.body
        content = reply.content or ""
        if reply.status != 200:
            kind = "rate_limit_error" if reply.status == 429 else "server_error" if reply.status >= 500 else "invalid_request_error"
            return reply.status, {"error": {"message": content, "type": kind, "code": None, "param": None}}
        return 200, completion_body(
            content,
            model=str(request_json.get("model") or self.model),
            prompt_tokens=_words(request_json) if reply.prompt_tokens is None else reply.prompt_tokens,
            completion_tokens=len(content.split()) if reply.completion_tokens is None else reply.completion_tokens,
            cached_tokens=reply.cached_tokens,
        )


class _RequestHandler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> bool:
        """Write the answer; False when the client had hung up."""
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return False  # the client gave up (timeout); that is what the test wanted
        return True

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": self.fake.model, "object": "model", "owned_by": "fake"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        record = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
        tag, usage = "", None
        with fake._lock:
            fake.requests.append(record)
            fake._active += 1
            fake.max_concurrent = max(fake.max_concurrent, fake._active)
        try:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                status, payload, headers = 404, {"error": {"message": f"no route {self.path}"}}, {}
            elif not isinstance(body, dict):
                status, payload, headers = 400, {"error": {"message": "request body is not a JSON object"}}, {}
            else:
                reply = fake._next_reply(body)
                if reply.delay_s > 0:
                    fake._stopping.wait(reply.delay_s)
                status, payload = fake._render(reply, body)
                headers, tag = reply.headers, reply.tag
                usage = payload.get("usage") if status == 200 and isinstance(payload, dict) else None
        except Exception as exc:  # a bug in a test's handler: a 400 fails fast with the cause
            status, payload, headers = 400, {"error": {"message": f"handler raised {exc!r}"}}, {}
        finally:
            # Leave the "in flight" count before answering: the client can only start its next
            # request after reading this response, so the server never over-counts concurrency.
            with fake._lock:
                fake._active -= 1
        delivered = self._send(status, payload, headers)
        with fake._lock:
            record.status, record.tag, record.usage = status, tag, usage
            record.delivered, record.finished_at = delivered, time.monotonic()
