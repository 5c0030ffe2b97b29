"""LLM architect and annotator: the paper's method, on any backend of the LLM layer."""

from __future__ import annotations

import logging
from typing import Any

from agentictagger.llm.types import (
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    JsonSchemaConstraint,
    LLMError,
    SamplingParams,
)
from agentictagger.vocab import prompts
from agentictagger.vocab.agents import (
    DescriptorDraft,
    FailureReport,
    ItemAnnotation,
    JobView,
    Refinement,
)
from agentictagger.vocab.validate import check_descriptors, drop_invalid, unique_by_name

log = logging.getLogger(__name__)


class ArchitectGaveUp(LLMError):
    """The architect's answers stayed invalid after the allowed re-asks."""


class LLMArchitect:
    """Proposes and refines descriptors with an LLM; every answer is validated and re-asked."""

    def __init__(
        self,
        client: Any,
        *,
        min_count: int = 2,
        max_count: int = 40,
        max_validation_retries: int = 2,
        max_tokens: int = 1500,
        temperature: float = 0.0,
        brand_terms: frozenset[str] = frozenset(),
    ) -> None:
        self.client = client
        self.min_count = min_count
        self.max_count = max_count
        self.max_validation_retries = max_validation_retries
        self.params = SamplingParams(temperature=temperature, max_tokens=max_tokens)
        self.brand_terms = brand_terms

    def propose(self, job: JobView, representatives: list[int], target: int) -> list[DescriptorDraft]:
        lo, hi = self._bounds(target)
        user = prompts.propose_prompt(job.parent_path, [job.texts[i] for i in representatives], target, lo, hi)
        drafts, _ = self._ask(job, user, prompts.descriptors_schema(lo, hi), lo, hi, representatives)
        return drafts

    def refine(
        self,
        job: JobView,
        descriptors: list[DescriptorDraft],
        annotations: list[ItemAnnotation],
        failures: list[FailureReport],
        target: int,
    ) -> Refinement:
        lo, hi = self._bounds(max(target, len(descriptors)))
        counts = [0] * len(descriptors)
        for a in annotations:
            if a.matches:
                counts[a.matches[0]] += 1
        scored = [a for a in annotations if not a.error]
        coverage = sum(a.covered for a in scored) / max(1, len(scored))
        user = prompts.refine_prompt(
            job.parent_path,
            [d.name for d in descriptors],
            [d.definition for d in descriptors],
            counts,
            coverage,
            [f"{f.text} | {f.note}" if f.note else f.text for f in failures],
            lo,
            hi,
        )
        drafts, raw = self._ask(
            job, user, prompts.descriptors_schema(lo, hi, with_continue=True), lo, hi, [f.item for f in failures]
        )
        return Refinement(drafts, wants_more_steps=bool(raw.get("needs_more_steps")), summary="architect revision")

    def _bounds(self, target: int) -> tuple[int, int]:
        hi = min(self.max_count, max(target + target // 2, target + 2))
        lo = max(self.min_count, min(target // 2, hi))
        return lo, hi

    def _ask(
        self, job: JobView, user: str, schema: dict, lo: int, hi: int, shown: list[int]
    ) -> tuple[list[DescriptorDraft], dict]:
        messages_user = user
        last_problems: list[str] = []
        for attempt in range(self.max_validation_retries + 1):
            req = ChatRequest.chat(
                prompts.ARCHITECT_SYSTEM,
                messages_user,
                constraint=JsonSchemaConstraint(schema, name="descriptors"),
                params=self.params,
            )
            resp: ChatResponse = self.client.complete(req, stage="architect")
            raw = resp.parsed if isinstance(resp.parsed, dict) else {}
            drafts = [
                DescriptorDraft(str(d.get("name", "")).strip(), str(d.get("definition", "")).strip())
                for d in raw.get("descriptors", [])
                if isinstance(d, dict)
            ]
            problems = check_descriptors(
                drafts,
                min_count=lo,
                max_count=hi,
                brand_terms=self.brand_terms,
                item_texts=[job.texts[i] for i in shown],
                parent_path=job.parent_path,
            )
            if not problems:
                return drafts, raw
            last_problems = [str(p) for p in problems]
            log.info("job %s: architect answer rejected (attempt %d): %s", job.job_id, attempt + 1, "; ".join(last_problems))
            if attempt < self.max_validation_retries:
                messages_user = (
                    user
                    + "\n\nYour previous answer was rejected for these reasons:\n- "
                    + "\n- ".join(last_problems)
                    + "\nAnswer again, fixing them."
                )
        # Keep the usable part of the last answer when enough of it survives the checks.
        kept = drop_invalid(drafts, problems)
        kept = unique_by_name(kept)
        if len(kept) >= lo:
            log.warning(
                "job %s: architect kept %d of %d descriptors after dropping invalid ones (%s)",
                job.job_id, len(kept), len(drafts), "; ".join(last_problems),
            )
            return kept[:hi], raw
        raise ArchitectGaveUp(
            f"job {job.job_id}: the architect's descriptors stayed invalid after "
            f"{self.max_validation_retries + 1} tries: {'; '.join(last_problems)}"
        )




class LLMAnnotator:
    """Tags items with one descriptor (or none plus a note) through many parallel LLM calls.

    ``output='json'`` asks for the descriptor and a note; ``output='choice'`` only picks
    among the names (cheap, and lets the embedded backend choose by likelihood); the note of
    a failure is then the item text itself.
    """

    def __init__(self, client: Any, *, output: str = "json", items_per_call: int = 1, max_tokens: int = 200, choice_mode: str = "generate") -> None:
        if output not in ("json", "choice"):
            raise ValueError("annotator output must be 'json' or 'choice'")
        self.client = client
        self.output = output
        self.items_per_call = max(1, items_per_call)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        self.choice_mode = choice_mode

    def annotate(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> list[ItemAnnotation]:
        names = [d.name for d in descriptors]
        index = {n: i for i, n in enumerate(names)}
        shared = prompts.annotate_prompt(job.parent_path, names, [d.definition for d in descriptors])
        if self.items_per_call > 1 and self.output == "json":
            return self._annotate_batched(job, descriptors, shared, index, items)
        requests = [self._request(shared, names, job.texts[i]) for i in items]
        out: list[ItemAnnotation] = []
        for i, resp in zip(items, self.client.map(requests, stage="annotator")):
            if isinstance(resp, LLMError):
                out.append(ItemAnnotation([], "", error=str(resp)))
                continue
            out.append(self._parse(resp.parsed, index, job.texts[i]))
        return out

    def _request(self, shared: str, names: list[str], text: str) -> ChatRequest:
        if self.output == "choice":
            return ChatRequest.chat(
                prompts.ANNOTATOR_SYSTEM,
                shared + prompts.annotate_item(text, with_note=False),
                constraint=ChoiceConstraint(tuple(names) + (prompts.NONE_CHOICE,)),
                params=self.params,
                choice_mode=self.choice_mode,  # type: ignore[arg-type]
            )
        return ChatRequest.chat(
            prompts.ANNOTATOR_SYSTEM,
            shared + prompts.annotate_item(text, with_note=True),
            constraint=JsonSchemaConstraint(prompts.annotation_schema(names), name="annotation"),
            params=self.params,
        )

    @staticmethod
    def _parse(parsed: Any, index: dict[str, int], text: str) -> ItemAnnotation:
        if isinstance(parsed, str):
            choice, note = parsed, ""
        elif isinstance(parsed, dict):
            choice, note = str(parsed.get("descriptor", "")), str(parsed.get("note", ""))
        else:
            return ItemAnnotation([], "", error=f"unparseable annotation {parsed!r:.80}")
        if choice in index:
            return ItemAnnotation([index[choice]])
        clipped = " ".join(text.split())[:200]
        return ItemAnnotation([], f"{clipped} | {note}" if note else clipped)

    def _annotate_batched(
        self, job: JobView, descriptors: list[DescriptorDraft], shared: str, index: dict[str, int], items: list[int]
    ) -> list[ItemAnnotation]:
        names = [d.name for d in descriptors]
        chunks = [items[k : k + self.items_per_call] for k in range(0, len(items), self.items_per_call)]
        requests = [
            ChatRequest.chat(
                prompts.ANNOTATOR_SYSTEM,
                shared + prompts.annotate_batch_item([job.texts[i] for i in chunk]),
                constraint=JsonSchemaConstraint(prompts.batch_annotation_schema(names, len(chunk)), name="annotations"),
                params=SamplingParams(temperature=0.0, max_tokens=self.params.max_tokens * len(chunk)),
            )
            for chunk in chunks
        ]
        result: dict[int, ItemAnnotation] = {}
        retry: list[int] = []
        for chunk, resp in zip(chunks, self.client.map(requests, stage="annotator")):
            if isinstance(resp, LLMError):
                retry += chunk
                continue
            entries = resp.parsed.get("annotations", []) if isinstance(resp.parsed, dict) else []
            got: dict[int, Any] = {}
            for e in entries:
                pos = e.get("item") if isinstance(e, dict) else None
                if isinstance(pos, int) and 1 <= pos <= len(chunk):
                    got[chunk[pos - 1]] = e
            for i in chunk:
                if i in got:
                    result[i] = self._parse(got[i], index, job.texts[i])
                else:
                    retry.append(i)
        if retry:
            # Items a batched answer skipped or garbled are asked one at a time, never dropped.
            single = LLMAnnotator(self.client, output="json", items_per_call=1, max_tokens=self.params.max_tokens)
            for i, a in zip(retry, single.annotate(job, descriptors, retry)):
                result[i] = a
        return [result[i] for i in items]
