"""OpenAIBackend against a real local OpenAI-compatible server: payloads, errors, keys."""

from __future__ import annotations

import json
import logging

import pytest
from fake_openai_server import Reply

from agentictagger.config import LLMConfig
from agentictagger.llm.backends.openai_compat import (
    LOCAL_DUMMY_KEY,
    OpenAIBackend,
    is_local_url,
    is_strict_compatible,
)
from agentictagger.llm.factory import make_client
from agentictagger.llm.types import (
    ChatRequest,
    ChoiceConstraint,
    JsonSchemaConstraint,
    LLMError,
    SamplingParams,
    TransientLLMError,
)
from agentictagger.llm.usage import UsageTracker

SECRET = "sk-test-SECRET123"
KEY_VAR = "AGENTICTAGGER_TEST_API_KEY"
COLORS = ChoiceConstraint(("Red", "Green", "Blue"))
LOOSE = JsonSchemaConstraint({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
                             name="item tags!")


def test_json_schema_mode_wraps_a_choice_and_unwraps_the_answer(fake_openai, openai_cfg):
    fake_openai.enqueue('{"choice": "Green"}')
    backend = OpenAIBackend(openai_cfg(structured_output="json_schema"))
    resp = backend.complete(ChatRequest.chat("sys", "Pick one.", constraint=COLORS))
    assert resp.text == "Green"
    body = fake_openai.chat_bodies()[0]
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"]["properties"]["choice"]["enum"] == ["Red", "Green", "Blue"]
    assert rf["json_schema"]["schema"]["required"] == ["choice"]
    # The choices are also in the prompt, for servers that ignore response_format.
    user = body["messages"][-1]["content"]
    assert user.startswith("Pick one.") and "- Red\n- Green\n- Blue" in user
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert body["model"] == "fake-model" and body["temperature"] == 0.0 and body["seed"] == 0


def test_json_schema_mode_sends_user_schema_strict_only_when_allowed(fake_openai, openai_cfg):
    fake_openai.enqueue('{"tags": ["a"]}')
    backend = OpenAIBackend(openai_cfg())
    backend.complete(ChatRequest.chat(None, "Tag it.", constraint=LOOSE))
    js = fake_openai.chat_bodies()[0]["response_format"]["json_schema"]
    assert js["name"] == "item_tags_" and js["schema"] == LOOSE.schema
    # OpenAI rejects strict=True for schemas with optional properties; send strict=False then.
    assert js["strict"] is False
    strict_schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"],
                             "additionalProperties": False}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert is_strict_compatible(strict_schema)
    assert not is_strict_compatible({**strict_schema, "required": []})
    # String lengths are a hint (the client validates them), not strict: not every provider accepts them.
    bounded = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 9}}, "required": ["a"],
               "additionalProperties": False}
    assert not is_strict_compatible(bounded)


def test_schema_in_the_prompt_only_when_asked_and_cache_keys_of_the_default_unchanged(fake_openai, openai_cfg):
    import dataclasses

    fake_openai.enqueue('{"tags": ["a"]}', '{"tags": ["b"]}')
    backend = OpenAIBackend(openai_cfg())
    backend.complete(ChatRequest.chat(None, "Tag it.", constraint=LOOSE))
    quiet = dataclasses.replace(LOOSE, show_schema=False)
    backend.complete(ChatRequest.chat(None, "Tag it.", constraint=quiet))
    shown, hidden = (b["messages"][-1]["content"] for b in fake_openai.chat_bodies())
    assert "JSON schema" in shown and hidden == "Tag it."
    # The server still gets the schema to enforce.
    assert fake_openai.chat_bodies()[1]["response_format"]["json_schema"]["schema"] == LOOSE.schema
    # The default leaves the request's canonical form (its cache key) as it was.
    assert "show_schema" not in ChatRequest.chat(None, "x", constraint=LOOSE).canonical()["constraint"]
    assert ChatRequest.chat(None, "x", constraint=LOOSE).cache_key("m") != ChatRequest.chat(None, "x", constraint=quiet).cache_key("m")


def test_a_backend_grammar_replaces_response_format(fake_openai, openai_cfg):
    fake_openai.enqueue('{"tags": []}')
    backend = OpenAIBackend(openai_cfg())
    backend.grammar = lambda schema: "root ::= " + json.dumps(sorted(schema["properties"]))
    backend.complete(ChatRequest.chat(None, "Tag.", constraint=LOOSE))
    body = fake_openai.chat_bodies()[0]
    assert "response_format" not in body and body["grammar"] == 'root ::= ["tags"]'
    backend.grammar = lambda schema: None  # cannot: the schema goes as response_format
    assert "response_format" in backend.build_kwargs(ChatRequest.chat(None, "Tag.", constraint=LOOSE))


def test_guided_mode_uses_vllm_extras(fake_openai, openai_cfg):
    fake_openai.enqueue("Blue", '{"tags": []}')
    backend = OpenAIBackend(openai_cfg(structured_output="guided"))
    assert backend.complete(ChatRequest.chat(None, "Pick.", constraint=COLORS)).text == "Blue"
    backend.complete(ChatRequest.chat(None, "Tag.", constraint=LOOSE))
    first, second = fake_openai.chat_bodies()
    assert first["guided_choice"] == ["Red", "Green", "Blue"] and "response_format" not in first
    assert second["guided_json"] == LOOSE.schema


