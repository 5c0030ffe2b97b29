"""The client every algorithm talks to: cache, limits, retries, validation, re-asks, usage.

Backends stay thin (one request in, one raw answer out); everything that makes calls reliable
and cheap lives here, once, for all backends:

    cache lookup -> rate limit -> backend call (retry transient errors with backoff + jitter)
    -> validate against the constraint (re-ask with a correction, bounded) -> cache store -> usage

A request either returns a valid :class:`ChatResponse` or raises :class:`LLMError` saying which
stage, how many attempts and the last error. Nothing is silently dropped.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentictagger.config import LLMConfig
from agentictagger.llm.cache import CachedAnswer, ResponseCache
from agentictagger.llm.types import (
    Backend,
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    Constraint,
    InvalidAnswerError,
    LLMError,
    Message,
    SamplingParams,
    TokenUsage,
    TransientLLMError,
)
from agentictagger.llm.usage import UsageTracker, estimate_cost
from agentictagger.llm.validate import validate_answer

if TYPE_CHECKING:
    from agentictagger.llm.batch import BatchRunner

log = logging.getLogger(__name__)
# Cache key suffix of a request's "no valid answer after every re-ask" verdict.
_INVALID_SUFFIX = ":no-valid-answer"

Progress = Callable[[int, int], None]


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart (all threads).

    Even spacing rather than a burst bucket: providers that enforce per-second limits answer a
    burst with 429s, which cost a backoff each.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive or empty, got {requests_per_minute}")
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = float("-inf")

    def acquire(self) -> float:
        """Block until this caller may start a request; returns the seconds waited."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait_s = slot - now
        if wait_s > 0:
            self.sleep(wait_s)
        return wait_s


# Assumed context of an OpenAI-compatible endpoint whose size is not configured (llm.context_tokens).
DEFAULT_OPENAI_CONTEXT_TOKENS = 8192


