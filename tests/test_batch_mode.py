"""llm.mode: batch against the scripted local server's files + batches endpoints.

Same answers as online with nothing sent twice, per-request errors resubmitted or reported,
resume by batch id after a crash (SIGKILL of a subprocess, and injected crashes at the two other
points where a process can die), cost at the batch price, and the config fields.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer, last_user_message
from pydantic import ValidationError

from agentictagger.config import LLMConfig, RunConfig, config_template, describe_errors
from agentictagger.llm import batch as batch_mod
from agentictagger.llm.batch import INPUT_DIRNAME, JOURNAL_FILENAME, BatchJournal
from agentictagger.llm.client import LLMClient
from agentictagger.llm.factory import make_client
from agentictagger.llm.types import ChatRequest, ChatResponse, ChoiceConstraint, LLMError, TransientLLMError
from agentictagger.llm.usage import UsageTracker

COLORS = ChoiceConstraint(("Red", "Green", "Blue"))
PRICES = dict(price_per_million_input=2.0, price_per_million_output=8.0)
# Usage fields that must match between runs (timings and the answered/cache-hit split may not).
PAID = ("calls", "batch_calls", "prompt_tokens", "completion_tokens", "cost_usd", "reasks", "retries", "failures")


def build_requests(n: int = 10) -> list[ChatRequest]:
    """Items 'item 0'..; every fourth one ('bad') is answered invalidly first, then re-asked; the
    last request repeats the first (answered once, a cache hit)."""
    reqs = [ChatRequest.chat("Pick the item's color.", f"item {i}{' bad' if i % 4 == 3 else ''}", constraint=COLORS)
            for i in range(n)]
    return reqs + [reqs[0]]


def color_handler(body: dict) -> str:
    """Deterministic answers: a correction gets Blue, a 'bad' item an invalid word, else by number."""
    user = last_user_message(body)
    if "not accepted" in user:
        return '{"choice": "Blue"}'
    if "bad" in user:
        return "purple"
    number = int(user.split()[1])
    return json.dumps({"choice": COLORS.choices[number % 3]})


def batch_cfg(openai_cfg, **overrides) -> LLMConfig:
    fields = dict(mode="batch", batch_poll_interval_s=0.01, batch_poll_max_interval_s=0.02, **PRICES)
    fields.update(overrides)
    return openai_cfg(**fields)


def answers(results: list) -> list:
    return [(r.text, r.parsed) if isinstance(r, ChatResponse) else type(r).__name__ for r in results]


def paid(usage: UsageTracker) -> dict:
    total = usage.total().to_dict()
    return {k: round(total[k], 12) for k in PAID}


def online_run(fake: FakeOpenAIServer, openai_cfg, cache_dir: Path, requests: list[ChatRequest]):
    """The same requests answered online (fresh cache), then the server's records forgotten."""
    usage = UsageTracker()
    with make_client(openai_cfg(**PRICES), cache_dir, usage=usage) as client:
        out = client.map(requests, "annotator")
    fake.reset()
    return out, usage


def journal_events(cache_dir: Path) -> list[tuple[str, str]]:
    return [(row["event"], row["local"]) for row in BatchJournal(cache_dir).entries()]


