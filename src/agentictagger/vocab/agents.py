"""The two build roles and their offline (sentence-embedding) implementations.

An *architect* proposes and refines the descriptors of one cluster job; an *annotator* tags
the job's items with them and reports the items that do not fit. The build loop only sees
these interfaces, so the same loop runs with LLM agents (``llm_agents.py``) or offline ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from agentictagger.vocab.keyphrases import name_groups
from agentictagger.vocabulary import descriptor_text as vocabulary_text
from agentictagger.vocab.representatives import medoid_clusters

EncodeFn = Callable[[Sequence[str]], np.ndarray]


@dataclass
class DescriptorDraft:
    name: str
    definition: str


@dataclass
class JobView:
    """What an agent may see of one cluster job."""

    job_id: str
    level: int  # the level of the descriptors this job creates (1 = top)
    parent_path: list[str]  # descriptor names from level 1 down to the job's parent
    texts: list[str]  # the job's item texts; local item index = position here
    embeddings: np.ndarray  # (len(texts), dim), L2-normalised
    seed: int = 0
    exclude_terms: frozenset[str] = frozenset()  # brand-like words never to use as names

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class ItemAnnotation:
    matches: list[int] = field(default_factory=list)  # descriptor indices, best first; [] = failure
    note: str = ""  # for a failure: what the item is and why nothing fits
    error: str = ""  # the call for this item failed for good; excluded from coverage, logged

    @property
    def covered(self) -> bool:
        return bool(self.matches)


@dataclass
class FailureReport:
    item: int  # local item index
    text: str
    note: str


@dataclass
class Refinement:
    descriptors: list[DescriptorDraft]
    wants_more_steps: bool = False
    summary: str = ""  # what changed, for the build log


class Architect(Protocol):
    def propose(self, job: JobView, representatives: list[int], target: int) -> list[DescriptorDraft]: ...

    def refine(
        self,
        job: JobView,
        descriptors: list[DescriptorDraft],
        annotations: list[ItemAnnotation],
        failures: list[FailureReport],
        target: int,
    ) -> Refinement: ...


class Annotator(Protocol):
    def annotate(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> list[ItemAnnotation]: ...


def descriptor_text(d: DescriptorDraft) -> str:
    return vocabulary_text(d.name, d.definition)


# --------------------------------------------------------------------------------------------
# Offline implementations
# --------------------------------------------------------------------------------------------


class EmbeddingAnnotator:
    """Nearest descriptor by cosine similarity between item text and "name: definition".

    Items whose best similarity is below ``threshold`` are failures; their note is the item's
    own text and its nearest miss. ``margin`` lets an item follow several near-tied
    descriptors (the branching factor of the build decides whether it does).
    """

    def __init__(
        self, encode: EncodeFn, threshold: float, margin: float = 0.02, max_matches: int = 3, threshold_step: float = 0.0
    ) -> None:
        self.encode = encode
        self.threshold = threshold
        self.threshold_step = threshold_step
        self.margin = margin
        self.max_matches = max_matches

    def similarities(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> np.ndarray:
        if not descriptors or not items:
            return np.zeros((len(items), len(descriptors)), dtype=np.float32)
        d = self.encode([descriptor_text(x) for x in descriptors])
        return job.embeddings[items] @ d.T

    def annotate(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> list[ItemAnnotation]:
        sims = self.similarities(job, descriptors, items)
        threshold = self.threshold + self.threshold_step * (job.level - 1)
        out: list[ItemAnnotation] = []
        for row, i in enumerate(items):
            if sims.shape[1] == 0:
                out.append(ItemAnnotation([], f"{_clip(job.texts[i])} | no descriptors yet"))
                continue
            s = sims[row]
            order = np.argsort(-s, kind="stable")
            best = float(s[order[0]])
            if best < threshold:
                miss = descriptors[int(order[0])].name
                out.append(ItemAnnotation([], f"{_clip(job.texts[i])} | nearest: {miss} ({best:.2f})"))
                continue
            matches = [int(j) for j in order[: self.max_matches] if s[j] >= max(threshold, best - self.margin)]
            out.append(ItemAnnotation(matches))
        return out


class EmbeddingArchitect:
    """Proposes descriptors by clustering in embedding space and naming clusters by key phrases.

    ``propose`` groups the job's items around medoids of the representatives; ``refine`` adds
    named groups for the failed items, merges descriptors whose embeddings nearly coincide and
    drops descriptors no item chose.
    """

    def __init__(
        self,
        encode: EncodeFn,
        merge_threshold: float = 0.92,
        min_group_items: int = 3,
        failures_per_new_group: int = 15,
        max_new_per_step: int = 8,
        max_descriptors: int = 40,
    ) -> None:
        self.encode = encode
        self.merge_threshold = merge_threshold
        self.min_group_items = min_group_items
        self.failures_per_new_group = failures_per_new_group
        self.max_new_per_step = max_new_per_step
        self.max_descriptors = max_descriptors

    def propose(self, job: JobView, representatives: list[int], target: int) -> list[DescriptorDraft]:
        reps = representatives or list(range(len(job)))
        k = max(1, min(target, len(reps)))
        medoid_pos, _ = medoid_clusters(job.embeddings[reps], k, job.seed)
        centres = job.embeddings[[reps[m] for m in medoid_pos]]
        # Every job item joins its nearest centre, so names are learnt from whole groups.
        labels = np.argmax(job.embeddings @ centres.T, axis=1)
        groups = [[job.texts[i] for i in np.flatnonzero(labels == c)] for c in range(len(centres))]
        groups = [g for g in groups if len(g) >= min(self.min_group_items, len(job))]
        named = name_groups(
            groups, self.encode, exclude_terms=_name_exclusions(job), taken_names=job.parent_path, context=_context(job)
        )
        return [DescriptorDraft(g.name, g.definition) for g in named]

    def refine(
        self,
        job: JobView,
        descriptors: list[DescriptorDraft],
        annotations: list[ItemAnnotation],
        failures: list[FailureReport],
        target: int,
    ) -> Refinement:
        counts = np.zeros(len(descriptors), dtype=int)
        for a in annotations:
            if a.matches:
                counts[a.matches[0]] += 1
        changes: list[str] = []
        # Drop descriptors no item picked first.
        keep = [i for i in range(len(descriptors)) if counts[i] > 0]
        if len(keep) < len(descriptors):
            changes.append(f"removed {len(descriptors) - len(keep)} unused")
        kept = [descriptors[i] for i in keep]
        kept_counts = [int(counts[i]) for i in keep]
        kept, merged = self._merge_near_duplicates(kept, kept_counts)
        if merged:
            changes.append(f"merged {merged} near-duplicates")
        # New groups for the items nothing covers.
        failed = [i for i, a in enumerate(annotations) if not a.covered]
        room = self.max_descriptors - len(kept)
        if len(failed) >= self.min_group_items and room > 0:
            n_new = int(np.clip(round(len(failed) / self.failures_per_new_group), 1, min(self.max_new_per_step, room)))
            _, labels = medoid_clusters(job.embeddings[failed], n_new, job.seed + len(descriptors))
            groups = [[job.texts[failed[j]] for j in np.flatnonzero(labels == c)] for c in range(n_new)]
            groups = [g for g in groups if len(g) >= self.min_group_items]
            if groups:
                # Name new groups against the covered items too, so they get distinct names.
                covered_texts = [job.texts[i] for i, a in enumerate(annotations) if a.covered]
                named = name_groups(
                    groups + ([covered_texts] if covered_texts else []),
                    self.encode,
                    exclude_terms=_name_exclusions(job),
                    taken_names=[d.name for d in kept] + job.parent_path,
                    context=_context(job),
                )[: len(groups)]
                kept += [DescriptorDraft(g.name, g.definition) for g in named]
                changes.append(f"added {len(named)} for {len(failed)} failures")
        # Like an LLM architect that sees it could not address every failure this round: ask
        # for another step (the builder caps this at max_refine_steps).
        wants_more = len(failed) > self.failures_per_new_group * self.max_new_per_step and room > self.max_new_per_step
        return Refinement(kept, wants_more_steps=wants_more, summary="; ".join(changes) or "no change")

    def _merge_near_duplicates(self, descs: list[DescriptorDraft], counts: list[int]) -> tuple[list[DescriptorDraft], int]:
        if len(descs) < 2:
            return descs, 0
        e = self.encode([descriptor_text(d) for d in descs])
        sim = e @ e.T
        order = np.argsort(-np.asarray(counts), kind="stable")
        alive: list[int] = []
        for i in order:
            if all(sim[i, j] < self.merge_threshold for j in alive):
                alive.append(int(i))
        alive.sort()
        return [descs[i] for i in alive], len(descs) - len(alive)


def _name_exclusions(job: JobView) -> set[str]:
    """Brand-like words, and the words of the parent path: a child of "Shampoo" should say what
    kind of shampoo ("Sulfate-free"), not repeat "Shampoo"."""
    words = {w.lower() for name in job.parent_path for w in re.findall(r"[A-Za-z][A-Za-z\-']+", name)}
    return set(job.exclude_terms) | words


def _context(job: JobView) -> str:
    return job.parent_path[-1] if job.parent_path else ""


def _clip(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
