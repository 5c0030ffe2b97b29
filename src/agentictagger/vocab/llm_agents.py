"""LLM architect and annotator: the paper's method, on any backend of the LLM layer."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from agentictagger.llm.types import (
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    InvalidAnswerError,
    JsonSchemaConstraint,
    LLMError,
    SamplingParams,
)
from agentictagger.llm.budget import PromptBudget, PromptTooLong
from agentictagger.vocab import prompts
from agentictagger.vocab.agents import (
    DescriptorDraft,
    FailureReport,
    ItemAnnotation,
    JobView,
    Refinement,
    first_match_counts,
)
from agentictagger.vocab.validate import check_descriptors, drop_invalid, unique_by_name

log = logging.getLogger(__name__)


class ArchitectGaveUp(LLMError):
    """The architect's answers stayed invalid after the allowed re-asks (a validation failure,
    unlike an HTTP, auth or connection error from the client)."""


class LLMArchitect:
    """Proposes and refines descriptors with an LLM; every answer is validated and re-asked.

    Prompts are trimmed to the model's context (``client.context_tokens``): item texts are
    shortened first, then the fewest representatives / failure reports are dropped (smallest
    groups last in the list, so first to go), then definitions are shortened."""

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
        bounded_strings: bool | None = None,
    ) -> None:
        self.client = client
        # Length-bounded names/definitions in the schema: on by default for llama.cpp backends,
        # whose grammars enforce them (see prompts.descriptors_schema).
        if bounded_strings is None:
            bounded_strings = getattr(getattr(client, "cfg", None), "backend", "") in ("local", "embedded")
        self.bounded_strings = bool(bounded_strings)
        self.min_count = min_count
        self.max_count = max_count
        self.max_validation_retries = max_validation_retries
        self.params = SamplingParams(temperature=temperature, max_tokens=max_tokens)
        self.brand_terms = brand_terms
        self._budget: PromptBudget | None = None
        # What the last call showed: (items shown, items available, trim level), for logs and tests.
        self.last_fit: tuple[int, int, int] | None = None

    @property
    def budget(self) -> PromptBudget:
        if self._budget is None:
            self._budget = PromptBudget(self.client, self.params.max_tokens, "architect")
        return self._budget

    def propose(self, job: JobView, representatives: list[int], target: int) -> list[DescriptorDraft]:
        lo, hi = self._bounds(target)
        texts = [job.texts[i] for i in representatives]

        def user(n: int, level: int) -> str:
            return prompts.propose_prompt(
                job.parent_path, texts[:n], target, lo, hi, item_chars=prompts.PROPOSE_ITEM_CHARS[level]
            )

        drafts, _ = self._ask(
            job, user, len(texts), len(prompts.PROPOSE_ITEM_CHARS),
            prompts.descriptors_schema(lo, hi, bounded=self.bounded_strings), lo, hi,
            representatives,
        )
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
        counts = first_match_counts(annotations, len(descriptors)).tolist()
        scored = [a for a in annotations if not a.error]
        coverage = sum(a.covered for a in scored) / max(1, len(scored))
        reports = [f"{f.text} | {f.note}" if f.note else f.text for f in failures]
        broad = [descriptors[k].name for k in job.too_broad if k < len(descriptors)]

        def user(n: int, level: int) -> str:
            item_chars, definition_chars = prompts.REFINE_LEVELS[level]
            return prompts.refine_prompt(
                job.parent_path,
                [d.name for d in descriptors],
                [d.definition for d in descriptors],
                counts,
                coverage,
                reports[:n],
                lo,
                hi,
                item_chars=item_chars,
                definition_chars=definition_chars,
                too_broad=broad,
            )

        drafts, raw = self._ask(
            job, user, len(reports), len(prompts.REFINE_LEVELS),
            prompts.descriptors_schema(lo, hi, with_continue=True, bounded=self.bounded_strings),
            lo, hi, [f.item for f in failures],
        )
        summary = "architect revision"
        unchanged = {d.name.lower() for d in drafts} == {d.name.lower() for d in descriptors}
        kept_broad = {b.lower() for b in broad} & {d.name.lower() for d in drafts}
        if failures and (unchanged or kept_broad):
            # Small models often hand the same list back (Qwen 1.5B did, with 88 of 300 items
            # reported) or keep a catch-all; asking only for what the failed items are is a
            # question they answer.
            kept = [b for b in broad if b.lower() in kept_broad]
            added = self._add_for_failures(
                job, drafts, failures, share=len(failures) / max(1, len(scored)), hi=hi, too_broad=kept
            )
            if added:
                drafts = [*drafts, *added]
                summary = "architect revision; added for items none fitted: " + ", ".join(d.name for d in added)
            if kept and len(added) >= 2:
                # The too-broad descriptor's items now have narrower kinds to go to: it goes.
                drafts = [d for d in drafts if d.name.lower() not in kept_broad]
                summary += "; split and removed the too broad " + ", ".join(kept)
        return Refinement(drafts, wants_more_steps=bool(raw.get("needs_more_steps")), summary=summary)

    def _add_for_failures(
        self,
        job: JobView,
        current: list[DescriptorDraft],
        failures: list[FailureReport],
        share: float,
        hi: int,
        too_broad: Sequence[str] = (),
    ) -> list[DescriptorDraft]:
        """New descriptors for the failed items alone, none repeating a current name; [] when the
        architect cannot give valid ones (the revision then stands as it was). ``too_broad``: the
        current descriptors the failed items could only be tagged with (they are split)."""
        room = hi - len(current) + len(too_broad)  # a split descriptor leaves room for its parts
        if room <= 0:
            return []
        want = max(1, round(share * len(current)))
        add_hi = min(room, want + 2)
        names = [d.name for d in current]
        texts = [f.text for f in failures]

        def user(n: int, level: int) -> str:
            return prompts.add_prompt(
                job.parent_path, names, texts[:n], 1, add_hi, item_chars=prompts.PROPOSE_ITEM_CHARS[level],
                too_broad=too_broad,
            )

        try:
            added, _ = self._ask(
                job, user, len(texts), len(prompts.PROPOSE_ITEM_CHARS),
                prompts.descriptors_schema(1, add_hi, bounded=self.bounded_strings),
                1, add_hi, [f.item for f in failures],
            )
        except ArchitectGaveUp as exc:
            log.warning("job %s: no valid descriptors for the failed items (%s); the revision stands", job.job_id, exc)
            return []
        return unique_by_name([*current, *added])[len(current):]

    def _bounds(self, target: int) -> tuple[int, int]:
        hi = min(self.max_count, max(target + target // 2, target + 2))
        lo = max(self.min_count, min(target // 2, hi))
        return lo, hi

    def _fit(
        self, job: JobView, user: Callable[[int, int], str], n_max: int, n_levels: int, problems: list[str], schema: dict
    ) -> tuple[ChatRequest, int]:
        budget = self.budget
        params = SamplingParams(temperature=self.params.temperature, max_tokens=budget.max_tokens)
        fitted = None
        # A re-ask quotes the rejection reasons; when they do not fit either, fewer and shorter
        # ones, and at worst none (the plain prompt again).
        for suffix in dict.fromkeys([_rejection(problems), _rejection(problems[:3], 120), ""]):

            def build(n: int, level: int, suffix: str = suffix) -> ChatRequest:
                return ChatRequest.chat(
                    prompts.ARCHITECT_SYSTEM,
                    user(n, level) + suffix,
                    constraint=JsonSchemaConstraint(schema, name="descriptors"),
                    params=params,
                )

            fitted = prompts.fit_prompt(build, n_max, n_levels, budget.fits)
            if fitted is not None:
                break
        if fitted is None:
            raise PromptTooLong(
                f"job {job.job_id}: the architect's prompt does not fit the model's context "
                f"({budget.context} tokens, {budget.max_tokens} kept for the answer) even with one item "
                "and the shortest texts; raise llm.n_ctx / llm.context_tokens or lower build.architect.max_tokens"
            )
        request, n, level = fitted
        self.last_fit = (n, n_max, level)
        if n < n_max or level > 0:
            log.info(
                "job %s: architect prompt trimmed to fit %s prompt tokens: %d of %d items, trim level %d",
                job.job_id, budget.prompt_tokens, n, n_max, level,
            )
        return request, n

    def _ask(
        self,
        job: JobView,
        user: Callable[[int, int], str],
        n_max: int,
        n_levels: int,
        schema: dict,
        lo: int,
        hi: int,
        shown: list[int],
    ) -> tuple[list[DescriptorDraft], dict]:
        reasons: list[str] = []  # the previous attempt's, quoted in the re-ask
        last_problems: list[str] = []
        drafts: list[DescriptorDraft] = []
        problems: list = []
        raw: dict = {}
        for attempt in range(self.max_validation_retries + 1):
            req, n_shown = self._fit(job, user, n_max, n_levels, reasons, schema)
            try:
                resp: ChatResponse = self.client.complete(req, stage="architect")
            except InvalidAnswerError as exc:
                # The client's own re-asks did not yield JSON of the required shape (often an
                # answer cut off at max_tokens): a validation failure like any other.
                drafts, raw, problems = [], {}, []
                why = str(getattr(exc, "last_error", exc)).split("; expected", 1)[0]
                last_problems = [f"the answer was not JSON of the required form: {why[:300]}"]
            else:
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
                    item_texts=[job.texts[i] for i in shown[:n_shown]],
                    parent_path=job.parent_path,
                )
                if not problems:
                    return drafts, raw
                last_problems = [str(p) for p in problems]
            log.info("job %s: architect answer rejected (attempt %d): %s", job.job_id, attempt + 1, "; ".join(last_problems))
            reasons = last_problems
        # Keep the usable part of the last answer when enough of it survives the checks.
        kept = unique_by_name(drop_invalid(drafts, problems))
        if drafts and len(kept) >= lo:
            log.warning(
                "job %s: architect kept %d of %d descriptors after dropping invalid ones (%s)",
                job.job_id, len(kept), len(drafts), "; ".join(last_problems),
            )
            return kept[:hi], raw
        raise ArchitectGaveUp(
            f"job {job.job_id}: the architect's descriptors stayed invalid after "
            f"{self.max_validation_retries + 1} tries: {'; '.join(last_problems)}"
        )


def _rejection(problems: list[str], limit: int | None = None) -> str:
    """The re-ask's addition to the prompt: why the previous answer was rejected."""
    if not problems:
        return ""
    return (
        "\n\nYour previous answer was rejected for these reasons:\n- "
        + "\n- ".join(p if limit is None else p[:limit] for p in problems)
        + "\nAnswer again, fixing them."
    )


