"""LLM assigners: level-by-level choice (optionally over an embedding shortlist) and the single call.

Prompt layout is shared-first: the instructions and the candidate descriptors with their
definitions come first and depend only on the parent node, the item text comes last. The bytes
before the item are identical for every item under the same node, so the embedded backend reuses
the evaluated KV state of that prefix and OpenAI-compatible servers apply their prefix caching.
Requests are issued grouped by parent node so consecutive calls share the longest prefix.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence

import numpy as np

from agentictagger.assign.base import ItemLike
from agentictagger.assign.embedding import DescriptorIndex, TextEncoder
from agentictagger.llm.budget import PromptBudget
from agentictagger.llm.types import (
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    JsonSchemaConstraint,
    LLMError,
    SamplingParams,
)
from agentictagger.structures.vocabulary import ROOT_ID, Descriptor, Vocabulary

log = logging.getLogger(__name__)

NONE_CHOICE = "none of these"
STAGE = "assign"

SYSTEM = (
    "You assign catalog items to the categories of a fixed vocabulary. "
    "Pick the single category that best describes the item, even when several fit."
)


class MapClient(Protocol):
    def map(self, requests: list[ChatRequest], stage: str, progress: Any = None) -> list[ChatResponse | LLMError]: ...


def choice_labels(descs: Sequence[Descriptor], reserved: tuple[str, ...] = (NONE_CHOICE,)) -> list[str]:
    """Unique answer strings for ``descs``: their names, made unique where siblings share one."""
    seen: set[str] = {r.casefold() for r in reserved}
    out = []
    for d in descs:
        label = " ".join(d.name.split()) or d.id
        base, k = label, 2
        while label.casefold() in seen:
            label = f"{base} ({k})"
            k += 1
        seen.add(label.casefold())
        out.append(label)
    return out


def clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _trail(vocab: Vocabulary, node: str) -> str:
    return "" if node == ROOT_ID else vocab.path_names(node)


#: Trims tried in order until a prompt fits the model's context: (item characters, definition
#: characters; None = whole, 0 = names only).
TRIMS: tuple[tuple[int | None, int | None], ...] = ((None, None), (300, None), (300, 120), (160, 60), (100, 0), (60, 0))


def level_prompt(
    vocab: Vocabulary,
    node: str,
    children: Sequence[Descriptor],
    labels: Sequence[str],
    allow_stop: bool,
    multi: bool,
    definition_chars: int | None = None,
) -> str:
    """Everything before the item; byte-stable per (node, children shown, trim)."""
    lines = []
    trail = _trail(vocab, node)
    if trail:
        lines.append(f"The item belongs to: {trail}.")
    lines.append("Categories:")
    for d, label in zip(children, labels):
        definition = " ".join(d.definition.split())
        if definition_chars is not None:
            definition = clip(definition, definition_chars) if definition_chars > 0 else ""
        lines.append(f"- {label}: {definition}" if definition and definition != label else f"- {label}")
    if multi:
        ask = 'Answer with JSON {"answers": [...]}: one category name per item, in the order of the items'
    else:
        ask = "Answer with the one category name that best fits the item, exactly as written"
    if allow_stop:
        ask += f', or "{NONE_CHOICE}" if no category fits'
    lines.append(ask + ".")
    lines.append("")
    lines.append("Items:" if multi else "Item:")
    return "\n".join(lines) + "\n"


class _UsageTally:
    def __init__(self) -> None:
        self.stats: dict[str, int] = defaultdict(int)

    def tally(self, resp: ChatResponse | LLMError) -> None:
        s = self.stats
        s["calls"] += 1
        if isinstance(resp, LLMError):
            s["failed_calls"] += 1
            return
        s["cached_responses"] += int(resp.cached)
        if not resp.cached:
            s["prompt_tokens"] += resp.usage.prompt_tokens
            s["cached_prompt_tokens"] += resp.usage.cached_prompt_tokens
            s["completion_tokens"] += resp.usage.completion_tokens
            s["latency_ms"] += int(resp.latency_s * 1000)


class LLMAssigner(_UsageTally):
    """Walks down the tree; at each level the LLM picks one child of the previous choice or stops.

    Subclasses narrow the candidates per item by overriding :meth:`candidates` (the hybrid assigner
    offers only the children most similar to the item by embedding). ``items_per_call`` > 1 asks
    for several items under the same node in one call (a JSON array of enums; hosted backends).
    """

    name = "llm"

    def __init__(
        self,
        client: MapClient,
        *,
        choice_mode: Literal["generate", "likelihood"] = "generate",
        allow_stop: bool = True,
        items_per_call: int = 1,
        max_level: int | None = None,
        max_item_chars: int = 600,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.choice_mode = choice_mode
        self.allow_stop = allow_stop
        self.items_per_call = items_per_call
        self.max_level = max_level
        self.max_item_chars = max_item_chars
        self.progress = progress

    # The hybrid assigner overrides this to narrow the candidates per item.
    def candidates(self, vocab: Vocabulary, node: str, item_pos: int) -> list[Descriptor]:
        return vocab.children(node)

    def prepare(self, items: Sequence[ItemLike], vocab: Vocabulary) -> None:
        pass

    def assign(self, items: Sequence[ItemLike], vocab: Vocabulary) -> list[list[str]]:
        self.prepare(items, vocab)
        n = len(items)
        paths: list[list[str]] = [[] for _ in range(n)]
        # Items whose call failed for good (or got no valid answer) at some level: they stop
        # there, and are recorded as unfinished so a rerun asks again (not mistaken for a choice to stop).
        failed: set[int] = set()
        node = [ROOT_ID] * n
        active = list(range(n))
        level = 0
        while active and (self.max_level is None or level < self.max_level):
            level += 1
            # Group by (node, candidate set): one byte-stable prefix per group, issued consecutively.
            groups: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
            for i in active:
                cands = self.candidates(vocab, node[i], i)
                if cands:
                    groups[(node[i], tuple(c.id for c in cands))].append(i)
            if not groups:
                break
            jobs: list[tuple[list[int], list[str], dict[str, str]]] = []
            requests: list[ChatRequest] = []
            for (parent, cand_ids), members in sorted(groups.items()):
                cands = [vocab[c] for c in cand_ids]
                labels = choice_labels(cands)
                by_label = dict(zip(labels, cand_ids))
                # Never stop above level 1: every item needs at least one descriptor (a semantic
                # ID of length >= 1), as in the paper where each item gets one per level.
                allow = self.allow_stop and parent != ROOT_ID
                choices = labels + ([NONE_CHOICE] if allow else [])
                k = self.items_per_call
                if k <= 1:

                    def single(head: str, text: str, choices: list[str] = choices) -> ChatRequest:
                        return ChatRequest.chat(
                            SYSTEM,
                            head + text,
                            constraint=ChoiceConstraint(tuple(choices)),
                            params=SamplingParams(max_tokens=64),
                            choice_mode=self.choice_mode,
                        )

                    longest = max((items[i].text for i in members), key=len)
                    head, item_chars = self._fit(
                        vocab, parent, cands, labels, allow, False, lambda h, c: single(h, clip(longest, c)), 64
                    )
                    for i in members:
                        requests.append(single(head, clip(items[i].text, item_chars)))
                        jobs.append(([i], choices, by_label))
                else:
                    longest_k = sorted((items[i].text for i in members), key=len)[-k:]
                    head, item_chars = self._fit(
                        vocab, parent, cands, labels, allow, True,
                        lambda h, c: ChatRequest.chat(SYSTEM, h + "\n".join(f"{j + 1}. {clip(t, c)}" for j, t in enumerate(longest_k))),
                        32 + k * (8 + max(len(c) for c in choices) // 2),
                    )
                    for s in range(0, len(members), k):
                        chunk = members[s : s + k]
                        body = "\n".join(f"{j + 1}. {clip(items[i].text, item_chars)}" for j, i in enumerate(chunk))
                        schema = {
                            "type": "object",
                            "properties": {
                                "answers": {
                                    "type": "array",
                                    "items": {"type": "string", "enum": choices},
                                    "minItems": len(chunk),
                                    "maxItems": len(chunk),
                                }
                            },
                            "required": ["answers"],
                            "additionalProperties": False,
                        }
                        requests.append(
                            ChatRequest.chat(
                                SYSTEM,
                                head + body,
                                constraint=JsonSchemaConstraint(schema, name="assignments"),
                                params=SamplingParams(max_tokens=32 + len(chunk) * (8 + max(len(c) for c in choices) // 2)),
                            )
                        )
                        jobs.append((chunk, choices, by_label))
            responses = self.client.map(requests, STAGE)
            nxt: list[int] = []
            for (members, _choices, by_label), resp in zip(jobs, responses):
                self.tally(resp)
                answers = self._answers(resp, len(members))
                for i, ans in zip(members, answers):
                    did = by_label.get(ans) if ans is not None else None
                    if did is None:
                        self.stats["stopped" if ans == NONE_CHOICE else "unanswered"] += 1
                        if ans != NONE_CHOICE:
                            failed.add(i)
                        continue
                    paths[i].append(did)
                    node[i] = did
                    nxt.append(i)
                if self.progress:
                    self.progress(len(members))
            active = sorted(nxt)
        self.last_unfinished = sorted(failed)
        return paths

    def _fit(
        self,
        vocab: Vocabulary,
        parent: str,
        cands: Sequence[Descriptor],
        labels: Sequence[str],
        allow: bool,
        multi: bool,
        probe: Callable[[str, int], ChatRequest],
        max_tokens: int,
    ) -> tuple[str, int]:
        """The longest prompt head and item length (:data:`TRIMS`) whose request, with the group's
        longest item(s), fits the model's context; PromptTooLong when even names only do not."""
        budget = PromptBudget(self.client, max_tokens, "assigner", lower_answer=False)

        def options() -> Iterator[tuple[ChatRequest, tuple[str, int]]]:
            for item_chars, def_chars in TRIMS:
                chars = self.max_item_chars if item_chars is None else min(item_chars, self.max_item_chars)
                head = level_prompt(vocab, parent, cands, labels, allow, multi, def_chars)
                yield probe(head, chars), (head, chars)

        k, fitted = budget.first_fit(
            options(),
            f"the assigner's prompt for the {len(cands)} children of {parent!r}",
            f"even with names only and {TRIMS[-1][0]}-character items; raise the endpoint's context_tokens / n_ctx "
            "or use the hybrid assigner (a shortlist of children)",
        )
        self.stats["trimmed_prompts"] += int(k > 0)
        return fitted

    def _answers(self, resp: ChatResponse | LLMError, k: int) -> list[str | None]:
        if isinstance(resp, LLMError):
            log.warning("assignment call failed for good, the items stop at this level: %s", resp)
            return [None] * k
        if k == 1 and not isinstance(resp.parsed, dict):
            return [resp.parsed if isinstance(resp.parsed, str) else resp.text.strip()]
        got = resp.parsed.get("answers") if isinstance(resp.parsed, dict) else None
        if not isinstance(got, list):
            return [None] * k
        got = [a if isinstance(a, str) else None for a in got[:k]]
        return got + [None] * (k - len(got))


