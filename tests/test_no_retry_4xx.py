"""Permanent HTTP answers (400, 401, 403, 404, 422) fail at once with a clear error; only
408/409/429/5xx, timeouts and dropped connections are retried. Counted at a real local server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_openai_server import FakeOpenAIServer, Reply

from agentictagger.llm.factory import make_client
from agentictagger.llm.types import ChatRequest, ChoiceConstraint, LLMError, TransientLLMError
from agentictagger.vocab.agents import DescriptorDraft, JobView
from agentictagger.vocab.llm_agents import LLMAnnotator

COLORS = ChoiceConstraint(("Red", "Green", "Blue"))
HINTS = {
    400: "not retried",
    401: "API key",
    403: "no access",
    404: "check base_url",
    422: "rejected the request's parameters",
}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_status_fails_at_once(fake_openai, openai_cfg, tmp_path, status):
    fake_openai.handler = lambda body: (status, f"refused with {status}")
    client = make_client(openai_cfg(max_retries=5), tmp_path)
    with pytest.raises(LLMError) as ei:
        client.complete(ChatRequest.chat(None, "Pick.", constraint=COLORS), stage="architect")
    err = ei.value
    assert not isinstance(err, TransientLLMError)
    assert fake_openai.request_count == 1 and client.backend_calls == 1
    assert err.status == status and err.attempts == 1
    msg = str(err)
    assert f"HTTP {status}" in msg and f"refused with {status}" in msg and HINTS[status] in msg
    s = client.usage.stage("architect")
    assert (s.calls, s.retries, s.reasks, s.failures) == (1, 0, 0, 1)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_transient_status_is_retried(fake_openai, openai_cfg, tmp_path, status):
    fake_openai.handler = lambda body: (status, "try later")
    client = make_client(openai_cfg(max_retries=2), tmp_path)
    with pytest.raises(TransientLLMError):
        client.complete(ChatRequest.chat(None, "Pick.", constraint=COLORS))
    assert fake_openai.request_count == 3


def test_llama_cpp_context_overflow_is_permanent_and_says_what_to_change(fake_openai, openai_cfg, tmp_path):
    body = {
        "error": {
            "code": 400,
            "message": "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 5000,
            "n_ctx": 4096,
        }
    }
    fake_openai.handler = lambda r: (400, body)
    client = make_client(openai_cfg(), tmp_path)
    with pytest.raises(LLMError) as ei:
        client.complete(ChatRequest.chat(None, "long prompt"))
    msg = str(ei.value)
    assert "exceeds the available context size" in msg and "n_ctx" in msg and "context_tokens" in msg
    assert fake_openai.request_count == 1


def test_dropped_connections_are_retried(openai_cfg, tmp_path):
    server = FakeOpenAIServer().start()
    url = server.url
    server.stop()
    client = make_client(openai_cfg(base_url=url, max_retries=2, timeout_s=2.0), tmp_path)
    with pytest.raises(TransientLLMError, match="connection failed"):
        client.complete(ChatRequest.chat(None, "hi"))
    assert client.backend_calls == 3


def _job(n: int) -> JobView:
    texts = [f"item number {i}" for i in range(n)]
    return JobView("root", 1, [], texts, np.zeros((n, 4), dtype=np.float32))


def test_batched_annotator_does_not_reask_item_by_item_after_an_auth_error(fake_openai, openai_cfg, tmp_path):
    fake_openai.handler = lambda body: (401, "bad key")
    client = make_client(openai_cfg(), tmp_path)
    ann = LLMAnnotator(client, output="json", items_per_call=5)
    out = ann.annotate(_job(10), [DescriptorDraft("Apples", "apples"), DescriptorDraft("Pears", "pears")], list(range(10)))
    assert fake_openai.request_count == 2  # one per batch; no per-item retries of a 401
    assert all(a.error and "HTTP 401" in a.error for a in out)


def test_batched_annotator_asks_singly_when_the_batch_was_too_big(fake_openai, openai_cfg, tmp_path):
    def handler(body):
        user = body["messages"][-1]["content"]
        if "Items:" in user:  # a batch: too long for this server
            return (400, "request exceeds the available context size")
        return json.dumps({"descriptor": "Apples", "note": ""})

    fake_openai.handler = handler
    client = make_client(openai_cfg(), tmp_path)
    ann = LLMAnnotator(client, output="json", items_per_call=5)
    out = ann.annotate(_job(10), [DescriptorDraft("Apples", "apples"), DescriptorDraft("Pears", "pears")], list(range(10)))
    assert fake_openai.request_count == 2 + 10
    assert all(a.matches == [0] for a in out)


def test_timeouts_stay_retried(fake_openai, openai_cfg, tmp_path):
    fake_openai.enqueue(Reply(content="Red", delay_s=3.0), Reply(content="Red", delay_s=3.0), "Blue")
    client = make_client(openai_cfg(timeout_s=0.3, max_retries=3), tmp_path)
    assert client.complete(ChatRequest.chat(None, "Pick.", constraint=COLORS)).parsed == "Blue"
    assert fake_openai.request_count == 3
