"""Assigners: valid paths by construction, the validator, checkpoint/resume, LLM control flow."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest

from agentictagger.assign import (
    NONE_CHOICE,
    Assignment,
    EmbeddingAssigner,
    HybridAssigner,
    InvalidPathError,
    LLMAssigner,
    SingleCallAssigner,
    assign_catalog,
    make_assigner,
    repair_path,
    run_assign,
)
from agentictagger.config import AssignConfig
from agentictagger.llm.types import (
    ChatResponse,
    ChoiceConstraint,
    JsonSchemaConstraint,
    LLMError,
)
from agentictagger.structures.semantic_ids import SemanticIds
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary


@dataclass(frozen=True)
class It:
    item_id: str
    text: str
    label: str | None = None


class WordEncoder:
    """Bag of words with a fixed random vector per word: texts sharing words are similar."""

    dim = 256

    def __init__(self) -> None:
        self.calls = 0

    def _word(self, w: str) -> np.ndarray:
        seed = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                out[i] += self._word(w)
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


def make_vocab() -> Vocabulary:
    v = Vocabulary()
    hair, nails, skin = v.add_children(ROOT_ID, [("Hair", "hair shampoo dryer"), ("Nails", "nail polish lacquer remover acetone"), ("Skin", "skin lotion")])
    v.add_children(hair.id, [("Shampoo", "shampoo wash"), ("Dryer", "hair dryer blow")])
    v.add_children(nails.id, [("Polish", "nail polish lacquer"), ("Remover", "polish remover acetone")])
    return v


ITEMS = [
    It("a", "hair shampoo wash for hair"),
    It("b", "nail polish lacquer red"),
    It("c", "blow dryer for hair"),
    It("d", "acetone polish remover"),
    It("e", "skin lotion"),
    It("f", "nail polish lacquer pink"),
]


def test_embedding_assigner_nearest_child_per_level_and_valid():
    v = make_vocab()
    paths = EmbeddingAssigner(WordEncoder()).assign(ITEMS, v)
    names = [[v[d].name for d in p] for p in paths]
    assert names == [
        ["Hair", "Shampoo"],
        ["Nails", "Polish"],
        ["Hair", "Dryer"],
        ["Nails", "Remover"],
        ["Skin"],  # a leaf: the walk stops
        ["Nails", "Polish"],
    ]
    assert all(v.is_valid_path(p) for p in paths)


def test_embedding_assigner_threshold_stops_weak_matches():
    v = make_vocab()
    full = EmbeddingAssigner(WordEncoder()).assign(ITEMS, v)
    cut = EmbeddingAssigner(WordEncoder(), stop_quantile=0.5).assign(ITEMS, v)
    assert all(v.is_valid_path(p) for p in cut)
    assert sum(map(len, cut)) < sum(map(len, full))
    assert all(full[i][: len(p)] == p for i, p in enumerate(cut))  # stopping only shortens
    none = EmbeddingAssigner(WordEncoder(), min_similarity=1.01).assign(ITEMS, v)
    assert none == [[] for _ in ITEMS]


class BrokenAssigner:
    """Returns a path that skips a level (a child of the wrong parent)."""

    name = "broken"

    def assign(self, items, vocab):
        polish = next(d.id for d in vocab if d.name == "Polish")
        hair = next(d.id for d in vocab if d.name == "Hair")
        return [[hair, polish] for _ in items]


def test_invalid_path_is_refused_with_the_item_named(tmp_path):
    v = make_vocab()
    with pytest.raises(InvalidPathError, match=r"item 'a'.*not a child"):
        assign_catalog(ITEMS, v, BrokenAssigner(), checkpoint=tmp_path / "ck.jsonl")
    assert not (tmp_path / "ck.jsonl").exists()  # nothing invalid was written
    bad = Assignment({"x": ["d9"]})
    with pytest.raises(InvalidPathError, match="not in the vocabulary"):
        bad.validate(v)


class FlakyAssigner:
    name = "flaky"

    def __init__(self, inner, fail_on_call: int | None) -> None:
        self.inner, self.fail_on_call, self.calls, self.seen = inner, fail_on_call, 0, []

    def assign(self, items, vocab):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt("killed")
        self.seen += [it.item_id for it in items]
        return self.inner.assign(items, vocab)


def test_checkpoint_resume_repeats_no_item(tmp_path):
    v = make_vocab()
    ck = tmp_path / "assignments.partial.jsonl"
    first = FlakyAssigner(EmbeddingAssigner(WordEncoder()), fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        assign_catalog(ITEMS, v, first, chunk_size=4, checkpoint=ck)
    assert len(ck.read_text().splitlines()) == 4
    with ck.open("a") as f:
        f.write('{"item_id": "e", "pa')  # a torn last line from the kill
    second = FlakyAssigner(EmbeddingAssigner(WordEncoder()), fail_on_call=None)
    a = assign_catalog(ITEMS, v, second, chunk_size=4, checkpoint=ck)
    assert second.seen == ["e", "f"]
    assert a.item_ids == [it.item_id for it in ITEMS]  # catalog order, not completion order
    assert a.meta["resumed_items"] == 4
    assert a.paths == dict(zip([it.item_id for it in ITEMS], EmbeddingAssigner(WordEncoder()).assign(ITEMS, v)))


def test_assignment_round_trips(tmp_path):
    a = Assignment({"a": ["d1", "d1.1"], "b": ["d3"], "c": []}, {"assigner": "x", "stats": {"n": 1}})
    for save, load, name in (
        (a.save_json, Assignment.load_json, "a.json"),
        (a.save_jsonl, Assignment.load_jsonl, "a.jsonl"),
        (a.save_parquet, Assignment.load_parquet, "a.parquet"),
    ):
        save(tmp_path / name)
        b = load(tmp_path / name)
        assert b.paths == a.paths and list(b.paths) == list(a.paths)
        assert b.meta == a.meta


# -- LLM assigners with a scripted client --------------------------------------------------------


class ScriptedClient:
    """Answers like a model that picks the choice sharing most words with the item, or 'none'.

    Records every request so tests can inspect prompts and constraints.
    """

    def __init__(self, fail_when=None, garbage_when=None) -> None:
        self.requests = []
        self.fail_when = fail_when or (lambda text: False)
        self.garbage_when = garbage_when or (lambda text: False)

    @staticmethod
    def _pick(item: str, choices, head: str = "") -> str:
        # What the "model" knows about a choice: its name plus its definition line in the prompt.
        defs = dict(re.findall(r"^\s*- ([^:\n]+): (.*)$", head, flags=re.M))
        words = set(re.findall(r"[a-z]+", item.lower()))

        def about(c: str) -> set[str]:
            last = c.split(" > ")[-1]
            return set(re.findall(r"[a-z]+", (last + " " + defs.get(last, "")).lower()))

        scored = [(len(words & about(c)), c) for c in choices if c != NONE_CHOICE]
        best = max(scored)
        if best[0] == 0 and NONE_CHOICE in choices:
            return NONE_CHOICE
        return best[1]

    def map(self, requests, stage, progress=None):
        out = []
        for r in requests:
            self.requests.append(r)
            user = r.messages[-1].content
            if self.fail_when(user):
                out.append(LLMError("scripted failure"))
                continue
            c = r.constraint
            if isinstance(c, ChoiceConstraint):
                head, item = user.rsplit("Item:\n", 1)
                ans = "Made Up Category" if self.garbage_when(user) else self._pick(item, c.choices, head)
                out.append(ChatResponse(text=ans, parsed=ans))
            else:
                assert isinstance(c, JsonSchemaConstraint)
                props = c.schema["properties"]
                if "answers" in props:
                    enum = props["answers"]["items"]["enum"]
                    head, body = user.rsplit("Items:\n", 1)
                    parsed = {"answers": [self._pick(ln.split(". ", 1)[1], enum, head) for ln in body.splitlines()]}
                else:  # single call, JSON mode: a path of names, deliberately wrong at level 2
                    parsed = {"path": ["Nails", "Shampoo"]}
                out.append(ChatResponse(text=json.dumps(parsed), parsed=parsed))
        return out


def names(v, paths):
    return [[v[d].name for d in p] for p in paths]


def test_llm_assigner_walks_down_and_stops():
    v = make_vocab()
    client = ScriptedClient()
    items = ITEMS + [It("g", "cuticle kit for nails")]
    paths = LLMAssigner(client).assign(items, v)
    assert names(v, paths) == [
        ["Hair", "Shampoo"],
        ["Nails", "Polish"],
        ["Hair", "Dryer"],
        ["Nails", "Remover"],
        ["Skin"],
        ["Nails", "Polish"],
        ["Nails"],  # "none of these" at level 2
    ]
    level1 = [r for r in client.requests if "belongs to" not in r.messages[-1].content]
    level2 = [r for r in client.requests if "belongs to" in r.messages[-1].content]
    assert len(level1) == 7 and len(level2) == 6  # "Skin" is a leaf: no call
    # Level 1 never offers a stop (every item needs a descriptor); level 2 does.
    assert all(NONE_CHOICE not in r.constraint.choices for r in level1)
    assert all(NONE_CHOICE in r.constraint.choices for r in level2)


def test_llm_prompt_is_shared_first_and_byte_stable():
    v = make_vocab()
    client = ScriptedClient()
    LLMAssigner(client).assign(ITEMS, v)
    by_prefix: dict[tuple, list[str]] = {}
    for r in client.requests:
        user = r.messages[-1].content
        head, item = user.rsplit("Item:\n", 1)
        assert item in {it.text for it in ITEMS}  # the item is last, and nothing follows it
        by_prefix.setdefault((r.messages[0].content, head, r.constraint.choices), []).append(item)
    # One prefix per parent node (root, Hair, Nails), and the requests were issued grouped by it.
    assert len(by_prefix) == 3
    heads = [r.messages[-1].content.rsplit("Item:\n", 1)[0] for r in client.requests]
    changes = sum(1 for a, b in zip(heads, heads[1:]) if a != b)
    assert changes == 2
    root_head = next(h for h in heads if "belongs to" not in h)
    assert "- Hair: hair shampoo dryer" in root_head and "- Skin: skin lotion" in root_head


def test_llm_failures_and_invalid_answers_stop_without_invalid_paths():
    v = make_vocab()
    def item_of(u: str) -> str:
        return u.rsplit("Item:\n", 1)[1]

    client = ScriptedClient(
        fail_when=lambda u: "belongs to: Hair" in u and "dryer" in item_of(u),
        garbage_when=lambda u: "belongs to" in u and "acetone" in item_of(u),
    )
    a = LLMAssigner(client)
    paths = a.assign(ITEMS, v)
    assert all(v.is_valid_path(p) for p in paths)
    assert names(v, paths)[2] == ["Hair"] and names(v, paths)[3] == ["Nails"]
    assert a.stats["failed_calls"] == 1 and a.stats["unanswered"] == 2  # the failed call and the made-up answer


def test_llm_several_items_per_call():
    v = make_vocab()
    client = ScriptedClient()
    one = LLMAssigner(ScriptedClient()).assign(ITEMS, v)
    many = LLMAssigner(client, items_per_call=4).assign(ITEMS, v)
    assert many == one
    root_calls = [r for r in client.requests if "belongs to" not in r.messages[-1].content]
    assert len(root_calls) == 2  # 6 items, 4 per call
    schema = root_calls[0].constraint.schema["properties"]["answers"]
    assert schema["minItems"] == schema["maxItems"] == 4
    assert set(schema["items"]["enum"]) == {"Hair", "Nails", "Skin"}


def test_hybrid_offers_only_the_embedding_shortlist():
    v = make_vocab()
    # Widen the root so a shortlist of 2 actually narrows it.
    v.add_children(ROOT_ID, [("Tools", "tweezers clippers"), ("Fragrance", "perfume scent")])
    client = ScriptedClient()
    paths = HybridAssigner(client, WordEncoder(), shortlist=2).assign(ITEMS, v)
    assert all(v.is_valid_path(p) for p in paths)
    for r in client.requests:
        assert len([c for c in r.constraint.choices if c != NONE_CHOICE]) <= 2
    assert names(v, paths)[1] == ["Nails", "Polish"]


def test_single_call_choice_over_full_paths_and_json_repair():
    v = make_vocab()
    client = ScriptedClient()
    a = SingleCallAssigner(client)
    paths = a.assign(ITEMS[:2], v)
    choices = client.requests[0].constraint.choices
    assert "Hair > Shampoo" in choices and "Hair" in choices and "Skin" in choices  # internal nodes = stop
    assert names(v, paths) == [["Hair", "Shampoo"], ["Nails", "Polish"]]
    j = SingleCallAssigner(ScriptedClient(), max_paths=1)  # forces the JSON list of names
    paths = j.assign(ITEMS[:3], v)
    assert names(v, paths) == [["Nails"]] * 3  # "Shampoo" is not under "Nails": cut to the valid prefix
    assert j.stats["repaired"] == 3
    assert repair_path(v, ["nails", " Polish "]) == repair_path(v, ["Nails", "Polish"]) != []


def test_run_assign_writes_outputs_and_resumes(tmp_path):
    v = make_vocab()
    cfg = AssignConfig(assigner="embedding")
    a = run_assign(ITEMS, v, cfg, tmp_path, embedder=WordEncoder())
    assert (tmp_path / "assignments.jsonl").exists() and (tmp_path / "semantic_ids.parquet").exists()
    assert Assignment.load_jsonl(tmp_path / "assignments.jsonl").paths == a.paths
    sids = SemanticIds.read(tmp_path / "semantic_ids.parquet")
    assert len({(r.path, r.resolver) for r in sids}) == len(ITEMS)
    assert not (tmp_path / "assignments.partial.jsonl").exists()  # finished: only the outputs stay
    b = run_assign(ITEMS, v, cfg, tmp_path, embedder=WordEncoder())
    assert b.paths == a.paths
    with pytest.raises(ValueError, match="needs an LLM"):
        run_assign(ITEMS, v, AssignConfig(assigner="llm"), tmp_path / "x")
    assert isinstance(make_assigner(AssignConfig(assigner="single_call"), llm_client=ScriptedClient()), SingleCallAssigner)


def test_embedding_lookahead_lets_a_specific_descendant_pick_the_branch():
    v = Vocabulary()
    tools, makeup = v.add_children(ROOT_ID, [("Accessories", "misc things"), ("Makeup", "makeup cosmetics")])
    v.add_children(tools.id, [("Tweezers", "tweezers slanted steel")])
    item = [It("t", "slanted steel tweezers with makeup pouch")]
    plain = EmbeddingAssigner(WordEncoder(), lookahead=0.0).assign(item, v)
    ahead = EmbeddingAssigner(WordEncoder(), lookahead=0.5).assign(item, v)
    assert names(v, plain) == [["Makeup"]]
    assert names(v, ahead) == [["Accessories", "Tweezers"]]


def test_llm_assigner_through_the_real_client_cache_and_reasks(tmp_path):
    """The LLM client around an in-test backend: answers are validated (sloppy case accepted,
    nonsense re-asked then given up on, so the item stops), and a rerun is served from the cache."""
    from agentictagger.config import LLMConfig
    from agentictagger.llm.client import LLMClient

    class Backend:
        calls = 0

        def identity(self) -> str:
            return "scripted-backend"

        def complete(self, request):
            Backend.calls += 1
            user = request.messages[1].content  # the original prompt; a re-ask appends turns
            if "belongs to" not in user:
                item = user.rsplit("Item:\n", 1)[1]
                text = ScriptedClient._pick(item, request.constraint.choices, user).upper()  # sloppy case
            else:
                text = "I think it is a lovely product"  # never valid
            return ChatResponse(text=text)

    v = make_vocab()
    cfg = LLMConfig(max_reasks=1, max_retries=0, max_concurrency=2)
    client = LLMClient(Backend(), cfg, tmp_path / "cache")
    a = LLMAssigner(client)
    paths = a.assign(ITEMS, v)
    assert names(v, paths) == [["Hair"], ["Nails"], ["Hair"], ["Nails"], ["Skin"], ["Nails"]]
    assert a.stats["failed_calls"] == 5  # the five level-2 calls, each asked twice
    first = Backend.calls
    assert first == 6 + 5 * 2
    again = LLMAssigner(LLMClient(Backend(), cfg, tmp_path / "cache")).assign(ITEMS, v)
    assert again == paths
    assert Backend.calls - first == 5 * 2  # level 1 from the cache; failures are not cached


def test_resume_retries_items_left_without_a_descriptor(tmp_path):
    v = make_vocab()
    ck = tmp_path / "ck.jsonl"
    ck.write_text('{"item_id": "a", "path": []}\n{"item_id": "b", "path": ["d2", "d2.1"]}\n')
    again = FlakyAssigner(EmbeddingAssigner(WordEncoder()), fail_on_call=None)
    a = assign_catalog(ITEMS[:2], v, again, checkpoint=ck)
    assert again.seen == ["a"] and names(v, [a["a"]]) == [["Hair", "Shampoo"]]
    assert a.meta["empty_paths"] == 0


def test_single_call_drops_definitions_when_the_tree_is_too_long():
    v = make_vocab()
    client = ScriptedClient()
    SingleCallAssigner(client).assign(ITEMS[:1], v)
    assert "- Hair: hair shampoo dryer" in client.requests[0].messages[-1].content
    short = ScriptedClient()
    a = SingleCallAssigner(short, max_tree_chars=60)
    a.assign(ITEMS[:1], v)
    prompt = short.requests[0].messages[-1].content
    assert "- Hair\n" in prompt and "  - Shampoo\n" in prompt and "hair shampoo dryer" not in prompt
    assert a.stats["tree_without_definitions"] == 1