class HybridAssigner(LLMAssigner):
    """An embedding shortlist of the children (top ``shortlist`` by cosine similarity), then the LLM picks."""

    name = "hybrid"

    def __init__(self, client: MapClient, encoder: TextEncoder, shortlist: int = 5, lookahead: float = 0.5, **kw: Any) -> None:
        super().__init__(client, **kw)
        self.encoder = encoder
        self.shortlist = shortlist
        self.lookahead = lookahead
        self._index: tuple[int, DescriptorIndex] | None = None
        self._x: np.ndarray | None = None

    def prepare(self, items: Sequence[ItemLike], vocab: Vocabulary) -> None:
        if self._index is None or self._index[0] != id(vocab):
            self._index = (id(vocab), DescriptorIndex(vocab, self.encoder))
        self._x = self.encoder.encode([it.text for it in items]).astype(np.float32) if items else None

    def candidates(self, vocab: Vocabulary, node: str, item_pos: int) -> list[Descriptor]:
        assert self._index is not None and self._x is not None
        return [vocab[c] for c in self._index[1].shortlist(self._x[item_pos], node, self.shortlist, self.lookahead)]


def tree_paths(vocab: Vocabulary, include_internal: bool, max_level: int | None = None) -> list[list[str]]:
    """Every root-to-node path (depth first, vocabulary order); internal nodes too when stopping is allowed."""
    out: list[list[str]] = []

    def walk(node: str, prefix: list[str]) -> None:
        for d in vocab.children(node):
            path = prefix + [d.id]
            leaf = not d.children or (max_level is not None and d.level >= max_level)
            if leaf or include_internal:
                out.append(path)
            if not leaf:
                walk(d.id, path)

    walk(ROOT_ID, [])
    return out