def estimate_tokens(messages: Sequence[Message] | Sequence[dict]) -> int:
    """A conservative token count of chat messages: 1 token per 3 characters plus framing.

    English runs about 4 characters per token in the tokenizers of the models we use, so this
    overestimates; it is what the budget uses when the backend cannot tokenize."""
    total = 3
    for m in messages:
        content = m["content"] if isinstance(m, dict) else m.content
        total += -(-len(content) // 3) + 4
    return total


def correction_message(error: InvalidAnswerError) -> str:
    return (
        f"Your previous answer was not accepted: {error}. "
        "Reply again with only the corrected answer, in exactly the required format, and nothing else."
    )


def reask_request(request: ChatRequest, bad_text: str | None, error: InvalidAnswerError) -> ChatRequest:
    """``request`` plus the invalid answer and a correction, so the model sees what was wrong.

    ``bad_text`` is None when the backend rejected its own answer without handing it back
    (a grammar-constrained answer cut off by max_tokens): then only the correction is added."""
    added = (Message("assistant", bad_text),) if bad_text is not None else ()
    return replace(request, messages=request.messages + added + (Message("user", correction_message(error)),))


class LLMClient:
    """Reliable, cached, accounted calls to one backend. Safe to share between threads."""

    def __init__(
        self,
        backend: Backend,
        cfg: LLMConfig,
        cache_dir: str | Path | None,
        usage: UsageTracker | None = None,
    ):
        if cfg.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {cfg.max_concurrency}")
        if cfg.max_retries < 0 or cfg.max_reasks < 0:
            raise ValueError("max_retries and max_reasks must be >= 0")
        self.backend = backend
        self.cfg = cfg
        self.identity = backend.identity()
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.usage = usage if usage is not None else UsageTracker()
        self.rate_limiter = RateLimiter(cfg.requests_per_minute)
        # Bounds requests in flight across map() calls and callers' own threads alike.
        self._slots = threading.BoundedSemaphore(cfg.max_concurrency)
        self.counter_lock = threading.Lock()
        self._backend_calls = 0
        self._cache_hits = 0
        self._key_locks: dict[str, list] = {}  # key -> [lock, refcount]
        self._key_locks_guard = threading.Lock()
        self._rng = random.Random()
        self.sleep: Callable[[float], None] = time.sleep
        self._context_tokens: int | None = None
        self._batch: BatchRunner | None = None
        if cfg.mode == "batch" and not callable(getattr(backend, "create_batch", None)):
            raise ValueError(f"llm.mode 'batch' needs a backend with a Batch API (backend: openai), not {backend!r}")

    # -- counters --------------------------------------------------------------------------
    @property
    def backend_calls(self) -> int:
        """Backend invocations made by this client (retries and re-asks included)."""
        return self._backend_calls

    @property
    def cache_hits(self) -> int:
        return self._cache_hits

    # -- building requests -----------------------------------------------------------------
    def chat_request(
        self,
        system: str | None,
        user: str,
        *,
        constraint: Constraint | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatRequest:
        """A request with this endpoint's defaults (temperature, max_tokens, choice mode)."""
        params = SamplingParams(
            temperature=self.cfg.temperature if temperature is None else temperature,
            max_tokens=self.cfg.max_tokens if max_tokens is None else max_tokens,
        )
        # Likelihood scoring needs token log-probabilities, which only the embedded backend has.
        choice_mode = (
            self.cfg.choice_mode
            if self.cfg.backend == "embedded" and isinstance(constraint, ChoiceConstraint)
            else "generate"
        )
        return ChatRequest.chat(system, user, constraint=constraint, params=params, choice_mode=choice_mode)

    # -- prompt budget ---------------------------------------------------------------------
    @property
    def context_tokens(self) -> int:
        """Tokens one request may use, prompt and answer together.

        ``llm.context_tokens`` when set; else what the backend reports (the local server's context
        per slot), the embedded backend's n_ctx, or 8192 for an OpenAI-compatible endpoint."""
        if self._context_tokens is None:
            if self.cfg.context_tokens:
                value = int(self.cfg.context_tokens)
            elif callable(getattr(self.backend, "context_tokens", None)):
                value = int(self.backend.context_tokens())  # type: ignore[attr-defined]
            elif self.cfg.backend == "embedded":
                value = int(self.cfg.n_ctx)
            else:
                value = DEFAULT_OPENAI_CONTEXT_TOKENS
            self._context_tokens = value
        return self._context_tokens

    def rendered_messages(self, request: ChatRequest) -> list[dict]:
        """The messages as the backend will send them (with its format hint, if it adds one)."""
        build = getattr(self.backend, "build_kwargs", None)
        if callable(build):
            return list(build(request)["messages"])
        return [{"role": m.role, "content": m.content} for m in request.messages]

    def count_tokens(self, request: ChatRequest) -> int:
        """Prompt tokens of ``request``: exact when the backend can tokenize (local server),
        else the conservative :func:`estimate_tokens`."""
        count = getattr(self.backend, "count_tokens", None)
        if callable(count):
            try:
                return int(count(request))
            except LLMError as exc:
                log.warning("token count from the backend failed (%s); estimating instead", exc)
        return estimate_tokens(self.rendered_messages(request))

    def fits(self, request: ChatRequest) -> bool:
        """Whether ``request``'s prompt plus its max_tokens fits the context."""
        return self.count_tokens(request) + request.params.max_tokens <= self.context_tokens

    # -- one request -----------------------------------------------------------------------
    def complete(self, request: ChatRequest, stage: str = "default", remember_invalid: bool = False) -> ChatResponse:
        """A validated answer to ``request``, from the cache or the backend; raises LLMError.

        ``remember_invalid``: when no valid answer comes after every re-ask, keep that verdict in
        the cache, so a rerun raises the same error without paying again. For callers whose
        fallback is recorded and deterministic (the namer); callers that retry failed items on
        resume (annotators, assigners) leave it off."""
        self.usage.begin(stage)
        try:
            return self._complete(request, stage, remember_invalid)
        finally:
            self.usage.end(stage)

    def _complete(self, request: ChatRequest, stage: str, remember_invalid: bool = False) -> ChatResponse:
        t0 = time.perf_counter()
        key = request.cache_key(self.identity)
        hit = self.cached(key, stage)
        if hit is not None:
            return hit
        # Identical requests in flight at once (duplicate items in a batch) wait for the first
        # one and then read its answer from the cache instead of paying twice.
        with self._key_lock(key if self.cache is not None else None), self._claim(key, stage) as hit:
            if hit is not None:
                return hit
            if remember_invalid:
                self.raise_if_known_invalid(key, stage)
            try:
                resp = self._ask_until_valid(request, stage)
            except InvalidAnswerError as exc:
                # No valid answer after every re-ask: remember the verdict when asked to, so a rerun
                # does not pay for the same hopeless request and its re-asks again. A run with more
                # re-asks allowed asks again.
                if remember_invalid:
                    self.remember_invalid(key, exc)
                raise
            resp.latency_s = time.perf_counter() - t0
            self.store_answer(key, resp, stage)
            return resp

    def store_answer(self, key: str, resp: ChatResponse, stage: str) -> None:
        """A valid answer from the backend: into the cache, counted as answered."""
        if self.cache is not None:
            self.cache.put(key, CachedAnswer(resp.text, resp.parsed, resp.usage, resp.model))
        self.usage.record_answered(stage)

    def remember_invalid(self, key: str, exc: LLMError) -> None:
        """Keep the verdict "no valid answer after every re-ask" of ``exc`` (see :meth:`complete`)."""
        if self.cache is None or getattr(exc, "reasks_tried", None) is None:
            return
        last = getattr(exc, "last_error", exc)
        self.cache.put(
            key + _INVALID_SUFFIX,
            CachedAnswer(str(getattr(last, "text", "") or ""), {"error": str(last), "reasks": exc.reasks_tried},  # type: ignore[attr-defined]
                         TokenUsage(), ""),
        )

    def raise_if_known_invalid(self, key: str, stage: str) -> None:
        if self.cache is None:
            return
        got = self.cache.get(key + _INVALID_SUFFIX)
        if got is None or not isinstance(got.parsed, dict) or got.parsed.get("reasks", -1) < self.cfg.max_reasks:
            return
        with self.counter_lock:
            self._cache_hits += 1
        self.usage.record_cache_hit(stage)
        self.usage.record_failure(stage)
        err = InvalidAnswerError(
            f"LLM stage {stage!r} on {self.identity}: no valid answer after {got.parsed['reasks']} re-ask(s) "
            f"(cached verdict of an earlier run); last error: {got.parsed.get('error', '')}"
        )
        err.stage = stage  # type: ignore[attr-defined]
        err.attempts = 0  # type: ignore[attr-defined]
        err.cached = True  # type: ignore[attr-defined]
        raise err

    def cached(self, key: str, stage: str) -> ChatResponse | None:
        if self.cache is None:
            return None
        got = self.cache.get(key)
        if got is None:
            return None
        with self.counter_lock:
            self._cache_hits += 1
        self.usage.record_cache_hit(stage)
        # ``usage`` reports what the answer cost when it was first computed; the tracker
        # charges nothing for a hit.
        return ChatResponse(
            text=got.text, parsed=got.parsed, usage=got.usage, cached=True, latency_s=0.0, model=got.model, attempts=0
        )

    @contextmanager
    def _claim(self, key: str, stage: str) -> Iterator[ChatResponse | None]:
        """Yields the cached answer, or None with the key claimed across processes (another
        process sharing the cache and asking the same request is waited for, then read from the
        cache): workers of one run never pay twice for one request."""
        if self.cache is None:
            yield None
            return
        delay = 0.005
        while True:
            hit = self.cached(key, stage)
            if hit is not None:
                yield hit
                return
            if self.cache.try_claim(key):
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            hit = self.cached(key, stage)  # answered between the look and the claim
            yield hit
        finally:
            self.cache.release_claim(key)

    @contextmanager
    def _key_lock(self, key: str | None) -> Iterator[None]:
        if key is None:
            yield
            return
        with self._key_locks_guard:
            entry = self._key_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._key_locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._key_locks[key]

    def _ask_until_valid(self, request: ChatRequest, stage: str) -> ChatResponse:
        current = request
        attempts = 0
        last_error: InvalidAnswerError | None = None
        for round_no in range(self.cfg.max_reasks + 1):
            bad_text: str | None
            try:
                resp, n = self._call_with_retries(current, stage)
            except InvalidAnswerError as exc:
                # The backend validated its own answer and rejected it: re-askable like ours.
                attempts += getattr(exc, "attempts", 1)
                last_error, bad_text = exc, getattr(exc, "text", None)
            except LLMError as exc:
                attempts += getattr(exc, "attempts", 1)
                self.usage.record_failure(stage)
                # Keep the kind (transient vs. permanent) so callers can tell an outage from a bad
                # request; backend-specific subclasses are reported as their base kind.
                kind = type(exc) if type(exc) in (LLMError, TransientLLMError, InvalidAnswerError) else LLMError
                raise self.final_error(kind, stage, attempts, exc) from exc
            else:
                attempts += n
                try:
                    resp.parsed = validate_answer(request, resp.text)
                except InvalidAnswerError as exc:
                    last_error, bad_text = exc, resp.text
                else:
                    resp.attempts = attempts
                    resp.cached = False
                    return resp
            if round_no < self.cfg.max_reasks:
                self.usage.record_reask(stage)
                log.info("stage %s: invalid answer, re-asking (%d/%d): %s", stage, round_no + 1,
                         self.cfg.max_reasks, last_error)
                current = self.fitting_reask(current, bad_text, last_error)
        self.usage.record_failure(stage)
        assert last_error is not None
        err = self.final_error(
            InvalidAnswerError, stage, attempts, last_error,
            note=f"no valid answer after {self.cfg.max_reasks} re-ask(s)",
        )
        err.reasks_tried = self.cfg.max_reasks  # type: ignore[attr-defined]
        raise err from last_error

    def fitting_reask(self, request: ChatRequest, bad_text: str | None, error: InvalidAnswerError) -> ChatRequest:
        """The re-ask, without the rejected answer when quoting it would overflow the context
        (an over-long re-ask is an HTTP 400, which would turn a bad answer into a failed call)."""
        again = reask_request(request, bad_text, error)
        if bad_text is None:
            return again
        try:
            fits = estimate_tokens(self.rendered_messages(again)) + again.params.max_tokens <= self.context_tokens
        except Exception:  # noqa: BLE001 - a context probe must never break a re-ask
            fits = True
        return again if fits else reask_request(request, None, error)

    def _call_with_retries(self, request: ChatRequest, stage: str) -> tuple[ChatResponse, int]:
        """One answer from the backend, retrying transient errors; returns it and the tries used."""
        tries = self.cfg.max_retries + 1
        for attempt in range(tries):
            self.rate_limiter.acquire()
            t0 = time.perf_counter()
            with self._slots:
                with self.counter_lock:
                    self._backend_calls += 1
                sent, hook = self._sent_hook(stage)
                try:
                    with hook:
                        resp = self.backend.complete(request)
                except TransientLLMError as exc:
                    if len(sent) > 1:  # the count could not be logged (e.g. a full disk): nothing was sent
                        raise sent[1] from exc
                    self._record_failed(stage, time.perf_counter() - t0, sent[0])
                    if attempt + 1 >= tries:
                        exc.attempts = attempt + 1  # type: ignore[attr-defined]
                        raise
                    error: TransientLLMError = exc
                except LLMError as exc:
                    if len(sent) > 1:
                        raise sent[1] from exc
                    self._record_failed(stage, time.perf_counter() - t0, sent[0])
                    exc.attempts = attempt + 1  # type: ignore[attr-defined]
                    raise
                else:
                    latency = time.perf_counter() - t0
                    resp.latency_s = latency
                    self.usage.record_call(
                        stage,
                        resp.usage,
                        latency,
                        estimate_cost(resp.usage, self.cfg.price_per_million_input, self.cfg.price_per_million_output),
                        sent=sent[0],
                    )
                    return resp, attempt + 1
            # Back off outside the concurrency slot so other requests keep the backend busy.
            self.usage.record_retry(stage)
            delay = self.backoff(attempt, getattr(error, "retry_after", None))
            log.info("stage %s: transient error (try %d/%d), retrying in %.2fs: %s", stage, attempt + 1, tries,
                     delay, error)
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _sent_hook(self, stage: str) -> tuple[list[bool], Any]:
        """When to count a request as sent. An HTTP backend reports the moment its connection is
        open and its first byte about to be written
        (:func:`~agentictagger.llm.backends.openai_compat.on_request_sent`): it is counted (and
        logged) then, so a refused connection counts nothing, a run killed while the server works
        on it still counts it, and a count that cannot be logged (a full disk) stops the request
        before it is sent (the error is kept in the flag list and raised). Other backends (in
        process) are counted when they answer. Returns the flag list (``[counted]``, plus the
        logging error if any) and the context to run the call in."""
        sent = [False]
        if not getattr(self.backend, "reports_sent", False):
            return sent, contextlib.nullcontext()
        from agentictagger.llm.backends.openai_compat import on_request_sent

        def mark() -> None:
            if not sent[0]:
                try:
                    self.usage.record_sent(stage)
                except OSError as exc:
                    sent.append(exc)  # type: ignore[arg-type]
                    raise
                sent[0] = True

        return sent, on_request_sent(mark)

    def _record_failed(self, stage: str, latency_s: float, sent: bool) -> None:
        """A call that raised: counted unless it is known never to have left (an HTTP backend
        that failed before writing the request, e.g. connection refused)."""
        if not sent and getattr(self.backend, "reports_sent", False):
            self.usage.record_unsent(stage, latency_s)
        else:
            self.usage.record_failed_call(stage, latency_s, sent=sent)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2**attempt))
        # Jitter in [base/2, base] de-synchronises threads that failed together (one 429 burst).
        delay = base * (0.5 + 0.5 * self._rng.random())
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.cfg.backoff_max_s))
        return delay

    def final_error(
        self, cls: type[LLMError], stage: str, attempts: int, last: Exception, note: str | None = None
    ) -> LLMError:
        what = note or ("gave up after retries" if isinstance(last, TransientLLMError) else "failed")
        err = cls(
            f"LLM stage {stage!r} on {self.identity}: {what} ({attempts} attempt(s)); last error: {last}"
        )
        err.stage = stage  # type: ignore[attr-defined]
        err.attempts = attempts  # type: ignore[attr-defined]
        err.last_error = last  # type: ignore[attr-defined]
        err.status = getattr(last, "status", None)  # type: ignore[attr-defined]
        return err

    # -- many requests ---------------------------------------------------------------------
    def map(
        self,
        requests: Sequence[ChatRequest],
        stage: str = "default",
        progress: Progress | None = None,
        remember_invalid: bool = False,
    ) -> list[ChatResponse | LLMError]:
        """Answers in input order; a request that failed for good is an LLMError in its slot.

        Runs up to ``cfg.max_concurrency`` requests at once. ``progress(done, total)`` is called
        from the calling thread after each request finishes. Exceptions that are not LLMError
        (bugs) propagate after the pool is stopped.

        With ``llm.mode: batch`` the requests not in the cache go through the provider's Batch API
        instead (:mod:`agentictagger.llm.batch`): same answers, validation, cache and failures.
        """
        requests = list(requests)
        total = len(requests)
        results: list[ChatResponse | LLMError | None] = [None] * total
        if total == 0:
            return []
        if self.cfg.mode == "batch":
            return self._batch_runner().map(requests, stage, progress, remember_invalid)
        if progress is not None:
            progress(0, total)

        def one(i: int) -> None:
            try:
                results[i] = self.complete(requests[i], stage, remember_invalid)
            except LLMError as exc:
                results[i] = exc

        done = 0
        pool = ThreadPoolExecutor(max_workers=min(self.cfg.max_concurrency, total), thread_name_prefix=f"llm-{stage}")
        try:
            pending: set[Future[None]] = {pool.submit(one, i) for i in range(total)}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    fut.result()  # re-raises a bug in a worker
                    done += 1
                    if progress is not None:
                        progress(done, total)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results  # type: ignore[return-value]

    def _batch_runner(self) -> "BatchRunner":
        if self._batch is None:
            from agentictagger.llm.batch import BatchRunner

            self._batch = BatchRunner(self)
        return self._batch

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