# --------------------------------------------------------------------------------------------
# (1) same answers as online, nothing sent twice, half the cost
# --------------------------------------------------------------------------------------------
def test_batch_mode_gives_the_online_answers_with_no_request_sent_twice(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = color_handler
    requests = build_requests(10)
    online, online_usage = online_run(fake_openai, openai_cfg, tmp_path / "online", requests)

    usage = UsageTracker()
    cache = tmp_path / "batch"
    progress: list[tuple[int, int]] = []
    with make_client(batch_cfg(openai_cfg, batch_max_requests=4), cache, usage=usage) as client:
        out = client.map(requests, "annotator", progress=lambda d, t: progress.append((d, t)))
        assert answers(out) == answers(online)
        assert out[-1].cached and out[3].attempts == 2  # the duplicate; a re-asked item

        # Nothing went through chat completions; 10 distinct requests in batches of at most 4,
        # then one batch with the 2 re-asks; no custom_id in two batches.
        assert fake_openai.chat_bodies() == []
        sizes = [len(ids) for ids in fake_openai.batch_submissions()]
        assert sizes == [4, 4, 2, 2]
        sent = [cid for ids in fake_openai.batch_submissions() for cid in ids]
        assert len(sent) == len(set(sent)) == 12
        assert {cid for ids in fake_openai.batch_submissions()[:3] for cid in ids} == {
            r.cache_key(client.identity) for r in requests}
        assert progress[0] == (0, 11) and progress[-1] == (11, 11)

        # Every input line is the body an online call sends (the request format is shared).
        line = json.loads(fake_openai.files[next(iter(fake_openai.batches.values())).input_file_id]["data"].splitlines()[0])
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
        assert line["body"] == {k: v for k, v in client.backend.build_kwargs(requests[0]).items()}
        create = next(r.body for r in fake_openai.requests if r.path.endswith("/batches") and r.method == "POST")
        assert (create["endpoint"], create["completion_window"]) == ("/v1/chat/completions", "24h")

        # The answers are in the same cache: asking again costs nothing and submits nothing.
        n_batches = len(fake_openai.batches)
        again = client.map(requests, "annotator")
        assert answers(again) == answers(online) and all(r.cached for r in again)
        assert len(fake_openai.batches) == n_batches

    # Same tokens, calls and re-asks as online; the cost is the batch price (half).
    got, ref = usage.stage("annotator"), online_usage.stage("annotator")
    assert (got.prompt_tokens, got.completion_tokens, got.calls, got.reasks, got.answered) == (
        ref.prompt_tokens, ref.completion_tokens, ref.calls, ref.reasks, ref.answered)
    assert got.batch_calls == got.calls == 12 and ref.batch_calls == 0
    assert got.cost_usd == pytest.approx(0.5 * ref.cost_usd) and got.cost_usd > 0
    assert "batch calls" in usage.render()
    # Every batch was collected; the local copies of the input files are gone.
    events = journal_events(cache)
    assert sorted(e for e, _ in events).count("collected") == 4
    assert not list((cache / INPUT_DIRNAME).glob("*.jsonl"))


def test_online_cache_answers_batch_mode_and_back(fake_openai, openai_cfg, tmp_path):
    """The modes share one cache: what one mode paid for, the other reads."""
    fake_openai.handler = color_handler
    requests = build_requests(6)
    online, _ = online_run(fake_openai, openai_cfg, tmp_path, requests)
    with make_client(batch_cfg(openai_cfg), tmp_path) as client:
        assert answers(client.map(requests, "annotator")) == answers(online)
    assert fake_openai.batches == {} and fake_openai.request_count == 0


def test_batch_mode_without_a_cache_dir_still_answers(fake_openai, openai_cfg):
    fake_openai.handler = color_handler
    with make_client(batch_cfg(openai_cfg), None) as client:
        out = client.map(build_requests(5), "annotator")
    assert [r.parsed for r in out] == ["Red", "Green", "Blue", "Blue", "Green", "Red"]


# --------------------------------------------------------------------------------------------
# (2) per-request errors: resubmitted, or reported as failed items
# --------------------------------------------------------------------------------------------
def test_partial_failure_is_resubmitted_and_then_succeeds(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = color_handler
    requests = build_requests(8)
    online, online_usage = online_run(fake_openai, openai_cfg, tmp_path / "online", requests)

    seen: dict[str, int] = {}
    flaky = {"item 1", "item 5"}  # HTTP 500 the first time, in the error file
    expired = {"item 6"}  # an error object (the batch's window ran out for it)

    def first_time_fails(custom_id: str, body: dict):
        seen[custom_id] = seen.get(custom_id, 0) + 1
        item = last_user_message(body).split("\n")[0]
        if seen[custom_id] == 1 and item in flaky:
            return (500, "overloaded")
        if seen[custom_id] == 1 and item in expired:
            return "batch_expired"
        return None

    fake_openai.batch_line_error = first_time_fails
    usage = UsageTracker()
    with make_client(batch_cfg(openai_cfg), tmp_path / "batch", usage=usage) as client:
        out = client.map(requests, "annotator")
        failed_ids = {requests[i].cache_key(client.identity) for i in (1, 5, 6)}
    assert answers(out) == answers(online)
    first, *follow_ups = fake_openai.batch_submissions()
    assert len(first) == 8
    # The next round holds the three failed requests and the two re-asks, nothing else.
    assert failed_ids <= set(follow_ups[0]) and len(follow_ups[0]) == 5 and len(follow_ups) == 1
    s = usage.stage("annotator")
    assert (s.retries, s.failures, s.calls) == (3, 0, 8 + 5)
    # Failed lines cost nothing: the bill is half the online bill.
    assert s.cost_usd == pytest.approx(0.5 * online_usage.stage("annotator").cost_usd)


def test_request_that_keeps_failing_is_reported_as_a_failed_item(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = color_handler

    def errors(custom_id: str, body: dict):
        item = last_user_message(body).split("\n")[0]
        return {"item 1": (503, "down for good"), "item 2": (400, "bad request")}.get(item)

    fake_openai.batch_line_error = errors
    requests = build_requests(5)
    usage = UsageTracker()
    cfg = batch_cfg(openai_cfg, batch_max_resubmits=1)
    with make_client(cfg, tmp_path, usage=usage) as client:
        out = client.map(requests, "annotator")
        ids = [r.cache_key(client.identity) for r in requests]
    assert [r.parsed for i, r in enumerate(out) if i not in (1, 2)] == ["Red", "Blue", "Green", "Red"]
    # 5xx: resubmitted once, then a transient failure; 4xx: never resubmitted.
    assert isinstance(out[1], TransientLLMError) and "2 attempt(s)" in str(out[1]) and "503" in str(out[1])
    assert isinstance(out[2], LLMError) and not isinstance(out[2], TransientLLMError)
    assert "1 attempt(s)" in str(out[2]) and "HTTP 400" in str(out[2])
    rounds = fake_openai.batch_submissions()
    assert ids[1] in rounds[1] and ids[2] not in rounds[1]
    s = usage.stage("annotator")
    assert (s.failures, s.retries) == (2, 1)

    # A rerun asks only the failed ones again (as online, failed items are retried on resume).
    fake_openai.batch_line_error = None
    n = len(rounds)
    with make_client(cfg, tmp_path) as client:
        again = client.map(requests, "annotator")
    assert [r.parsed for r in again] == ["Red", "Green", "Blue", "Blue", "Green", "Red"]
    assert [set(ids_) for ids_ in fake_openai.batch_submissions()[n:]] == [{ids[1], ids[2]}]


# --------------------------------------------------------------------------------------------
# (3) crash after submission: resume by batch id, nothing submitted or paid twice
# --------------------------------------------------------------------------------------------
CHILD = """
import os, sys
sys.path.insert(0, {tests!r})
from test_batch_mode import build_requests
from agentictagger.config import LLMConfig
from agentictagger.llm.factory import make_client
from agentictagger.llm.usage import UsageTracker
cfg = LLMConfig.model_validate_json(os.environ["BATCH_TEST_CFG"])
usage = UsageTracker.with_log({usage!r})
client = make_client(cfg, {cache!r}, usage=usage)
client.map(build_requests(6), "annotator")
print("finished: the test meant to kill this process while it polled")
"""


def test_killed_process_resumes_by_batch_id_without_submitting_again(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = color_handler
    requests = build_requests(6)
    online, online_usage = online_run(fake_openai, openai_cfg, tmp_path / "online", requests)

    cache, usage_log = tmp_path / "cache", tmp_path / "run" / "usage.jsonl"
    cfg = batch_cfg(openai_cfg, batch_max_requests=4)
    fake_openai.batch_polls = 10**9  # the batches never finish while the child polls
    env = {**os.environ, "BATCH_TEST_CFG": cfg.model_dump_json()}
    code = CHILD.format(tests=str(Path(__file__).parent), usage=str(usage_log), cache=str(cache))
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # Wait until both batches are created and journaled and the child is polling them.
        while not (
            sum(e == "submitted" for e, _ in journal_events(cache)) == 2
            and all(b.polls >= 2 for b in fake_openai.batches.values()) and len(fake_openai.batches) == 2
        ):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never submitted its batches"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    uploads = [r for r in fake_openai.requests if r.path.endswith("/files") and r.method == "POST"]
    assert len(uploads) == 2 and len(fake_openai.batches) == 2
    killed_batches = set(fake_openai.batches)

    # The resumed run: the provider finishes the batches at the next poll.
    fake_openai.batch_polls = 0
    n_requests = fake_openai.request_count
    usage = UsageTracker.with_log(usage_log)
    with make_client(cfg, cache, usage=usage) as client:
        out = client.map(requests, "annotator")
    assert answers(out) == answers(online)
    after = fake_openai.requests[n_requests:]
    polled = {r.path.rsplit("/", 1)[-1] for r in after if r.method == "GET" and "/batches/" in r.path}
    # It polled the killed run's batches; only the re-asks (which need the answers) were new.
    assert killed_batches <= polled
    new_batches = [b for b in fake_openai.batches.values() if b.id not in killed_batches]
    assert len(new_batches) == 1 and all("not accepted" in json.dumps(ln) for ln in new_batches[0].lines)
    sent = [cid for ids in fake_openai.batch_submissions() for cid in ids]
    assert len(sent) == len(set(sent))
    # The usage log of both processes: each request counted once, at the batch price.
    resumed = UsageTracker.from_log(usage_log)
    assert paid(resumed) == {**paid(online_usage), "batch_calls": online_usage.total().calls,
                             "cost_usd": pytest.approx(0.5 * online_usage.total().cost_usd)}
    assert resumed.total().answered == online_usage.total().answered


class Crash(BaseException):
    """Stands for the process dying at that point (nothing after it runs)."""


def crash_on(monkeypatch, event: str, nth: int = 1, after_write: bool = True) -> None:
    """Make the journal's ``nth`` write of ``event`` kill the run (after or instead of the write)."""
    real = BatchJournal.append
    count = {"n": 0}

    def append(self, ev, local, **fields):
        if ev == event:
            count["n"] += 1
            if count["n"] == nth:
                if after_write:
                    real(self, ev, local, **fields)
                raise Crash(f"killed at journal event {event} #{nth}")
        real(self, ev, local, **fields)

    monkeypatch.setattr(BatchJournal, "append", append)


def crashed_run(openai_cfg, monkeypatch, inject, cache: Path, log: Path | None, requests) -> None:
    """A batch-mode run that dies where ``inject(monkeypatch)`` says."""
    usage = UsageTracker.with_log(log) if log else None
    with monkeypatch.context() as m:
        inject(m)
        with pytest.raises(Crash), make_client(batch_cfg(openai_cfg), cache, usage=usage) as client:
            client.map(requests, "annotator")


def resumed_run(openai_cfg, cache: Path, log: Path | None, requests) -> list:
    usage = UsageTracker.with_log(log) if log else None
    with make_client(batch_cfg(openai_cfg), cache, usage=usage) as client:
        return client.map(requests, "annotator")


def uninterrupted(fake, openai_cfg, cache: Path, requests) -> tuple[list, UsageTracker]:
    usage = UsageTracker()
    with make_client(batch_cfg(openai_cfg), cache, usage=usage) as client:
        out = client.map(requests, "annotator")
    fake.reset()
    fake.batches.clear()
    return out, usage


def test_crash_between_creating_and_journaling_a_batch_finds_it_by_listing(fake_openai, openai_cfg, tmp_path,
                                                                           monkeypatch):
    fake_openai.handler = color_handler
    requests = build_requests(6)
    ref, ref_usage = uninterrupted(fake_openai, openai_cfg, tmp_path / "ref", requests)

    cache, log = tmp_path / "cache", tmp_path / "usage.jsonl"
    # The batch exists, the journal does not say so.
    crashed_run(openai_cfg, monkeypatch, lambda m: crash_on(m, "submitted", after_write=False), cache, log, requests)
    assert len(fake_openai.batches) == 1 and [e for e, _ in journal_events(cache)] == ["uploaded"]
    created = next(iter(fake_openai.batches))

    assert answers(resumed_run(openai_cfg, cache, log, requests)) == answers(ref)
    assert any(r.method == "GET" and r.path.endswith("/batches?limit=100") for r in fake_openai.requests)
    # The batch the crashed run created was polled to the end and used; the only new one holds the re-asks.
    assert fake_openai.batches[created].status == "completed" and len(fake_openai.batches) == 2
    assert paid(UsageTracker.from_log(log)) == paid(ref_usage)


def test_crash_during_the_reask_round_replays_it_without_paying_twice(fake_openai, openai_cfg, tmp_path,
                                                                      monkeypatch):
    fake_openai.handler = color_handler
    requests = build_requests(9)
    ref, ref_usage = uninterrupted(fake_openai, openai_cfg, tmp_path / "ref", requests)

    cache, log = tmp_path / "cache", tmp_path / "usage.jsonl"
    real_wait = batch_mod.BatchRunner._wait
    waits = {"n": 0}

    def wait_then_die(self, batches):
        waits["n"] += 1
        if waits["n"] == 2:  # the re-ask batch is created, journaled and counted: die polling it
            raise Crash("killed while polling the re-ask batch")
        real_wait(self, batches)

    crashed_run(openai_cfg, monkeypatch, lambda m: m.setattr(batch_mod.BatchRunner, "_wait", wait_then_die),
                cache, log, requests)
    assert len(fake_openai.batches) == 2
    before = fake_openai.batch_submissions()

    assert answers(resumed_run(openai_cfg, cache, log, requests)) == answers(ref)
    assert fake_openai.batch_submissions() == before  # both batches collected, none submitted
    # Tokens counted once (the first batch was read by the killed run), re-asks counted once.
    assert paid(UsageTracker.from_log(log)) == paid(ref_usage)
    assert all(e in ("uploaded", "submitted", "accounted", "collected") for e, _ in journal_events(cache))
    assert [e for e, _ in journal_events(cache)].count("collected") == 2


def test_a_crash_before_upload_submits_fresh_and_a_lost_batch_is_resubmitted(fake_openai, openai_cfg, tmp_path,
                                                                            monkeypatch):
    fake_openai.handler = color_handler
    requests = build_requests(4)
    cache = tmp_path / "cache"
    # Uploaded, not journaled: nothing was sent, nothing to resume.
    crashed_run(openai_cfg, monkeypatch, lambda m: crash_on(m, "uploaded", after_write=False), cache, None, requests)
    assert fake_openai.batches == {} and journal_events(cache) == []

    # A journaled batch the provider no longer knows (404) is abandoned and its requests sent again.
    crashed_run(openai_cfg, monkeypatch, lambda m: crash_on(m, "accounted", after_write=False), cache, None, requests)
    fake_openai.batches.clear()
    out = resumed_run(openai_cfg, cache, None, requests)
    assert [r.parsed for r in out] == ["Red", "Green", "Blue", "Blue", "Red"]
    assert "abandoned" in [e for e, _ in journal_events(cache)]


# --------------------------------------------------------------------------------------------
# (4) config
# --------------------------------------------------------------------------------------------
def test_batch_config_fields_defaults_and_validation():
    cfg = LLMConfig()
    assert (cfg.mode, cfg.batch_price_factor, cfg.batch_max_requests, cfg.batch_max_resubmits) == ("online", 0.5, 50_000, 2)
    assert LLMConfig(backend="openai", mode="batch").mode == "batch"
    for bad in (
        dict(mode="bulk"),
        dict(backend="local", mode="batch"),
        dict(backend="embedded", mode="batch"),
        dict(batch_price_factor=1.5),
        dict(batch_price_factor=-0.1),
        dict(batch_max_requests=0),
        dict(batch_max_requests=50_001),
        dict(batch_poll_interval_s=0),
        dict(batch_poll_interval_s=60, batch_poll_max_interval_s=30),
        dict(batch_max_resubmits=-1),
    ):
        with pytest.raises(ValidationError):
            LLMConfig(**bad)

    run = RunConfig.load(overrides=["llms.default.backend=openai", "llms.default.mode=batch",
                                    "llms.default.batch_price_factor=0.4"])
    assert run.llms["default"].mode == "batch" and run.llms["default"].batch_price_factor == 0.4
    with pytest.raises(ValidationError) as ei:
        RunConfig.load(overrides=["llms.default.mode=batch"])
    assert describe_errors(ei.value) == [
        "llms.default: mode 'batch' needs backend 'openai' (a server with the files and batches endpoints), "
        "got backend 'embedded'"
    ]
    template = config_template()
    assert "mode: online" in template and "batch_price_factor: 0.5" in template


def test_batch_mode_needs_a_backend_with_a_batch_api(openai_cfg):
    class Plain:
        def identity(self) -> str:
            return "plain"

        def complete(self, request):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match="Batch API"):
        LLMClient(Plain(), batch_cfg(openai_cfg), None)


def test_journal_skips_a_line_cut_short(tmp_path):
    j = BatchJournal(tmp_path)
    j.append("uploaded", "a", file_id="file-1", identity="x", stage="s", n=1)
    with open(j.path, "a") as fh:
        fh.write('{"event": "submitted", "local": "a", "batch')  # killed mid-write
    assert [s["local"] for s in j.open_batches("x")] == ["a"] and j.open_batches("y") == []
    assert batch_mod.custom_ids(b'{"custom_id": "k1"}\n\n{"custom_id": "k2"}\n') == {"k1", "k2"}
    assert JOURNAL_FILENAME == "batches.jsonl"
