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

Batch API (files + batches endpoints, as OpenAI's): ``POST /v1/files`` (multipart upload),
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}`` and
``GET /v1/batches`` (newest first, ``limit``/``after``). A batch is ``validating`` at its first poll,
``in_progress`` after, and ends at poll number ``batch_polls`` (default 2): each input line's body is
answered like a chat request (queue, then handler), 200 answers go to the output file and others to
the error file. Settings read at each poll: ``batch_polls``; ``batch_line_error(custom_id, body)``
for a partial failure (None = answer normally, ``(status, message)`` = that HTTP error in the error
file, a string = an ``error`` object with that code, e.g. "batch_expired"); ``batch_expire_after``
(answer that many lines, then end "expired" with the rest in the error file as batch_expired).
Input lines are checked as OpenAI does (unique custom_id, POST to the batch's endpoint, a body):
a bad file ends the batch "failed". Records: ``files``, ``batches`` (:class:`FakeBatch`),
``batch_submissions()`` (the custom_ids of every created batch, in order).

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
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeBatch", "FakeOpenAIServer", "Reply", "RecordedRequest", "completion_body", "last_user_message"]


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
    method: str = "POST"


@dataclass
class FakeBatch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, Any] | None
    lines: list[dict[str, Any]]  # the parsed input file
    problems: list[str]  # why the input file is invalid (the batch then fails)
    created_at: int = field(default_factory=lambda: int(time.time()))
    polls: int = 0
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0

    @property
    def custom_ids(self) -> list[str]:
        return [str(ln.get("custom_id")) for ln in self.lines]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "created_at": self.created_at,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "metadata": self.metadata,
            "errors": {"object": "list", "data": [{"code": "invalid_request", "message": m} for m in self.problems]}
            if self.status == "failed" else None,
            "request_counts": {"total": len(self.lines), "completed": self.completed, "failed": self.failed},
        }


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
        # Batch API state and settings (see the module docstring).
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.batch_polls = 2
        self.batch_line_error: Callable[[str, dict[str, Any]], Any] | None = None
        self.batch_expire_after: int | None = None
        self._ids = 0

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

    def batch_submissions(self) -> list[list[str]]:
        """The custom_ids of every batch created, in order of creation."""
        with self._lock:
            return [b.custom_ids for b in self.batches.values()]

    # -- Batch API -------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-{self._ids:06d}"

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        fid = self._new_id("file")
        meta = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}
        with self._lock:
            self.files[fid] = {**meta, "data": data}
        return meta

    def _create_batch(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or body.get("completion_window") != "24h":
            return 400, {"error": {"message": "completion_window must be 24h"}}
        f = self.files.get(str(body.get("input_file_id")))
        if f is None or f["purpose"] != "batch":
            return 400, {"error": {"message": f"no batch input file {body.get('input_file_id')!r}"}}
        endpoint = str(body.get("endpoint"))
        lines, problems, seen = [], [], set()
        for n, raw in enumerate(f["data"].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                problems.append(f"line {n}: not JSON")
                continue
            lines.append(line)
            cid = line.get("custom_id")
            if not cid or cid in seen:
                problems.append(f"line {n}: custom_id missing or repeated")
            seen.add(cid)
            if line.get("method") != "POST" or line.get("url") != endpoint or not isinstance(line.get("body"), dict):
                problems.append(f"line {n}: needs method POST, url {endpoint} and a body")
        batch = FakeBatch(self._new_id("batch"), f["id"], endpoint, body.get("metadata"), lines, problems)
        with self._lock:
            self.batches[batch.id] = batch
        return 200, batch.to_json()

    def _poll_batch(self, batch_id: str) -> tuple[int, Any]:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, {"error": {"message": f"no batch {batch_id}"}}
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                return 200, batch.to_json()
            batch.polls += 1
            finish = batch.polls >= self.batch_polls
            if not finish:
                batch.status = "validating" if batch.polls == 1 else "in_progress"
                return 200, batch.to_json()
        if batch.problems:
            batch.status = "failed"
            return 200, batch.to_json()
        out, err = [], []
        for n, line in enumerate(batch.lines):
            cid = str(line["custom_id"])
            entry: dict[str, Any] = {"id": f"batch_req_{batch.id}_{n}", "custom_id": cid, "error": None}
            hook = self.batch_line_error(cid, line["body"]) if self.batch_line_error else None
            if self.batch_expire_after is not None and n >= self.batch_expire_after:
                hook = "batch_expired"
            if isinstance(hook, str):
                err.append({**entry, "response": None, "error": {"code": hook, "message": f"scripted {hook}"}})
                continue
            if hook is not None:
                status, payload = hook[0], {"error": {"message": hook[1], "type": "server_error", "code": None}}
            else:
                status, payload = self._render(self._next_reply(line["body"]), line["body"])
            entry["response"] = {"status_code": status, "request_id": f"req_{n}", "body": payload}
            (out if status == 200 else err).append(entry)
        jsonl = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        out_id = self._add_file(jsonl(out), f"{batch.id}_output.jsonl", "batch_output")["id"] if out else None
        err_id = self._add_file(jsonl(err), f"{batch.id}_error.jsonl", "batch_output")["id"] if err else None
        with self._lock:
            batch.output_file_id, batch.error_file_id = out_id, err_id
            batch.completed, batch.failed = len(out), len(err)
            batch.status = "expired" if self.batch_expire_after is not None else "completed"
            return 200, batch.to_json()

    def _list_batches(self, query: str) -> dict[str, Any]:
        q = parse_qs(query)
        limit = int(q.get("limit", ["20"])[0])
        with self._lock:
            rows = [b.to_json() for b in reversed(list(self.batches.values()))]  # newest first
        after = q.get("after", [None])[0]
        if after is not None:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else []
        page = rows[:limit]
        return {"object": "list", "data": page, "has_more": len(rows) > limit,
                "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

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

    def _send_bytes(self, data: bytes) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _record(self, method: str, body: Any, status: int) -> None:
        fake = self.fake
        record = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(),
                                 status=status, finished_at=time.monotonic(), delivered=True, method=method)
        with fake._lock:
            fake.requests.append(record)

    def do_GET(self) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        parts = url.path.rstrip("/").split("/")
        if url.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model", "owned_by": "fake"}]})
            return
        if len(parts) >= 3 and parts[-3] == "files" and parts[-1] == "content":
            f = fake.files.get(parts[-2])
            self._record("GET", None, 200 if f else 404)
            if f is None:
                self._send(404, {"error": {"message": f"no file {parts[-2]}"}})
            else:
                self._send_bytes(f["data"])
            return
        if parts[-1] == "batches":
            self._record("GET", None, 200)
            self._send(200, fake._list_batches(url.query))
            return
        if len(parts) >= 2 and parts[-2] == "batches":
            status, payload = fake._poll_batch(parts[-1])
            self._record("GET", None, status)
            self._send(status, payload)
            return
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _post_batch_api(self, route: str, raw: bytes) -> None:
        fake = self.fake
        if route == "files":
            ctype = self.headers.get("Content-Type", "")
            msg = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
            form = {part.get_param("name", header="content-disposition"): part for part in msg.iter_parts()}
            purpose = form["purpose"].get_content().strip() if "purpose" in form else ""
            upload = form.get("file")
            if upload is None:
                status, payload = 400, {"error": {"message": "no file in the upload"}}
            else:
                status, payload = 200, fake._add_file(upload.get_payload(decode=True), upload.get_filename() or "", purpose)
            self._record("POST", {"purpose": purpose, "bytes": len(raw)}, status)
        else:
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            status, payload = fake._create_batch(body)
            self._record("POST", body, status)
        self._send(status, payload)

    def do_POST(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        if route in ("files", "batches"):
            self._post_batch_api(route, raw)
            return
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
