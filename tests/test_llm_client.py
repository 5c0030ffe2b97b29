"""LLMClient, validation, cache and usage accounting, run against a real local HTTP server."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer, Reply, last_user_message

from agentictagger.llm.cache import CACHE_FILENAME, CachedAnswer, ResponseCache
from agentictagger.llm.client import LLMClient, RateLimiter
from agentictagger.llm.factory import make_backend, make_client
from agentictagger.llm.types import (
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    InvalidAnswerError,
    JsonSchemaConstraint,
    LLMError,
    TokenUsage,
    TransientLLMError,
)
from agentictagger.llm.usage import StageUsage, UsageTracker, estimate_cost
from agentictagger.llm.validate import validate_answer

COLORS = ChoiceConstraint(("Red", "Green", "Blue"))
PERSON = JsonSchemaConstraint(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    name="person",
)


def choice_req(user: str = "Pick a color.") -> ChatRequest:
    return ChatRequest.chat("You answer briefly.", user, constraint=COLORS)


# --------------------------------------------------------------------------------------------
# validate_answer
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("Green", "Green"),
        ("  Green\n", "Green"),
        ('"Green"', "Green"),
        ("'Blue'.", "Blue"),
        ("green", "Green"),
        ("BLUE.", "Blue"),
        ('{"choice": "Red"}', "Red"),
        ("`red`", "Red"),
    ],
)
def test_choice_answers_map_to_the_canonical_choice(text, expected):
    assert validate_answer(choice_req(), text) == expected


def test_choice_that_ends_with_a_period_still_matches():
    req = ChatRequest.chat(None, "q", constraint=ChoiceConstraint(("Misc.", "Misc")))
    assert validate_answer(req, "Misc.") == "Misc."
    assert validate_answer(req, "Misc") == "Misc"


def test_case_insensitive_fallback_refuses_ambiguity():
    req = ChatRequest.chat(None, "q", constraint=ChoiceConstraint(("ab", "AB")))
    assert validate_answer(req, "AB") == "AB"
    with pytest.raises(InvalidAnswerError):
        validate_answer(req, "Ab")


def test_invalid_choice_error_quotes_answer_and_lists_choices():
    with pytest.raises(InvalidAnswerError) as ei:
        validate_answer(choice_req(), "Purple, obviously! " + "x" * 500)
    msg = str(ei.value)
    assert "Purple, obviously!" in msg and "'Red', 'Green', 'Blue'" in msg
    assert "[519 chars]" in msg and len(msg) < 600  # the answer is truncated


def test_json_answers_validate_and_tolerate_a_fence():
    req = ChatRequest.chat(None, "q", constraint=PERSON)
    assert validate_answer(req, '{"name": "Ada", "age": 36}') == {"name": "Ada", "age": 36}
    assert validate_answer(req, '```json\n{"name": "Ada", "age": 36}\n```') == {"name": "Ada", "age": 36}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("Ada is 36", "not valid JSON"),
        ('{"name": "Ada"}', "'age' is a required property"),
        ('{"name": "Ada", "age": -1}', "at age"),
        ('{"name": "Ada", "age": 3, "x": 1}', "Additional properties"),
    ],
)
def test_json_answers_that_break_the_schema_are_rejected(text, fragment):
    req = ChatRequest.chat(None, "q", constraint=PERSON)
    with pytest.raises(InvalidAnswerError) as ei:
        validate_answer(req, text)
    assert fragment in str(ei.value) and "person" in str(ei.value)


def test_unconstrained_answer_is_the_text():
    assert validate_answer(ChatRequest.chat(None, "q"), " hi ") == " hi "


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------
def test_cache_round_trip_and_threads(tmp_path):
    cache = ResponseCache(tmp_path)
    ans = CachedAnswer("Red", "Red", TokenUsage(10, 2, 4), "m")
    cache.put("k0", ans)
    got = cache.get("k0")
    assert got is not None and got.parsed == "Red" and got.usage == TokenUsage(10, 2, 4) and got.model == "m"
    assert cache.get("missing") is None

    def writer(t: int) -> None:
        for i in range(50):
            cache.put(f"t{t}-{i}", CachedAnswer(str(i), {"i": i}, TokenUsage(i, i, 0), "m"))
            assert cache.get(f"t{t}-{i}").parsed == {"i": i}

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(cache) == 1 + 4 * 50


def _process_writer(cache_dir: str, tag: str, n: int) -> None:
    cache = ResponseCache(cache_dir)
    for i in range(n):
        cache.put(f"{tag}-{i}", CachedAnswer(str(i), i, TokenUsage(), "m"))
    cache.close()


def _crash_mid_write(cache_dir: str) -> None:
    cache = ResponseCache(cache_dir)
    cache.put("committed", CachedAnswer("ok", "ok", TokenUsage(), "m"))
    # Begin a write and die before committing it, as a killed process would.
    conn = sqlite3.connect(Path(cache_dir) / CACHE_FILENAME, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO responses(key, text, parsed, usage, model, created) VALUES ('torn', 'x', '\"x\"', '{}', 'm', 0)"
    )
    os._exit(17)


def test_cache_is_shared_by_processes_and_survives_a_crash(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(str(tmp_path), f"p{j}", 40)) for j in range(2)]
    for p in procs:
        p.start()
    _process_writer(str(tmp_path), "parent", 40)  # writes while the children write
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    crasher = ctx.Process(target=_crash_mid_write, args=(str(tmp_path),))
    crasher.start()
    crasher.join(60)
    assert crasher.exitcode == 17

    cache = ResponseCache(tmp_path)
    assert len(cache) == 3 * 40 + 1
    assert cache.get("p1-39").parsed == 39
    assert cache.get("committed").text == "ok"
    assert cache.get("torn") is None  # the uncommitted write left no trace
    cache.put("after", CachedAnswer("y", "y", TokenUsage(), "m"))  # and the file is writable
    assert "after" in cache


def test_damaged_cache_file_gives_a_clear_error(tmp_path):
    (tmp_path / CACHE_FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(LLMError, match="delete it"):
        ResponseCache(tmp_path)


def test_a_cache_another_process_is_setting_up_is_opened_once_it_is_free(tmp_path, monkeypatch):
    """Two processes opening a new cache at once (Ray workers): SQLite may answer "database is
    locked" at once while the other switches the file to WAL; the open waits and tries again, up
    to the busy timeout, and only then gives its clear error."""
    from agentictagger.llm import cache as cache_mod

    real_connect = sqlite3.connect
    refusals = {"left": 3}

    class Busy:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode") and refusals["left"] > 0:
                refusals["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    monkeypatch.setattr(cache_mod.sqlite3, "connect", lambda *a, **kw: Busy(real_connect(*a, **kw)))
    cache = ResponseCache(tmp_path / "a")
    assert refusals["left"] == 0
    cache.put("k", CachedAnswer("answer", {"x": 1}, TokenUsage(1, 1, 0), "m"))
    assert cache.get("k").text == "answer"
    # Still locked when the busy timeout has passed: the clear error.
    refusals["left"] = 10**9
    monkeypatch.setattr(cache_mod, "_BUSY_TIMEOUT_MS", 200)
    with pytest.raises(LLMError, match="database is locked"):
        ResponseCache(tmp_path / "b")


# --------------------------------------------------------------------------------------------
# usage
# --------------------------------------------------------------------------------------------
def test_usage_tracker_save_load_merge(tmp_path):
    u = UsageTracker()
    u.record_call("annotate", TokenUsage(100, 10, 40), 0.5, 0.25)
    u.record_answered("annotate")
    u.record_cache_hit("annotate")
    u.record_retry("assign")
    u.record_failure("assign")
    u.save(tmp_path / "usage.json")
    resumed = UsageTracker.load(tmp_path / "usage.json")
    assert resumed.to_dict() == u.to_dict()
    resumed.record_call("annotate", TokenUsage(1, 1, 0), 0.1, 0.5)
    a = resumed.stage("annotate")
    assert (a.calls, a.prompt_tokens, a.cached_prompt_tokens, a.requests) == (2, 101, 40, 2)
    assert a.cost_usd == pytest.approx(0.75)
    resumed.merge(u)
    assert resumed.stage("assign").failures == 2
    assert resumed.total().calls == 3
    assert UsageTracker.load(tmp_path / "nothing-yet.json").to_dict()["stages"] == {}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        UsageTracker.load(tmp_path / "bad.json")
    text = resumed.render()
    assert "annotate" in text and "assign" in text and "total" in text


def test_usage_wall_time_counts_overlapping_requests_once():
    u = UsageTracker()
    u.begin("s")
    u.begin("s")
    time.sleep(0.05)
    u.end("s")
    u.end("s")
    assert 0.04 < u.stage("s").wall_s < 0.5


def test_rate_limiter_spaces_starts_evenly_with_a_fake_clock():
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    rl = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one start every 0.5 s
    starts = []
    for _ in range(4):
        rl.acquire()
        starts.append(now[0])
    assert starts == [0.0, 0.5, 1.0, 1.5]
    assert RateLimiter(None).acquire() == 0.0


# --------------------------------------------------------------------------------------------
# LLMClient against the local OpenAI-compatible server
# --------------------------------------------------------------------------------------------
def test_429_then_success_is_retried(fake_openai, openai_cfg, tmp_path):
    fake_openai.enqueue(Reply(429, "rate limited", headers={"retry-after": "0.001"}), "Green")
    client = make_client(openai_cfg(), tmp_path)
    resp = client.complete(choice_req(), stage="annotate")
    assert resp.parsed == "Green" and resp.attempts == 2 and not resp.cached
    assert fake_openai.request_count == 2 and client.backend_calls == 2
    s = client.usage.stage("annotate")
    assert (s.calls, s.retries, s.failures, s.answered) == (2, 1, 0, 1)


def test_500_storm_gives_up_after_configured_tries(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: (500, "upstream exploded")
    client = make_client(openai_cfg(max_retries=3), tmp_path)
    with pytest.raises(TransientLLMError) as ei:
        client.complete(choice_req(), stage="architect")
    msg = str(ei.value)
    assert "'architect'" in msg and "4 attempt(s)" in msg and "HTTP 500" in msg and "upstream exploded" in msg
    assert ei.value.attempts == 4
    assert fake_openai.request_count == 4
    s = client.usage.stage("architect")
    assert (s.calls, s.retries, s.failures) == (4, 3, 1)
    assert len(client.cache) == 0  # nothing cached for a failed request


def test_timeout_is_retried(fake_openai, openai_cfg, tmp_path):
    fake_openai.enqueue(Reply(content="Red", delay_s=3.0), "Blue")
    client = make_client(openai_cfg(timeout_s=0.3), tmp_path)
    t0 = time.perf_counter()
    resp = client.complete(choice_req())
    assert resp.parsed == "Blue" and resp.attempts == 2
    assert fake_openai.request_count == 2
    assert time.perf_counter() - t0 < 2.5  # did not wait for the slow answer


def test_client_error_is_not_retried(fake_openai, openai_cfg, tmp_path):
    fake_openai.enqueue((400, "model 'nope' does not support response_format"))
    client = make_client(openai_cfg(), tmp_path)
    with pytest.raises(LLMError) as ei:
        client.complete(choice_req(), stage="assign")
    assert not isinstance(ei.value, TransientLLMError)
    assert "HTTP 400" in str(ei.value) and "response_format" in str(ei.value) and "'assign'" in str(ei.value)
    assert fake_openai.request_count == 1


def test_invalid_answer_is_reasked_then_accepted(fake_openai, openai_cfg, tmp_path):
    fake_openai.enqueue("I think it is purple", "Blue")
    client = make_client(openai_cfg(), tmp_path)
    resp = client.complete(choice_req(), stage="annotate")
    assert resp.parsed == "Blue" and resp.attempts == 2
    second = fake_openai.chat_bodies()[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "I think it is purple"}
    assert "not accepted" in second[-1]["content"] and "'Red', 'Green', 'Blue'" in second[-1]["content"]
    assert client.usage.stage("annotate").reasks == 1
    # The valid answer is cached under the ORIGINAL request.
    again = make_client(openai_cfg(), tmp_path).complete(choice_req(), stage="annotate")
    assert again.cached and again.parsed == "Blue" and fake_openai.request_count == 2


def test_permanently_invalid_answer_raises_after_max_reasks(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: "Mauve"
    client = make_client(openai_cfg(max_reasks=2), tmp_path)
    with pytest.raises(InvalidAnswerError) as ei:
        client.complete(choice_req(), stage="assign")
    msg = str(ei.value)
    assert "'assign'" in msg and "3 attempt(s)" in msg and "'Mauve'" in msg and "2 re-ask" in msg
    assert fake_openai.request_count == 3
    s = client.usage.stage("assign")
    assert (s.reasks, s.failures, s.answered) == (2, 1, 0)
    # An invalid answer is never cached as an answer, and by default a rerun asks again (failed
    # items are retried on resume).
    assert len(client.cache) == 0
    with pytest.raises(InvalidAnswerError):
        make_client(openai_cfg(max_reasks=2), tmp_path).complete(choice_req(), stage="assign")
    assert fake_openai.request_count == 6


def test_remembered_invalid_verdict_is_not_paid_again(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: "Mauve"
    with pytest.raises(InvalidAnswerError):
        make_client(openai_cfg(max_reasks=2), tmp_path).complete(choice_req(), stage="namer", remember_invalid=True)
    assert fake_openai.request_count == 3
    rerun = make_client(openai_cfg(max_reasks=2), tmp_path)
    assert rerun.cache.get(choice_req().cache_key(rerun.identity)) is None  # never served as an answer
    with pytest.raises(InvalidAnswerError, match="cached verdict"):
        rerun.complete(choice_req(), stage="namer", remember_invalid=True)
    assert fake_openai.request_count == 3
    s = rerun.usage.stage("namer")
    assert (s.cache_hits, s.failures, s.calls, s.answered) == (1, 1, 0, 0)
    # More re-asks allowed: asked again.
    with pytest.raises(InvalidAnswerError):
        make_client(openai_cfg(max_reasks=3), tmp_path).complete(choice_req(), stage="namer", remember_invalid=True)
    assert fake_openai.request_count == 7


def _echo_index(body: dict) -> str:
    # "item 7 ..." -> a JSON answer naming 7, so order can be checked.
    idx = int(last_user_message(body).split()[1])
    return json.dumps({"name": f"n{idx}", "age": idx})


def test_second_run_of_20_requests_is_served_from_cache(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = _echo_index
    reqs = [ChatRequest.chat("sys", f"item {i} please", constraint=PERSON) for i in range(20)]
    first = make_client(openai_cfg(), tmp_path).map(reqs, stage="annotate")
    assert [r.parsed["age"] for r in first] == list(range(20))
    assert fake_openai.request_count == 20

    usage = UsageTracker()
    second_client = make_client(openai_cfg(), tmp_path, usage=usage)
    second = second_client.map(reqs, stage="annotate")
    assert fake_openai.request_count == 20  # zero new backend calls, counted on the server
    assert second_client.backend_calls == 0 and second_client.cache_hits == 20
    assert usage.stage("annotate").cache_hits == 20 and usage.stage("annotate").calls == 0
    assert all(r.cached for r in second)
    assert [r.parsed for r in second] == [r.parsed for r in first]


def test_cache_key_depends_on_model(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: "Red"
    make_client(openai_cfg(model="model-a"), tmp_path).complete(choice_req())
    make_client(openai_cfg(model="model-b"), tmp_path).complete(choice_req())
    assert fake_openai.request_count == 2


def test_duplicate_requests_in_one_batch_call_the_backend_once(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: Reply(content="Green", delay_s=0.1)
    results = make_client(openai_cfg(max_concurrency=4), tmp_path).map([choice_req()] * 6)
    assert [r.parsed for r in results] == ["Green"] * 6
    assert fake_openai.request_count == 1


def test_map_respects_max_concurrency_and_preserves_order(fake_openai, openai_cfg, tmp_path):
    # Later items answer faster, so completion order differs from input order.
    def handler(body: dict) -> Reply:
        idx = int(last_user_message(body).split()[1])
        return Reply(content=json.dumps({"name": "x", "age": idx}), delay_s=0.05 + 0.02 * (12 - idx))

    fake_openai.handler = handler
    seen: list[tuple[int, int]] = []
    reqs = [ChatRequest.chat(None, f"item {i}", constraint=PERSON) for i in range(12)]
    client = make_client(openai_cfg(max_concurrency=3), None)  # no cache: every request hits the server
    results = client.map(reqs, stage="s", progress=lambda d, t: seen.append((d, t)))
    assert [r.parsed["age"] for r in results] == list(range(12))
    assert 2 <= fake_openai.max_concurrent <= 3
    assert seen[0] == (0, 12) and seen[-1] == (12, 12) and [d for d, _ in seen] == list(range(13))


def test_map_returns_failures_in_place(fake_openai, openai_cfg, tmp_path):
    def handler(body: dict):
        idx = int(last_user_message(body).split()[1])
        return (404, "no such model") if idx == 1 else json.dumps({"name": "x", "age": idx})

    fake_openai.handler = handler
    reqs = [ChatRequest.chat(None, f"item {i}", constraint=PERSON) for i in range(3)]
    results = make_client(openai_cfg(), tmp_path).map(reqs, stage="s")
    assert isinstance(results[0], ChatResponse) and isinstance(results[2], ChatResponse)
    assert isinstance(results[1], LLMError) and "HTTP 404" in str(results[1])


def test_rate_limiter_spaces_requests_at_the_server(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: "Red"
    client = make_client(openai_cfg(requests_per_minute=600, max_concurrency=5), None)  # 0.1 s apart
    reqs = [choice_req(f"q{i}") for i in range(5)]
    t0 = time.perf_counter()
    client.map(reqs)
    assert time.perf_counter() - t0 >= 0.39
    arrivals = sorted(r.received_at for r in fake_openai.requests)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert arrivals[-1] - arrivals[0] >= 0.35 and min(gaps) > 0.02, gaps


def test_usage_and_cost_accounting_with_a_price_table(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: Reply(
        content="Green", prompt_tokens=1000, completion_tokens=200, cached_tokens=300
    )
    cfg = openai_cfg(price_per_million_input=2.0, price_per_million_output=8.0)
    usage = UsageTracker()
    client = make_client(cfg, tmp_path, usage=usage)
    reqs = [choice_req(f"q{i}") for i in range(5)]
    client.map(reqs, stage="annotate")
    client.map(reqs, stage="annotate")  # all cache hits: no tokens, no cost
    fake_openai.enqueue("nope")  # one re-ask: both calls are paid for
    client.complete(choice_req("q-extra"), stage="assign")

    a = usage.stage("annotate")
    assert (a.calls, a.cache_hits, a.answered, a.requests) == (5, 5, 5, 10)
    assert (a.prompt_tokens, a.completion_tokens, a.cached_prompt_tokens) == (5000, 1000, 1500)
    assert a.cost_usd == pytest.approx(5 * (1000 * 2.0 + 200 * 8.0) / 1e6)  # 0.018
    b = usage.stage("assign")
    # The rejected "nope" (server default usage: prompt words, 1 completion token) is paid too.
    words = fake_openai.requests[-2].body["messages"]
    prompt_words = sum(len(m["content"].split()) for m in words)
    assert (b.calls, b.reasks, b.answered) == (2, 1, 1)
    assert (b.prompt_tokens, b.completion_tokens) == (prompt_words + 1000, 1 + 200)
    assert b.cost_usd == pytest.approx(((prompt_words + 1000) * 2.0 + 201 * 8.0) / 1e6)
    total = usage.total()
    assert total.cost_usd == pytest.approx(a.cost_usd + b.cost_usd)
    assert estimate_cost(TokenUsage(1_000_000, 1_000_000), 2.0, 8.0) == pytest.approx(10.0)

    usage.save(tmp_path / "usage.json")
    resumed = UsageTracker.load(tmp_path / "usage.json")
    client2 = make_client(cfg, tmp_path, usage=resumed)
    client2.complete(choice_req("q-new"), stage="annotate")
    assert resumed.stage("annotate").calls == 6
    assert resumed.stage("annotate").cost_usd == pytest.approx(6 * 0.0036)
    table = resumed.render()
    assert "annotate" in table and "assign" in table and "total" in table


def test_make_backend_builds_openai(openai_cfg):
    from agentictagger.llm.backends.openai_compat import OpenAIBackend

    assert isinstance(make_backend(openai_cfg()), OpenAIBackend)


def test_chat_request_uses_endpoint_defaults(openai_cfg, tmp_path):
    client = make_client(openai_cfg(temperature=0.3, max_tokens=77), tmp_path)
    req = client.chat_request("sys", "u", constraint=COLORS)
    assert req.params.temperature == 0.3 and req.params.max_tokens == 77
    assert req.choice_mode == "generate"  # likelihood scoring is embedded-only


def test_stage_usage_round_trip():
    s = StageUsage(answered=1, calls=2, cost_usd=0.5)
    assert StageUsage.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown fields"):
        StageUsage.from_dict({"bogus": 1})


def test_client_is_a_context_manager(openai_cfg, tmp_path):
    with make_client(openai_cfg(), tmp_path) as client:
        assert isinstance(client, LLMClient)


class _SelfCheckingBackend:
    """A backend that validates its own output (as the embedded one does under a grammar) and
    raises InvalidAnswerError without handing the text back, then answers validly."""

    def __init__(self) -> None:
        self.seen: list[ChatRequest] = []

    def identity(self) -> str:
        return "self-checking"

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.seen.append(request)
        if len(self.seen) == 1:
            raise InvalidAnswerError("answer hit max_tokens=5 before the JSON closed")
        return ChatResponse(text="Blue", model="self-checking")


def test_backend_rejected_answer_is_reasked(openai_cfg, tmp_path):
    backend = _SelfCheckingBackend()
    resp = LLMClient(backend, openai_cfg(), tmp_path).complete(choice_req(), stage="s")
    assert resp.parsed == "Blue" and resp.attempts == 2
    last = backend.seen[1].messages[-1]
    assert last.role == "user" and "max_tokens=5" in last.content
    assert backend.seen[1].messages[-2].role == "user"  # no invented assistant turn