class LLMAnnotator:
    """Tags items with one descriptor (or none plus a note) through many parallel LLM calls.

    ``output='json'`` asks for the descriptor and a note; ``output='choice'`` only picks
    among the names (cheap, and lets the embedded backend choose by likelihood); the note of
    a failure is then the item text itself.

    The descriptor list must fit the model's context with the longest item: definitions are
    shortened first (down to names only), then item texts.
    """

    def __init__(self, client: Any, *, output: str = "json", items_per_call: int = 1, max_tokens: int = 200, choice_mode: str = "generate") -> None:
        if output not in ("json", "choice"):
            raise ValueError("annotator output must be 'json' or 'choice'")
        self.client = client
        self.output = output
        self.items_per_call = max(1, items_per_call)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        self.choice_mode = choice_mode
        # The trim the last annotate() call used: (definition_chars, item_chars).
        self.last_fit: tuple[int | None, int] = (None, prompts.ANNOTATE_ITEM_CHARS[0])

    def annotate(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> list[ItemAnnotation]:
        names = [d.name for d in descriptors]
        index = {n: i for i, n in enumerate(names)}
        definitions = [d.definition for d in descriptors]
        if self.items_per_call > 1 and self.output == "json":
            return self._annotate_batched(job, descriptors, index, items)
        shared, item_chars = self._fit_single(job, names, definitions, items)
        requests = [self._request(shared, names, job.texts[i], item_chars) for i in items]
        out: list[ItemAnnotation] = []
        for i, resp in zip(items, self.client.map(requests, stage="annotator")):
            if isinstance(resp, LLMError):
                out.append(ItemAnnotation([], "", error=str(resp)))
                continue
            out.append(self._parse(resp.parsed, index, job.texts[i]))
        return out

    def _shared_fit(
        self, job: JobView, names: list[str], definitions: list[str], probe: Callable[[str, int], ChatRequest], max_tokens: int
    ) -> tuple[str, int]:
        """The shared prefix and item length with the longest definitions that let ``probe``
        (the worst-case request of this step) fit; raises PromptTooLong when nothing does."""
        # The annotator's requests keep their max_tokens: the prompt must make room for it.
        budget = PromptBudget(self.client, max_tokens, "annotator", lower_answer=False)
        for item_chars in prompts.ANNOTATE_ITEM_CHARS:
            for definition_chars in prompts.ANNOTATE_DEFINITION_CHARS:
                shared = prompts.annotate_prompt(job.parent_path, names, definitions, definition_chars)
                if budget.fits(probe(shared, item_chars)):
                    self.last_fit = (definition_chars, item_chars)
                    if (definition_chars, item_chars) != (None, prompts.ANNOTATE_ITEM_CHARS[0]):
                        log.info(
                            "job %s: annotator prompt trimmed to fit %s prompt tokens: definitions %s chars, items %d chars",
                            job.job_id, budget.prompt_tokens, definition_chars, item_chars,
                        )
                    return shared, item_chars
        raise PromptTooLong(
            f"job {job.job_id}: the annotator's prompt ({len(names)} descriptor names) does not fit the model's "
            f"context ({budget.context} tokens) even without definitions; raise llm.n_ctx / llm.context_tokens"
        )

    def _fit_single(self, job: JobView, names: list[str], definitions: list[str], items: list[int]) -> tuple[str, int]:
        longest = max((job.texts[i] for i in items), key=lambda t: len(prompts.clip(t, None)), default="")
        return self._shared_fit(
            job, names, definitions, lambda shared, chars: self._request(shared, names, longest, chars), self.params.max_tokens
        )

    def _request(self, shared: str, names: list[str], text: str, item_chars: int = prompts.ANNOTATE_ITEM_CHARS[0]) -> ChatRequest:
        if self.output == "choice":
            return ChatRequest.chat(
                prompts.ANNOTATOR_SYSTEM,
                shared + prompts.annotate_item(text, with_note=False, item_chars=item_chars),
                constraint=ChoiceConstraint(tuple(names) + (prompts.NONE_CHOICE,)),
                params=self.params,
                choice_mode=self.choice_mode,  # type: ignore[arg-type]
            )
        return ChatRequest.chat(
            prompts.ANNOTATOR_SYSTEM,
            shared + prompts.annotate_item(text, with_note=True, item_chars=item_chars),
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

    def _batch_request(self, shared: str, names: list[str], texts: list[str], item_chars: int) -> ChatRequest:
        return ChatRequest.chat(
            prompts.ANNOTATOR_SYSTEM,
            shared + prompts.annotate_batch_item(texts, item_chars),
            constraint=JsonSchemaConstraint(prompts.batch_annotation_schema(names, len(texts)), name="annotations"),
            params=SamplingParams(temperature=0.0, max_tokens=self.params.max_tokens * len(texts)),
        )

    def _annotate_batched(
        self, job: JobView, descriptors: list[DescriptorDraft], index: dict[str, int], items: list[int]
    ) -> list[ItemAnnotation]:
        names = [d.name for d in descriptors]
        definitions = [d.definition for d in descriptors]
        chunks = [items[k : k + self.items_per_call] for k in range(0, len(items), self.items_per_call)]
        widest = max(chunks, key=lambda c: sum(len(job.texts[i]) for i in c), default=[])
        shared, item_chars = self._shared_fit(
            job, names, definitions,
            lambda sh, chars: self._batch_request(sh, names, [job.texts[i] for i in widest], chars),
            self.params.max_tokens * max(1, len(widest)),
        )
        requests = [self._batch_request(shared, names, [job.texts[i] for i in chunk], item_chars) for chunk in chunks]
        result: dict[int, ItemAnnotation] = {}
        retry: list[int] = []
        for chunk, resp in zip(chunks, self.client.map(requests, stage="annotator")):
            if isinstance(resp, LLMError):
                if _worth_asking_singly(resp):
                    retry += chunk
                else:
                    # An auth/permission/not-found/outage answer is the same for one item: no retries.
                    for i in chunk:
                        result[i] = ItemAnnotation([], "", error=str(resp))
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


def _worth_asking_singly(error: LLMError) -> bool:
    """A failed batch is re-asked item by item only when a smaller request can succeed: the
    answer was invalid (garbled batch), or the batch was too big for the server (HTTP 400/413)."""
    if isinstance(error, InvalidAnswerError):
        return True
    return getattr(error, "status", None) in (400, 413)