def test_prompt_mode_only_lists_choices_and_the_client_validates(fake_openai, openai_cfg, tmp_path):
    fake_openai.enqueue("The answer is red", "red.")
    client = make_client(openai_cfg(structured_output="prompt"), tmp_path)
    resp = client.complete(ChatRequest.chat(None, "Pick.", constraint=COLORS))
    assert resp.parsed == "Red" and resp.attempts == 2
    body = fake_openai.chat_bodies()[0]
    assert "response_format" not in body and "guided_choice" not in body
    assert "exactly one of these options" in body["messages"][-1]["content"]


def test_sampling_params_are_sent(fake_openai, openai_cfg):
    fake_openai.enqueue("ok")
    params = SamplingParams(temperature=0.7, max_tokens=33, top_p=0.9, seed=None, stop=("\n\n",))
    OpenAIBackend(openai_cfg()).complete(ChatRequest.chat(None, "hi", params=params))
    body = fake_openai.chat_bodies()[0]
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) == (0.7, 33, 0.9, ["\n\n"])
    assert "seed" not in body and "response_format" not in body


def test_usage_includes_cached_prompt_tokens(fake_openai, openai_cfg):
    fake_openai.enqueue(Reply(content="Red", prompt_tokens=120, completion_tokens=3, cached_tokens=100))
    resp = OpenAIBackend(openai_cfg()).complete(ChatRequest.chat(None, "hi"))
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.cached_prompt_tokens) == (120, 3, 100)
    assert resp.model == "fake-model"


@pytest.mark.parametrize(
    "status, transient",
    [(429, True), (500, True), (503, True), (408, True), (400, False), (401, False), (404, False), (422, False)],
)
def test_status_codes_map_to_transient_or_permanent(fake_openai, openai_cfg, status, transient):
    fake_openai.enqueue((status, f"status {status} from server"))
    with pytest.raises(LLMError) as ei:
        OpenAIBackend(openai_cfg()).complete(ChatRequest.chat(None, "hi"))
    assert isinstance(ei.value, TransientLLMError) is transient
    assert f"HTTP {status}" in str(ei.value) and f"status {status} from server" in str(ei.value)


def test_retry_after_header_is_kept(fake_openai, openai_cfg):
    fake_openai.enqueue(Reply(429, "slow down", headers={"Retry-After": "7"}))
    with pytest.raises(TransientLLMError) as ei:
        OpenAIBackend(openai_cfg()).complete(ChatRequest.chat(None, "hi"))
    assert ei.value.retry_after == 7.0


def test_sdk_does_not_retry_on_its_own(fake_openai, openai_cfg):
    fake_openai.enqueue((500, "boom"), "never reached")
    with pytest.raises(TransientLLMError):
        OpenAIBackend(openai_cfg()).complete(ChatRequest.chat(None, "hi"))
    assert fake_openai.request_count == 1


def test_connection_refused_is_transient(openai_cfg):
    backend = OpenAIBackend(openai_cfg(base_url="http://127.0.0.1:9/v1", timeout_s=2.0))
    with pytest.raises(TransientLLMError, match="connection failed"):
        backend.complete(ChatRequest.chat(None, "hi"))


def test_missing_key_for_remote_url_names_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    cfg = LLMConfig(backend="openai", base_url="https://api.example.com/v1", api_key_env=KEY_VAR)
    with pytest.raises(LLMError, match=KEY_VAR):
        OpenAIBackend(cfg)
    with pytest.raises(LLMError, match="api_key_env is empty"):
        OpenAIBackend(cfg.model_copy(update={"api_key_env": None}))


def test_local_server_without_key_uses_a_dummy(fake_openai, openai_cfg, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    fake_openai.enqueue("ok")
    OpenAIBackend(openai_cfg(api_key_env=KEY_VAR)).complete(ChatRequest.chat(None, "hi"))
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {LOCAL_DUMMY_KEY}"
    assert is_local_url("http://localhost:8000/v1") and is_local_url("http://10.1.2.3/v1")
    assert not is_local_url("https://api.openai.com/v1") and not is_local_url("https://8.8.8.8/v1")


def test_api_key_is_never_logged_cached_or_written(fake_openai, openai_cfg, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(KEY_VAR, SECRET)
    caplog.set_level(logging.DEBUG)  # the SDK and HTTP stack log requests at DEBUG
    fake_openai.enqueue((429, "rate limited"), "not a color", (500, "oops"), "Green",
                        (401, "invalid key"))
    usage = UsageTracker()
    cache_dir = tmp_path / "cache"
    cfg = openai_cfg(api_key_env=KEY_VAR)
    client = make_client(cfg, cache_dir, usage=usage)
    assert client.complete(ChatRequest.chat(None, "first", constraint=COLORS)).parsed == "Green"
    with pytest.raises(LLMError) as ei:
        client.complete(ChatRequest.chat(None, "second", constraint=COLORS))
    usage.save(tmp_path / "usage.json")
    client.close()

    # The key was really used (so this test can fail) ...
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in fake_openai.requests)
    # ... and appears in no log record, error, identity, repr, config dump or file we wrote.
    assert caplog.records and "SECRET123" not in caplog.text
    assert all("SECRET123" not in r.getMessage() for r in caplog.records)
    assert "SECRET123" not in str(ei.value) and "api key" in str(ei.value).lower()
    assert "SECRET123" not in client.identity and "SECRET123" not in repr(client.backend)
    assert "SECRET123" not in cfg.model_dump_json()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.parent == cache_dir for p in files)
    for p in files:
        assert b"SECRET123" not in p.read_bytes(), p


def test_identity_names_endpoint_model_and_mode(openai_cfg):
    a = OpenAIBackend(openai_cfg(structured_output="json_schema")).identity()
    b = OpenAIBackend(openai_cfg(structured_output="prompt")).identity()
    assert a.startswith("openai:http://127.0.0.1:") and ":fake-model:" in a and a != b
