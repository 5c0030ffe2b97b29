"""The two build roles and their offline (sentence-embedding) implementations.

An *architect* proposes and refines the descriptors of one cluster job; an *annotator* tags
the job's items with them and reports the items that do not fit. The build loop only sees
these interfaces, so the same loop runs with LLM agents (``llm_agents.py``) or offline ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from agentictagger.embed import descriptor_rows, normalise
from agentictagger.structures.vocabulary import descriptor_text as vocabulary_text

EncodeFn = Callable[[Sequence[str]], np.ndarray]

#: Member texts a namer sees per group, most central first: key phrases need the group's whole
#: vocabulary, not a central sample (the names then identified their groups better in an ad-hoc
#: check on Scientific's development half; no committed benchmark isolates this); the LLM namer
#: shows only the first few.
NAMING_TEXTS = 500


@dataclass
class DescriptorDraft:
    name: str
    definition: str
    # Offline architect only: the group's prototype rows, (rows, dim) (its fine clusters'
    # centroids; items are matched against each row blended with the embedding of the draft's
    # current name and definition by ``name_weight``, and an item's similarity is its best row),
    # who wrote the name, and the group's most central items (local idx).
    prototype: np.ndarray | None = field(default=None, repr=False, compare=False)
    named_by: str = ""
    exemplars: list[int] = field(default_factory=list, repr=False, compare=False)
    naming_problems: list[str] = field(default_factory=list, repr=False, compare=False)
    name_weight: float = 0.0


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
    brand_strings: frozenset[str] = frozenset()  # whole brand names (normalised), never names
    step: int = 0  # the refinement step being asked for (0 = the proposal)
    # Indices of the current descriptors judged too broad at the last step (see too_broad):
    # their items count as failures, and a refinement should split them.
    too_broad: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class ItemAnnotation:
    matches: list[int] = field(default_factory=list)  # descriptor indices, best first; [] = failure
    note: str = ""  # for a failure: what the item is and why nothing fits
    error: str = ""  # the call for this item failed for good; excluded from coverage, logged
    # The judge's verdict when it differs from "has a match": an item that belongs to a group
    # (matches) whose descriptor's name and definition do not describe it (fits = False).
    fits: bool | None = None

    @property
    def covered(self) -> bool:
        return self.fits if self.fits is not None else bool(self.matches)


def first_match_counts(annotations: Sequence[ItemAnnotation], n_descriptors: int) -> np.ndarray:
    """How many answered items each descriptor got as its first (best) match."""
    counts = np.zeros(n_descriptors, dtype=int)
    for a in annotations:
        if a.matches and not a.error:
            counts[a.matches[0]] += 1
    return counts


TOO_BROAD_NOTE = "tagged only with a descriptor too broad to tell items apart"


def too_broad(annotations: Sequence[ItemAnnotation], n_descriptors: int, factor: float) -> list[int]:
    """Descriptors that annotators gave more than half of the answered items and more than
    ``factor`` times an even share (answered items / ``n_descriptors``), counting each item's
    first match: a catch-all beside narrow kinds. ``factor`` 0 = none."""
    answered = [a for a in annotations if not a.error]
    if factor <= 0 or not answered or n_descriptors < 1:
        return []
    counts = first_match_counts(answered, n_descriptors)
    limit = max(0.5, factor / n_descriptors) * len(answered)
    return [k for k in range(n_descriptors) if counts[k] > limit]


def mark_too_broad(annotations: Sequence[ItemAnnotation], broad: Sequence[int], names: Sequence[str]) -> None:
    """Items whose first match is a too-broad descriptor are not covered (fits = False), with a
    note saying so for the architect; marks of an earlier judgement are cleared first."""
    for a in annotations:
        if a.note.startswith(TOO_BROAD_NOTE):
            a.fits, a.note = None, ""
        if a.matches and a.matches[0] in broad and not a.error:
            a.fits = False
            a.note = f"{TOO_BROAD_NOTE} ('{names[a.matches[0]]}')"


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
    """Nearest descriptor by cosine similarity.

    A descriptor is matched by its prototype when the architect gave one (offline architect: the
    group's centroids blended with its name by ``name_weight``), else by the embedding of
    "name: definition".

    Which items *fit* (coverage, failures) is decided one of two ways:

    * ``acceptance="spread"`` (default for prototypes): an item fits its nearest descriptor when
      its similarity is within ``outlier_z`` standard deviations below the mean similarity of the
      items that chose that descriptor. Label-free and calibrated on each job's own items: the
      failures are the items lying outside every group's spread.
    * ``acceptance="threshold"``: a fixed cosine ``threshold`` (+ ``threshold_step`` per level
      below 1), for descriptors matched by their text embedding.

    ``margin`` lets an item follow several near-tied descriptors (the build's branching decides).
    """

    def __init__(
        self,
        encode: EncodeFn,
        threshold: float,
        margin: float = 0.02,
        max_matches: int = 3,
        threshold_step: float = 0.0,
        outlier_z: float = 2.0,
        acceptance: str = "auto",
        judge: str = "prototype",
    ) -> None:
        self.encode = encode
        self.judge = judge
        self.threshold = threshold
        self.threshold_step = threshold_step
        self.margin = margin
        self.max_matches = max_matches
        self.outlier_z = outlier_z
        self.acceptance = acceptance

    def rows(self, descriptors: list[DescriptorDraft]) -> tuple[np.ndarray, np.ndarray]:
        return descriptor_rows(
            [d.prototype for d in descriptors],
            lambda idx: self.encode([descriptor_text(descriptors[i]) for i in idx]),
            [d.name_weight for d in descriptors],
        )

    def vectors(self, descriptors: list[DescriptorDraft]) -> np.ndarray:
        """One unit vector per descriptor (the mean of its rows), e.g. to compare descriptors."""
        mat, starts = self.rows(descriptors)
        return normalise(np.add.reduceat(mat, starts[:-1], axis=0))

    def similarities(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> np.ndarray:
        if not descriptors or not items:
            return np.zeros((len(items), len(descriptors)), dtype=np.float32)
        mat, starts = self.rows(descriptors)
        return np.maximum.reduceat(job.embeddings[items] @ mat.T, starts[:-1], axis=1)

    def cutoffs(self, job: JobView, descriptors: list[DescriptorDraft], sims: np.ndarray) -> np.ndarray:
        """Per descriptor, the similarity below which an item does not fit it."""
        mode = self.acceptance
        if mode == "auto":
            mode = "spread" if descriptors and all(d.prototype is not None for d in descriptors) else "threshold"
        fixed = self.threshold + self.threshold_step * (job.level - 1)
        if mode == "threshold" or sims.shape[0] == 0:
            return np.full(len(descriptors), fixed, dtype=np.float32)
        best = sims.argmax(axis=1)
        top = sims[np.arange(len(sims)), best]
        cut = np.full(len(descriptors), float(top.mean() - self.outlier_z * top.std()), dtype=np.float32)
        for k in range(len(descriptors)):
            s = top[best == k]
            if len(s) >= 5:
                cut[k] = float(s.mean() - self.outlier_z * s.std())
        return cut

    def annotate(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int]) -> list[ItemAnnotation]:
        sims = self.similarities(job, descriptors, items)
        cut = self.cutoffs(job, descriptors, sims) if descriptors else np.zeros(0)
        out: list[ItemAnnotation] = []
        for row, i in enumerate(items):
            if sims.shape[1] == 0:
                out.append(ItemAnnotation([], f"{_clip(job.texts[i])} | no descriptors yet"))
                continue
            s = sims[row]
            order = np.argsort(-s, kind="stable")
            first = int(order[0])
            best = float(s[first])
            if best < cut[first]:
                miss = descriptors[first].name
                out.append(ItemAnnotation([], f"{_clip(job.texts[i])} | nearest: {miss} ({best:.2f})"))
                continue
            matches = [int(j) for j in order[: self.max_matches] if s[j] >= max(cut[j], best - self.margin)]
            out.append(ItemAnnotation(matches or [first]))
        if self.judge == "names" and len(descriptors) >= 2:
            self._judge_names(job, descriptors, items, out)
        return out

    def _judge_names(self, job: JobView, descriptors: list[DescriptorDraft], items: list[int], out: list[ItemAnnotation]) -> None:
        """The annotator's question: does the descriptor's *name and definition* describe the
        item? Judged without the item's group: the item is matched against every sibling's
        "name: definition" embedding alone, and it fits when that pick is one of its matches.
        Items that belong to a group whose name reads as another group's are the failures the
        architect renames for."""
        picks = name_picks(self.encode, job.embeddings[items], descriptors)
        for a, i, pick in zip(out, items, picks.tolist()):
            if not a.matches:
                continue
            a.fits = pick in a.matches
            if not a.fits:
                a.note = f"{_clip(job.texts[i])} | in {descriptors[a.matches[0]].name!r}, but its name reads as {descriptors[pick].name!r}"


def name_picks(encode: EncodeFn, vectors: np.ndarray, descriptors: list[DescriptorDraft]) -> np.ndarray:
    """Per item vector, the descriptor whose "name: definition" embedding is most similar."""
    text = np.asarray(encode([descriptor_text(d) for d in descriptors]), dtype=np.float32)
    return (np.asarray(vectors, dtype=np.float32) @ text.T).argmax(axis=1)


class EmbeddingArchitect:
    """Groups a job's items in embedding space and has a namer say what each group is.

    ``propose``: the consensus of ``restarts`` draws (``sub_job_restarts`` in a sub-job), each fine
    KMeans clusters (``fine_per_group`` per descriptor) merged bottom-up by Ward linkage into
    ``target`` groups (:mod:`agentictagger.vocab.grouping`). Each group is then named; its
    prototype rows are its pieces' centroids, matched blended with its current name's embedding
    (``prototype_weight``), so a renamed descriptor is matched by its new name.

    ``refine``: drops descriptors no item chose, merges near-duplicate prototypes, and adds named
    groups for failed items when they form groups of at least ``min_new_group_share`` of the job.
    """

    #: A rename must bring at least this many more of the job's items to their own group, by name
    #: and definition alone (``bench/tune_renames.py``).
    MIN_RENAME_GAIN = 2
    #: A group added for failed items keeps a key-phrase name only when at least this share of its
    #: titles call its items that (:func:`keyphrases.title_kind_share`); otherwise it is not added
    #: and its items stay failures of the step, placed with their nearest descriptor at the end.
    #: Failures are mixed leftovers, and their phrase names read as leftovers ("Resistant",
    #: "Features", "Fast" on Office and Scientific; ``bench/tune_renames.py``, setting ``keepkind``).
    #: 0 adds every such group. LLM-named groups are not checked here.
    MIN_ADDED_KIND_SHARE = 0.05

    def __init__(
        self,
        encode: EncodeFn,
        namer: Any = None,
        *,
        merge_threshold: float = 0.92,
        min_group_items: int = 3,
        failures_per_new_group: int = 15,
        max_new_per_step: int = 8,
        max_descriptors: int = 30,
        fine_per_group: int = 16,
        min_fine_size: int = 5,
        prototype_weight: float = 0.7,
        min_new_group_share: float = 0.01,
        exemplars: int = 8,
        restarts: int = 20,
        sub_job_restarts: int | None = None,
    ) -> None:
        from agentictagger.vocab.naming import KeyphraseNamer

        self.encode = encode
        self.namer = namer if namer is not None else KeyphraseNamer(encode)
        self.merge_threshold = merge_threshold
        self.min_group_items = min_group_items
        self.failures_per_new_group = failures_per_new_group
        self.max_new_per_step = max_new_per_step
        self.max_descriptors = max_descriptors
        self.fine_per_group = fine_per_group
        self.min_fine_size = min_fine_size
        self.prototype_weight = prototype_weight
        self.min_new_group_share = min_new_group_share
        self.n_exemplars = exemplars
        self.restarts = restarts
        #: Draws in sub-jobs (jobs with a parent); None: ``restarts``.
        self.sub_job_restarts = restarts if sub_job_restarts is None else sub_job_restarts

    # -- helpers ----------------------------------------------------------------------------------
    def _ctx(self, job: JobView, taken: Sequence[str] = ()) -> Any:
        from agentictagger.vocab.naming import NamingContext

        return NamingContext(
            list(job.parent_path), list(taken), frozenset(job.exclude_terms), frozenset(job.brand_strings), job.step
        )

    def _central(self, job: JobView, members: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Members sorted by closeness to their centroid, and the unit centroid."""
        c = job.embeddings[members].mean(axis=0)
        c = c / max(float(np.linalg.norm(c)), 1e-12)
        order = members[np.argsort(-(job.embeddings[members] @ c), kind="stable")]
        return [int(i) for i in order], c

    @staticmethod
    def _naming_group(job: JobView, order: list[int]) -> Any:
        """A group as its namer sees it: its most central texts first, with their embeddings."""
        from agentictagger.vocab.naming import NamingGroup

        top = order[:NAMING_TEXTS]
        return NamingGroup([job.texts[i] for i in top], job.embeddings[top])

    def _named_drafts(
        self,
        job: JobView,
        groups: list[np.ndarray],
        taken: Sequence[str],
        rows: list[np.ndarray] | None = None,
        min_kind_share: float = 0.0,
    ) -> list[DescriptorDraft]:
        """Name each group; its prototype rows are ``rows[g]`` (its fine clusters' centroids) or
        its own centroid, matched blended with its name and definition (``prototype_weight``). With
        ``min_kind_share``, a group whose key-phrase name fewer of its titles call its items
        (:func:`keyphrases.title_kind_share`) is left out."""
        from agentictagger.vocab.keyphrases import title_kind_share
        from agentictagger.vocab.name_rules import name_key

        central = [self._central(job, g) for g in groups]
        labels = self.namer.name([self._naming_group(job, order) for order, _ in central], self._ctx(job, taken))
        # Groups the namer could not tell apart (the same name after lemmatising) are one
        # descriptor: never "Serum" and "Serum (2)".
        first: dict[str, int] = {}
        keep: list[int] = []
        for g, lb in enumerate(labels):
            k = name_key(lb.name)
            if k in first:
                h = first[k]
                groups[h] = np.concatenate([groups[h], groups[g]])
                if rows is not None:
                    rows[h] = np.concatenate([np.atleast_2d(rows[h]), np.atleast_2d(rows[g])])
                continue
            first[k] = g
            keep.append(g)
        if min_kind_share > 0:
            keep = [
                g for g in keep
                if labels[g].named_by != "keyphrase"
                or title_kind_share(labels[g].name, [job.texts[i] for i in groups[g]]) >= min_kind_share
            ]
        if len(keep) < len(labels):
            groups = [groups[g] for g in keep]
            rows = [rows[g] for g in keep] if rows is not None else None
            labels = [labels[g] for g in keep]
            central = [self._central(job, g) for g in groups]
        out = []
        for g, ((order, cent), lb) in enumerate(zip(central, labels)):
            base = np.atleast_2d(rows[g] if rows is not None else cent).astype(np.float32)
            out.append(DescriptorDraft(lb.name, lb.definition, base, lb.named_by, order[: self.n_exemplars],
                                       list(lb.problems), self.prototype_weight))
        return out

    # -- the role ---------------------------------------------------------------------------------
    def propose(self, job: JobView, representatives: list[int], target: int) -> list[DescriptorDraft]:
        from agentictagger.vocab.grouping import consensus_groups, n_fine_clusters

        n = len(job)
        target = max(1, min(target, n))
        m = n_fine_clusters(n, target, self.fine_per_group, self.min_fine_size)
        restarts = self.sub_job_restarts if job.level > 1 else self.restarts
        labels, fine = consensus_groups(job.embeddings, m, target, job.seed, restarts)
        keep = [g for g in range(int(labels.max()) + 1) if np.sum(labels == g) >= min(self.min_group_items, n)]
        groups = [np.flatnonzero(labels == g) for g in keep]
        return self._named_drafts(job, groups, [], [self._piece_centroids(job, fine[gi], gi) for gi in groups])

    def _piece_centroids(self, job: JobView, fine: np.ndarray, members: np.ndarray) -> np.ndarray:
        """A group's prototype rows: the centroids of its pieces (its items split by fine
        cluster) holding at least ``min_fine_size`` items, or its own centroid when none does.
        Nearest-row matching then gives back the group even when it is not convex (one centroid
        would cut it apart)."""
        pieces, counts = np.unique(fine, return_counts=True)
        big = pieces[counts >= min(self.min_fine_size, len(members))]
        parts = [members[fine == p] for p in big] or [members]
        return normalise(np.stack([job.embeddings[p].mean(axis=0) for p in parts]))

    def refine(
        self,
        job: JobView,
        descriptors: list[DescriptorDraft],
        annotations: list[ItemAnnotation],
        failures: list[FailureReport],
        target: int,
    ) -> Refinement:
        changes: list[str] = []
        descriptors, renamed = self._rename(job, descriptors, annotations)
        if renamed:
            changes.append(f"renamed {renamed} whose names read as a sibling's")
        counts = first_match_counts(annotations, len(descriptors))
        keep = [i for i in range(len(descriptors)) if counts[i] > 0]
        if len(keep) < len(descriptors):
            changes.append(f"removed {len(descriptors) - len(keep)} unused")
        kept = [descriptors[i] for i in keep]
        kept_counts = [int(counts[i]) for i in keep]
        kept, merged = self._merge_near_duplicates(kept, kept_counts)
        if merged:
            changes.append(f"merged {merged} near-duplicates")
        # Items that fit no group become new groups; items in a group whose name misreads them
        # were handled by renaming above.
        failed = np.asarray([i for i, a in enumerate(annotations) if not a.matches and not a.error], dtype=np.int64)
        room = self.max_descriptors - len(kept)
        min_size = max(self.min_group_items, int(np.ceil(self.min_new_group_share * len(job))))
        if len(failed) >= min_size and room > 0:
            from agentictagger.vocab.grouping import fine_clusters

            n_new = int(np.clip(round(len(failed) / self.failures_per_new_group), 1, min(self.max_new_per_step, room)))
            lab, _ = fine_clusters(job.embeddings[failed], n_new, job.seed + len(descriptors))
            groups = [failed[lab == c] for c in range(n_new)]
            groups = [g for g in groups if len(g) >= min_size]
            if groups:
                new = self._named_drafts(job, groups, [d.name for d in kept], min_kind_share=self.MIN_ADDED_KIND_SHARE)
                kept, absorbed = _absorb_same_names(kept, new)
                if len(new) - absorbed:
                    changes.append(f"added {len(new) - absorbed} for {len(failed)} failures")
                if absorbed:
                    changes.append(f"widened {absorbed} descriptor(s) whose name the failures share")
        if room <= 0 and len(failed) >= min_size:
            changes.append(f"at the cap of {self.max_descriptors} descriptors: no room for new groups")
        wants_more = len(failed) > self.failures_per_new_group * self.max_new_per_step and room > self.max_new_per_step
        return Refinement(kept, wants_more_steps=wants_more, summary="; ".join(changes) or "no change")

    def _rename(
        self, job: JobView, descs: list[DescriptorDraft], annotations: list[ItemAnnotation], max_renamed: int = 8
    ) -> tuple[list[DescriptorDraft], int]:
        """Rename the descriptors whose names the judge misreads most: the namer proposes other
        names and definitions for each (told which sibling its items were taken for), and a
        candidate replaces the name only when more of the job's items are then matched, by name and
        definition alone, to the group they belong to. The prototype rows (the group's centroids)
        are kept; blended with the new name when items are matched."""
        own = np.array([a.matches[0] if a.matches else -1 for a in annotations], dtype=np.int64)
        rows = np.flatnonzero(own >= 0)
        if len(descs) < 2 or len(rows) == 0 or not hasattr(self.namer, "candidates"):
            return descs, 0
        x = job.embeddings[rows]
        own_r = own[rows]
        text = np.asarray(self.encode([descriptor_text(d) for d in descs]), dtype=np.float32)

        def agreement(t: np.ndarray) -> int:
            return int(np.sum((x @ t.T).argmax(axis=1) == own_r))

        pick = (x @ text.T).argmax(axis=1)
        recall = []
        for k in range(len(descs)):
            mine = own_r == k
            if mine.sum() >= self.min_group_items:
                recall.append((float(np.mean(pick[mine] == k)), k))
        worst = [k for r, k in sorted(recall) if r < 0.95][:max_renamed]
        if not worst:
            return descs, 0
        groups, notes = [], []
        for k in worst:
            members = rows[own_r == k]
            order, _ = self._central(job, members)
            groups.append(self._naming_group(job, order))
            wrong = members[pick[own_r == k] != k]
            taken_for = np.bincount(pick[np.isin(rows, wrong)], minlength=len(descs)) if len(wrong) else np.zeros(len(descs))
            other = int(np.argmax(taken_for))
            notes.append(
                f"{int(len(wrong))} of its {len(members)} items read as '{descs[other].name}'; a name and definition "
                "that say what sets this group apart from it"
                if len(wrong)
                else ""
            )
        ctx = self._ctx(job, [d.name for i, d in enumerate(descs) if i not in worst])
        cands = self.namer.candidates(groups, ctx, [descs[k].name for k in worst], notes)
        out = list(descs)
        current = agreement(text)
        renamed = 0
        from agentictagger.vocab.name_rules import name_key, only_drops_words

        # A name is never renamed to itself with words left out ("Pressure Gauge" -> "Gauge"): the
        # judge may read a vaguer name a few items better, a person reads it worse (seen in the
        # full Scientific builds, `refinement_llm_judge.json`).
        cands = [[o for o in options if not only_drops_words(o.name, descs[k].name)] for k, options in zip(worst, cands)]
        # Every candidate's text in one encoding call (a call per group costs the model's fixed
        # per-call time again each time; see name_groups).
        # Names a sibling holds now are left out (a rename below may free one: encoded then).
        held = [name_key(d.name) for d in descs]
        cand_texts = list(dict.fromkeys(
            vocabulary_text(o.name, o.definition) for k, options in zip(worst, cands) for o in options
            if name_key(o.name) not in held[:k] + held[k + 1:] and o.name != descs[k].name
        ))
        cand_vecs = dict(zip(cand_texts, np.asarray(self.encode(cand_texts), dtype=np.float32))) if cand_texts else {}
        for k, options in zip(worst, cands):
            taken = {name_key(d.name) for i, d in enumerate(out) if i != k}
            options = [o for o in options if name_key(o.name) not in taken and o.name != out[k].name]
            if not options:
                continue
            missing = [t for t in (vocabulary_text(o.name, o.definition) for o in options) if t not in cand_vecs]
            if missing:
                cand_vecs.update(zip(missing, np.asarray(self.encode(missing), dtype=np.float32)))
            vecs = [cand_vecs[vocabulary_text(o.name, o.definition)] for o in options]
            # A new name must set right a real share of the group's items: taking any name the judge
            # reads one or two items better by trades a readable name for noise.
            best, best_score = None, current + self.MIN_RENAME_GAIN - 1
            for o, v in zip(options, vecs):
                trial = text.copy()
                trial[k] = v
                score = agreement(trial)
                if score > best_score:
                    best, best_score, best_vec = o, score, v
            if best is not None:
                d = out[k]
                out[k] = DescriptorDraft(best.name, best.definition, d.prototype, best.named_by, d.exemplars, list(best.problems),
                                         d.name_weight)
                text[k] = best_vec
                current = best_score
                renamed += 1
        return out, renamed

    def _merge_near_duplicates(self, descs: list[DescriptorDraft], counts: list[int]) -> tuple[list[DescriptorDraft], int]:
        if len(descs) < 2:
            return descs, 0
        e = EmbeddingAnnotator(self.encode, 0.0).vectors(descs)
        sim = e @ e.T
        order = np.argsort(-np.asarray(counts), kind="stable")
        alive: list[int] = []
        for i in order:
            if all(sim[i, j] < self.merge_threshold for j in alive):
                alive.append(int(i))
        alive.sort()
        return [descs[i] for i in alive], len(descs) - len(alive)


def _absorb_same_names(kept: list[DescriptorDraft], new: list[DescriptorDraft]) -> tuple[list[DescriptorDraft], int]:
    """``kept`` plus ``new``, where a new draft named like a kept one (after lemmatising) widens
    that descriptor (its prototype rows join the kept one's) instead of becoming a second
    descriptor of the same name. Returns the list and how many new drafts were absorbed."""
    from agentictagger.vocab.name_rules import name_key

    out = list(kept)
    index = {name_key(d.name): i for i, d in enumerate(out)}
    absorbed = 0
    for d in new:
        i = index.get(name_key(d.name))
        if i is None:
            index[name_key(d.name)] = len(out)
            out.append(d)
            continue
        old = out[i]
        if old.prototype is not None and d.prototype is not None:
            proto = np.concatenate([np.atleast_2d(old.prototype), np.atleast_2d(d.prototype)])
            out[i] = DescriptorDraft(old.name, old.definition, proto, old.named_by, old.exemplars, old.naming_problems,
                                     old.name_weight)
        absorbed += 1
    return out, absorbed


def _clip(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