def repair_path(vocab: Vocabulary, names: Sequence[str]) -> list[str]:
    """The longest valid prefix of a path given as names (exact, then case-insensitive match per level)."""
    out: list[str] = []
    node = ROOT_ID
    for name in names:
        if not isinstance(name, str):
            break
        kids = vocab.children(node)
        hit = next((d for d in kids if d.name == name), None)
        if hit is None:
            key = " ".join(name.split()).casefold()
            hit = next((d for d in kids if " ".join(d.name.split()).casefold() == key), None)
        if hit is None:
            break
        out.append(hit.id)
        node = hit.id
    return out


class SingleCallAssigner(_UsageTally):
    """The paper's variant: every descriptor of the tree in context, one call outputs the whole path.

    Up to ``max_paths`` tree paths, the answer is a choice among full paths ("A > B > C"), so it is
    valid by construction. Above that, the answer is a JSON list of names (an enum over all names)
    and is repaired to its longest valid prefix; repairs are counted in ``stats["repaired"]``.
    """

    name = "single_call"

    def __init__(
        self,
        client: MapClient,
        *,
        choice_mode: Literal["generate", "likelihood"] = "generate",
        allow_stop: bool = True,
        max_paths: int = 1500,
        max_level: int | None = None,
        max_item_chars: int = 600,
        max_tree_chars: int = 8000,
    ) -> None:
        super().__init__()
        self.client = client
        self.choice_mode = choice_mode
        self.allow_stop = allow_stop
        self.max_paths = max_paths
        self.max_tree_chars = max_tree_chars
        self.max_level = max_level
        self.max_item_chars = max_item_chars

    def _tree_text(self, vocab: Vocabulary, definitions: bool = True) -> str:
        lines: list[str] = []

        def walk(node: str, depth: int) -> None:
            for d in vocab.children(node):
                if self.max_level is not None and d.level > self.max_level:
                    return
                definition = " ".join(d.definition.split()) if definitions else ""
                extra = f": {definition}" if definition and definition != d.name else ""
                lines.append(f"{'  ' * depth}- {d.name}{extra}")
                walk(d.id, depth + 1)

        walk(ROOT_ID, 0)
        return "\n".join(lines)

    def tree(self, vocab: Vocabulary) -> str:
        """The tree with definitions, or names only when that would exceed ``max_tree_chars``
        (a 188-descriptor tree with definitions is ~4,800 tokens, over a 4,096-token context)."""
        text = self._tree_text(vocab)
        if len(text) > self.max_tree_chars:
            self.stats["tree_without_definitions"] = 1
            text = self._tree_text(vocab, definitions=False)
        return text

    def assign(self, items: Sequence[ItemLike], vocab: Vocabulary) -> list[list[str]]:
        paths = tree_paths(vocab, include_internal=self.allow_stop, max_level=self.max_level)
        tree = self.tree(vocab)
        by_choice = dict(zip(self._path_labels(vocab, paths), (tuple(p) for p in paths)))
        as_choice = len(paths) <= self.max_paths
        if as_choice:
            ask = 'Answer with the full path of the best-fitting category, written "Level 1 > Level 2 > ...", exactly as in the tree'
        else:
            ask = 'Answer with JSON {"path": [...]}: the category names from the top level down'
        if self.allow_stop:
            ask += ", stopping at the deepest level that still fits"
        head = f"Category tree (indentation = subcategory):\n{tree}\n\n{ask}.\n\nItem:\n"
        item_chars = self.max_item_chars
        names = sorted({d.name for d in vocab if self.max_level is None or d.level <= self.max_level})
        depth = vocab.depth if self.max_level is None else min(vocab.depth, self.max_level)
        requests = []
        for it in items:
            if as_choice:
                constraint: ChoiceConstraint | JsonSchemaConstraint = ChoiceConstraint(tuple(by_choice))
                params = SamplingParams(max_tokens=160)
            else:
                constraint = JsonSchemaConstraint(
                    {
                        "type": "object",
                        "properties": {
                            "path": {"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1, "maxItems": depth}
                        },
                        "required": ["path"],
                        "additionalProperties": False,
                    },
                    name="path",
                )
                params = SamplingParams(max_tokens=40 * depth + 20)
            if not requests:
                head, item_chars = self._fit_tree(vocab, head, tree, ask, max(items, key=lambda x: len(x.text)).text, constraint, params)
            requests.append(
                ChatRequest.chat(SYSTEM, head + clip(it.text, item_chars), constraint=constraint, params=params, choice_mode=self.choice_mode)
            )
        out: list[list[str]] = []
        failed: list[int] = []
        for k, resp in enumerate(self.client.map(requests, STAGE)):
            self.tally(resp)
            if isinstance(resp, LLMError):
                log.warning("single-call assignment failed for good, the item gets an empty path: %s", resp)
                out.append([])
                failed.append(k)
                continue
            if as_choice:
                ans = resp.parsed if isinstance(resp.parsed, str) else resp.text.strip()
                path = list(by_choice.get(ans, ()))
                if not path:
                    self.stats["unanswered"] += 1
                    failed.append(k)
            else:
                got = resp.parsed.get("path") if isinstance(resp.parsed, dict) else None
                got = got if isinstance(got, list) else []
                path = repair_path(vocab, got)
                if len(path) < len(got):
                    self.stats["repaired"] += 1
            out.append(path)
        self.last_unfinished = failed
        return out

    def _fit_tree(self, vocab: Vocabulary, head: str, tree: str, ask: str, longest: str, constraint: Any, params: SamplingParams) -> tuple[str, int]:
        """The prompt head (tree with or without definitions) and item length whose request, with
        the longest item, fits the model's context; PromptTooLong when a names-only tree does not."""
        budget = PromptBudget(self.client, params.max_tokens, "assigner", lower_answer=False)
        names_only = self._tree_text(vocab, definitions=False)
        options = [(tree, self.max_item_chars), (tree, min(200, self.max_item_chars)), (names_only, min(200, self.max_item_chars)),
                   (names_only, min(80, self.max_item_chars))]
        heads = [(f"Category tree (indentation = subcategory):\n{t}\n\n{ask}.\n\nItem:\n", chars) for t, chars in options]
        k, fitted = budget.first_fit(
            ((ChatRequest.chat(SYSTEM, h + clip(longest, c), constraint=constraint, params=params, choice_mode=self.choice_mode), (h, c))
             for h, c in heads),
            f"the single-call assigner's prompt (a {len(vocab)}-descriptor tree)",
            "even with names only; raise the endpoint's context_tokens / n_ctx or use the level-by-level assigner",
        )
        self.stats["trimmed_prompts"] += int(k > 0)
        return fitted

    @staticmethod
    def _path_labels(vocab: Vocabulary, paths: list[list[str]]) -> list[str]:
        seen: set[str] = set()
        out = []
        for p in paths:
            label = " > ".join(" ".join(vocab[d].name.split()) for d in p)
            base, k = label, 2
            while label in seen:
                label = f"{base} ({k})"
                k += 1
            seen.add(label)
            out.append(label)
        return out
