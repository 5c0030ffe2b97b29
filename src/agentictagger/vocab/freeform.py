"""The free-form baseline (paper §6.3, B.3): 3 unconstrained keywords per item, and how few repeat.

Free-form keywords explode the vocabulary: in the paper only 24 % of keywords occur in more than
one item, against 87 % of AgenticTagger's descriptors. Two references are offered: the same LLM
asked for 3 keywords (JSON array of 3 strings), and an offline extractor (top TF-IDF terms per
item) that needs no model.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from agentictagger.vocab.quality import utilization
from agentictagger.llm.types import ChatRequest, JsonSchemaConstraint, LLMError, SamplingParams

STAGE = "freeform"
SYSTEM = "You describe catalog items with short keywords."
PROMPT = (
    'Give exactly {n} short keywords (one to three words each) that describe the item below. '
    'Answer with JSON {{"keywords": [...]}}.\n\nItem:\n'
)


def normalise_keyword(k: str) -> str:
    """Lower case, punctuation at the ends removed, whitespace collapsed: 'Nail Polish.' == 'nail polish'."""
    return " ".join(re.sub(r"^[\W_]+|[\W_]+$", "", k.casefold()).split())


def keyword_schema(n: int) -> dict:
    return {
        "type": "object",
        "properties": {"keywords": {"type": "array", "items": {"type": "string"}, "minItems": n, "maxItems": n}},
        "required": ["keywords"],
        "additionalProperties": False,
    }


def llm_keywords(items: Sequence[Any], client: Any, n: int = 3, max_item_chars: int = 600) -> tuple[list[list[str]], dict]:
    """Ask the LLM for ``n`` free keywords per item. Returns normalised keywords per item and call stats."""
    head = PROMPT.format(n=n)
    requests = [
        ChatRequest.chat(
            SYSTEM,
            head + " ".join(it.text.split())[:max_item_chars],
            constraint=JsonSchemaConstraint(keyword_schema(n), name="keywords"),
            params=SamplingParams(max_tokens=24 * n + 16),
        )
        for it in items
    ]
    out: list[list[str]] = []
    stats = {"calls": 0, "failed_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for resp in client.map(requests, STAGE):
        stats["calls"] += 1
        if isinstance(resp, LLMError):
            stats["failed_calls"] += 1
            out.append([])
            continue
        stats["prompt_tokens"] += resp.usage.prompt_tokens
        stats["completion_tokens"] += resp.usage.completion_tokens
        kws = resp.parsed.get("keywords", []) if isinstance(resp.parsed, dict) else []
        out.append([k for k in (normalise_keyword(str(x)) for x in kws) if k])
    return out, stats


def tfidf_keywords(texts: Sequence[str], n: int = 3) -> list[list[str]]:
    """The ``n`` highest TF-IDF words of each text, scored against the given texts (an offline reference)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_][\w\-]+\b", lowercase=True)
    m = vec.fit_transform(texts).tocsr()
    terms = np.asarray(vec.get_feature_names_out())
    out = []
    for i in range(m.shape[0]):
        row = m.getrow(i)
        if row.nnz == 0:
            out.append([])
            continue
        # Ties broken by the term itself so the output is deterministic.
        order = sorted(zip(-row.data, terms[row.indices]))[:n]
        out.append([str(t) for _, t in order])
    return out


def compare(ours: Sequence[Sequence[str]], our_vocabulary: Sequence[str], freeform: dict[str, Sequence[Sequence[str]]]) -> dict:
    """Utilization of our descriptors vs each free-form keyword set, on the same items."""
    out = {"ours": utilization(ours, our_vocabulary)}
    for name, kws in freeform.items():
        u = utilization(kws)
        u["items"] = len(kws)
        u["items_without_keywords"] = sum(1 for k in kws if not k)
        u["mean_keywords_per_item"] = sum(len(set(k)) for k in kws) / len(kws) if kws else float("nan")
        out[name] = u
    return out
