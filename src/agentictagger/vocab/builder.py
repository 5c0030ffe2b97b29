"""Top-down vocabulary building (paper Algorithms 1-2) with checkpoints and resume.

One *cluster job* covers a group of items under one parent descriptor: the architect proposes
descriptors from K-medoids representatives, annotators tag every item, and the architect
refines from distilled failure reports until coverage, failure count or step budget says stop.
Every descriptor with enough items then becomes its own job, one level down. Each job's state
is written after every step, so a killed run resumes where it stopped; with the LLM response
cache, no finished call is paid for twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from agentictagger.errors import BuildError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.config import BuildConfig
from agentictagger.vocab.agents import (
    Annotator,
    Architect,
    DescriptorDraft,
    FailureReport,
    ItemAnnotation,
    JobView,
    mark_too_broad,
    too_broad,
)
from agentictagger.vocab.grouping import job_running, single_threaded_numerics
from agentictagger.vocab.representatives import select_representatives
from agentictagger.vocab.validate import check_descriptors, drop_invalid, unique_by_name
from agentictagger.structures.vocabulary import ROOT_ID, Descriptor, Vocabulary

log = logging.getLogger(__name__)

EncodeFn = Callable[[Sequence[str]], np.ndarray]
ProgressFn = Callable[[dict], None]


@dataclass(frozen=True)
class ArchitectSource:
    """Which architect wrote a step's descriptors: 'llm', 'offline', or 'offline-fallback' (the
    LLM architect's answers stayed invalid and build.architect.fallback let the offline one in)."""

    kind: str
    reason: str = ""

    def __bool__(self) -> bool:  # truthy = a fallback, as the old bool flag was
        return self.kind == "offline-fallback"


@dataclass
class StepRecord:
    step: int  # 0 = initial proposal, 1.. = refinements
    descriptors: list[list[str]]  # [name, definition]
    coverage: float
    n_items: int
    n_failures: int
    n_errors: int
    summary: str
    wants_more_steps: bool = False
    fallback: bool = False  # the LLM architect gave up and the offline one stepped in
    seconds: float = 0.0
    architect: str = ""  # llm | offline | offline-fallback ("" in state written before it was recorded)
    fallback_reason: str = ""  # why the LLM architect's answer was not used
    too_broad: list[str] = field(default_factory=list)  # descriptors too broad at this step (see agents.too_broad)

    def __post_init__(self) -> None:
        # The step's ArchitectSource travels in the ``fallback`` slot from _architect_call.
        src = self.fallback
        if isinstance(src, ArchitectSource):
            self.architect, self.fallback_reason, self.fallback = src.kind, src.reason, bool(src)
        self.fallback = bool(self.fallback)


@dataclass
class JobState:
    job_id: str  # ROOT_ID or the parent descriptor's id
    level: int
    parent_path: list[str]
    items: list[int]  # indices into the build set
    steps: list[StepRecord] = field(default_factory=list)
    annotations: list[list[int]] = field(default_factory=list)  # last step's matches per item
    notes: list[str] = field(default_factory=list)  # last step's failure notes per item
    errors: list[str] = field(default_factory=list)  # last step's call errors per item
    fits: list[bool | None] = field(default_factory=list)  # last step's judge verdict per item (None: has a match = fits)
    status: str = "running"  # running | done | failed
    error: str = ""
    final: list[dict] = field(default_factory=list)  # [{name, definition, members: [build idx], draft: k, ...}]
    # Last step's descriptors as the offline architect made them: prototype vectors (rounded),
    # the share of each one's name blended into its rows when matched (absent in states written
    # before the rows were stored unblended: 0, rows matched as they are), who named each, and
    # their exemplars (build idx). Empty lists for an LLM architect.
    prototypes: list[list[list[float]] | None] = field(default_factory=list)
    name_weights: list[float] = field(default_factory=list)
    named_by: list[str] = field(default_factory=list)
    exemplars: list[list[int]] = field(default_factory=list)
    # Per descriptor, why an LLM's name was not used (empty unless named_by is keyphrase-fallback).
    naming_problems: list[list[str]] = field(default_factory=list)
    # Refinement steps not applied because their coverage fell below the step they refined
    # ({step, coverage, previous, descriptors, summary}); the job stopped at the one before.
    rejected: list[dict] = field(default_factory=list)

    def drafts(self) -> list[DescriptorDraft]:
        """The last step's descriptors, with their prototypes when the architect gave them."""
        last = self.steps[-1]
        out = []
        for k, (n, d) in enumerate(last.descriptors):
            proto = self.prototypes[k] if k < len(self.prototypes) else None
            out.append(
                DescriptorDraft(
                    n,
                    d,
                    np.asarray(proto, dtype=np.float32) if proto is not None else None,
                    self.named_by[k] if k < len(self.named_by) else "",
                    [],
                    list(self.naming_problems[k]) if k < len(self.naming_problems) else [],
                    self.name_weight(k),
                )
            )
        return out

    def name_weight(self, k: int) -> float:
        """The name weight of the last step's descriptor ``k`` (0 when the state has none)."""
        return float(self.name_weights[k]) if k < len(self.name_weights) else 0.0

    def final_prototype(self, entry: dict) -> list[list[float]] | None:
        """The prototype of one ``final`` entry: ``prototypes[entry["draft"]]``. Job states written
        before the entries named their draft carry the vectors inline under ``"prototype"``."""
        if "draft" in entry:
            k = entry["draft"]
            return self.prototypes[k] if k < len(self.prototypes) else None
        return entry.get("prototype")

    def to_json(self) -> dict:
        """The state as JSON-ready data (``from_json`` reads it back). Shallow: ``dataclasses.asdict``
        deep-copies every prototype float first, which took about a tenth of a Beauty rebuild's job
        time in a profile (ad hoc, not a committed benchmark)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["steps"] = [asdict(s) for s in self.steps]
        return out

    @classmethod
    def from_json(cls, data: dict) -> "JobState":
        data = dict(data)
        data["steps"] = [StepRecord(**s) for s in data.get("steps", [])]
        return cls(**data)

    def last_annotations(self) -> list[ItemAnnotation]:
        fits = self.fits if len(self.fits) == len(self.annotations) else [None] * len(self.annotations)
        return [ItemAnnotation(m, n, e, f) for m, n, e, f in zip(self.annotations, self.notes, self.errors, fits)]


@dataclass
class BuildResult:
    vocabulary: Vocabulary
    jobs: list[JobState]
    run_dir: Path
    seconds: float
    warnings: list[str]


def _job_file(state_dir: Path, job_id: str) -> Path:
    return state_dir / "jobs" / f"{job_id}.json"


def _atomic_write(path: Path, text: str) -> None:
    from agentictagger.files import atomic_write_text

    atomic_write_text(path, text)


def job_seed(base: int, job_id: str) -> int:
    """The random seed of job ``job_id`` in a build seeded with ``base`` (the root job is "root")."""
    return (base * 1_000_003 + zlib.crc32(job_id.encode())) % (2**31)


class VocabularyBuilder:
    """Runs cluster jobs top-down over a fixed build set of items."""

    def __init__(
        self,
        cfg: BuildConfig,
        *,
        texts: Sequence[str],
        embeddings: np.ndarray,
        architect: Architect,
        annotator: Annotator,
        run_dir: str | Path,
        fallback_architect: Architect | None = None,
        encode: EncodeFn | None = None,
        exclude_terms: frozenset[str] = frozenset(),
        brand_strings: frozenset[str] = frozenset(),
        seed: int = 0,
        progress: ProgressFn | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> None:
        if len(texts) != len(embeddings):
            raise ValueError("texts and embeddings differ in length")
        self.cfg = cfg
        self.texts = list(texts)
        self.emb = np.asarray(embeddings, dtype=np.float32)
        self.architect = architect
        self.annotator = annotator
        self.fallback_architect = fallback_architect
        self.run_dir = Path(run_dir)
        self.state_dir = self.run_dir / "build_state"
        self.exclude_terms = exclude_terms
        self.brand_strings = brand_strings
        self.seed = seed
        self.progress = progress
        self.item_ids = list(item_ids) if item_ids is not None else None
        self._log_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.stats: dict[str, Any] = {"done": 0, "running": 0, "queued": 0, "last_coverage": None, "level": 1}

    # -- the whole build (Algorithm 1) ----------------------------------------------------------
    def run(self) -> BuildResult:
        t0 = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        jobs: dict[str, JobState] = {}
        failed: list[JobState] = []
        root = self._load_or_new(ROOT_ID, 1, [], list(range(len(self.texts))))
        with single_threaded_numerics(), ThreadPoolExecutor(max_workers=max(1, self.cfg.max_parallel_jobs), thread_name_prefix="job") as pool:
            pending: dict[Future, JobState] = {}
            queue = [root]

            def submit_ready() -> None:
                while queue and len(pending) < max(1, self.cfg.max_parallel_jobs):
                    job = queue.pop(0)
                    pending[pool.submit(self._run_job, job)] = job
                self._set_stats(running=len(pending), queued=len(queue))

            submit_ready()
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    try:
                        fut.result()
                    except Exception as exc:  # noqa: BLE001 - recorded, reported, resumable
                        job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
                        self._save(job)
                        failed.append(job)
                        log.error("job %s failed: %s (rerun the build to resume it)", job.job_id, job.error)
                        continue
                    jobs[job.job_id] = job
                    self._set_stats(done=len(jobs))
                    queue.extend(self._children(job))
                submit_ready()
        warnings = self._warnings(jobs.values())
        if failed:
            # No vocabulary.json from a build with failed jobs: it would silently lack their subtrees.
            raise BuildError(
                f"{len(failed)} job(s) failed: "
                + "; ".join(f"{j.job_id}: {j.error}" for j in failed)
                + f". Their state is in {self.state_dir}; run the build again to resume."
            )
        vocab = self._assemble(jobs)
        vocab.meta.update(
            {
                "build_items": len(self.texts),
                "jobs": len(jobs),
                "branching": self.cfg.branching,
                **architect_meta(jobs.values(), self.cfg.architect.kind),
                "annotator": self.cfg.annotator.kind,
                # Who wrote the names, per level ("llm", "keyphrase", "keyphrase-fallback"), and
                # the jobs that ended at the descriptor cap.
                "names_by_level": _names_by_level(vocab),
                "jobs_at_descriptor_cap": sorted(
                    j.job_id for j in jobs.values() if j.steps and len(j.steps[-1].descriptors) >= self.cfg.max_descriptors
                ),
            }
        )
        vocab.save(self.run_dir / "vocabulary.json")  # atomic: written to a temporary file, then renamed
        return BuildResult(vocab, list(jobs.values()), self.run_dir, time.monotonic() - t0, warnings)

    def _children(self, job: JobState) -> list[JobState]:
        out = []
        if job.level >= self.cfg.max_depth:
            return out
        for k, d in enumerate(job.final):
            # A root that did not split is not split again: its sub-job would see the same items and
            # repeat it one level down (other jobs that do not split end with no descriptor).
            same = len(job.final) == 1 and len(d["members"]) == len(job.items)
            if len(d["members"]) > self.cfg.sub_job_threshold(len(self.texts)) and not same:
                did = descriptor_id(job.job_id, k)
                out.append(self._load_or_new(did, job.level + 1, job.parent_path + [d["name"]], d["members"]))
        return out

    # -- one cluster job (Algorithm 2) ----------------------------------------------------------
    def _view(self, job: JobState) -> JobView:
        return JobView(
            job_id=job.job_id,
            level=job.level,
            parent_path=job.parent_path,
            texts=[self.texts[i] for i in job.items],
            embeddings=self.emb[job.items],
            seed=job_seed(self.seed, job.job_id),
            exclude_terms=self.exclude_terms,
            brand_strings=self.brand_strings,
        )

    def _run_job(self, job: JobState) -> JobState:
        with job_running():  # its grouping draws then share the cores with the other running jobs
            return self._run_job_steps(job)

    def _run_job_steps(self, job: JobState) -> JobState:
        if job.status == "done":
            if job.steps and job.steps[-1].n_errors:
                self._retry_failed_calls(job)
            return job
        job.status, job.error = "running", ""
        view = self._view(job)
        target = self._target(job)
        if not job.steps:
            t = time.monotonic()
            self._phase(job, "grouping and naming")
            reps = select_representatives(view.embeddings, self.cfg.n_representatives, view.seed)
            drafts, fallback = self._architect_call(lambda a: a.propose(view, reps, target), view)
            drafts = self._clean(drafts, view)
            self._annotate_and_record(job, view, drafts, 0, "initial proposal", False, fallback, t)
        while not self._should_stop(job):
            t = time.monotonic()
            drafts = job.drafts()
            annotations = job.last_annotations()
            view.step = len(job.steps)
            view.too_broad = [k for k, (n, _) in enumerate(job.steps[-1].descriptors) if n in job.steps[-1].too_broad]
            self._phase(job, f"refinement {len(job.steps)}")
            failures = self._distill_failures(view, annotations)
            refinement, fallback = self._architect_call(
                lambda a: a.refine(view, drafts, annotations, failures, target), view
            )
            new = self._clean(refinement.descriptors, view)
            floor = None if self.cfg.keep_worse_refinements else job.steps[-1].coverage
            self._annotate_and_record(
                job, view, new, len(job.steps), refinement.summary, refinement.wants_more_steps, fallback, t, floor
            )
        self._finalise(job)
        return job

    def _retry_failed_calls(self, job: JobState) -> None:
        """A finished job whose last step left items without an annotator answer (calls that
        failed for good): ask again for those items only, with the same descriptors. Items that now
        get an answer change the job's groups, so the sub-jobs of groups that changed are rebuilt."""
        view = self._view(job)
        todo = [i for i, e in enumerate(job.errors) if e]
        got = self.annotator.annotate(view, job.drafts(), todo)
        if len(job.fits) != len(job.annotations):
            job.fits = [None] * len(job.annotations)
        for i, a in zip(todo, got):
            job.annotations[i], job.notes[i], job.errors[i], job.fits[i] = a.matches, a.note, a.error, a.fits
        anns = job.last_annotations()
        last = job.steps[-1]
        last.too_broad = self._judge_breadth(anns, [n for n, _ in last.descriptors])
        job.notes, job.fits = [a.note for a in anns], [a.fits for a in anns]
        scored = [a for a in anns if not a.error]
        covered = sum(a.covered for a in scored)
        last.n_errors = len(anns) - len(scored)
        last.coverage = covered / max(1, len(scored))
        last.n_failures = len(scored) - covered
        old = job.final
        self._finalise(job)
        changed = [
            descriptor_id(job.job_id, k)
            for k in range(max(len(old), len(job.final)))
            if k >= len(old) or k >= len(job.final) or (old[k]["name"], old[k]["members"]) != (job.final[k]["name"], job.final[k]["members"])
        ]
        for did in changed:  # their sub-jobs were built over other items: rebuilt from scratch
            for f in (self.state_dir / "jobs").glob(f"{did}.json"):
                f.unlink()
            for f in (self.state_dir / "jobs").glob(f"{did}.*.json"):
                f.unlink()
        self._log({"job": job.job_id, "level": job.level, "retried_failed_calls": len(todo),
                   "still_failed": last.n_errors, "rebuilt_subtrees": changed})
        log.info("job %s: retried %d failed annotator call(s), %d still failed", job.job_id, len(todo), last.n_errors)

    def _target(self, job: JobState) -> int:
        if job.job_id == ROOT_ID:
            return self.cfg.root_descriptors
        by_size = max(self.cfg.min_descriptors, len(job.items) // 10)
        return int(min(self.cfg.child_descriptors, by_size))

    def _should_stop(self, job: JobState) -> bool:
        last = job.steps[-1]
        refinements = len(job.steps) - 1
        budget = self.cfg.max_refine_steps if last.wants_more_steps else self.cfg.refine_steps
        budget = min(budget, self.cfg.max_refine_steps)
        # A refinement that changed nothing would be repeated unchanged: stop there.
        unchanged = refinements > 0 and last.descriptors == job.steps[-2].descriptors and last.coverage == job.steps[-2].coverage
        # The refinement of the last step covered less and was not applied: repeating it would too.
        worse = bool(job.rejected) and job.rejected[-1]["step"] == len(job.steps)
        return (
            worse
            or last.coverage >= self.cfg.coverage_target
            or last.n_failures < self.cfg.min_failures
            or refinements >= budget
            or unchanged
        )

    def _architect_call(self, fn: Callable[[Architect], Any], view: JobView) -> tuple[Any, ArchitectSource]:
        """The architect's answer and who gave it. Only a validation failure of the LLM
        architect's answers (ArchitectGaveUp) may hand the step to the offline architect, and only
        when build.architect.fallback is 'offline'; a failed call (HTTP, auth, connection, a
        prompt that cannot fit) fails the job, and with it the build."""
        kind = "llm" if self.cfg.architect.kind == "llm" else "offline"
        try:
            return fn(self.architect), ArchitectSource(kind)
        except Exception as exc:  # noqa: BLE001
            if (
                kind != "llm"
                or self.fallback_architect is None
                or getattr(self.cfg.architect, "fallback", "none") != "offline"
                or not _is_validation_failure(exc)
            ):
                raise
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            log.warning("job %s: %s; the offline architect writes this step (build.architect.fallback=offline)",
                        view.job_id, reason)
            return fn(self.fallback_architect), ArchitectSource("offline-fallback", reason)

    def _clean(self, drafts: list[DescriptorDraft], view: JobView) -> list[DescriptorDraft]:
        problems = check_descriptors(
            drafts,
            min_count=1,
            max_count=self.cfg.max_descriptors,
            brand_terms=self.exclude_terms,
            parent_path=view.parent_path,
        )
        kept = unique_by_name(drop_invalid(drafts, problems))
        if problems:
            log.info("job %s: dropped descriptors: %s", view.job_id, "; ".join(map(str, problems)))
        if not kept:
            raise RuntimeError(f"job {view.job_id}: no valid descriptor left ({'; '.join(map(str, problems))})")
        return kept[: self.cfg.max_descriptors]

    def _annotate_and_record(
        self,
        job: JobState,
        view: JobView,
        drafts: list[DescriptorDraft],
        step: int,
        summary: str,
        wants_more: bool,
        fallback: bool,
        t0: float,
        floor: float | None = None,
    ) -> None:
        """Annotate the job's items against ``drafts`` and record the step. With ``floor`` (the
        coverage of the step being refined), a step that covers less, or not ``min_refinement_gain``
        of the items more, is not applied: it is kept in ``job.rejected`` and the build log, and the
        job stops at the step before."""
        # With LLM annotators this is most of a step's time (one call per item): say so on the
        # progress line rather than leave the architect's phase there.
        self._phase(job, f"{'refinement ' + str(step) if step else 'proposal'}: annotating {len(view)} items "
                         f"against {len(drafts)} descriptors")
        annotations = self.annotator.annotate(view, drafts, list(range(len(view))))
        scored = [a for a in annotations if not a.error]
        n_err = len(annotations) - len(scored)
        share = self.cfg.max_failed_call_share
        if n_err and n_err > share * len(annotations):
            # The step is not recorded: a rerun redoes it (answered calls come from the cache) and
            # retries the failed ones.
            raise RuntimeError(
                f"job {job.job_id} step {step}: {n_err} of {len(annotations)} annotator calls failed for good "
                f"({n_err / len(annotations):.0%} > build.max_failed_call_share={share:g}; "
                f"first: {next(a.error for a in annotations if a.error)})"
            )
        broad = self._judge_breadth(annotations, [d.name for d in drafts])
        covered = sum(a.covered for a in scored)
        coverage = covered / max(1, len(scored))
        if floor is not None and coverage < floor + self.cfg.min_refinement_gain - 1e-12:
            job.rejected.append({"step": step, "coverage": round(coverage, 4), "previous": round(floor, 4),
                                 "descriptors": len(drafts), "summary": summary})
            self._save(job)
            self._log({"job": job.job_id, "level": job.level, "parent_path": job.parent_path, "rejected_step": step,
                       "coverage": coverage, "previous_coverage": floor, "summary": summary,
                       "descriptors": len(drafts), "seconds": round(time.monotonic() - t0, 3)})
            log.info("job %s step %d: not applied (coverage %.3f against %.3f before it, gain needed %.3f: %s)",
                     job.job_id, step, coverage, floor, self.cfg.min_refinement_gain, summary)
            return
        rec = StepRecord(
            step=step,
            descriptors=[[d.name, d.definition] for d in drafts],
            coverage=coverage,
            n_items=len(annotations),
            n_failures=len(scored) - covered,
            n_errors=n_err,
            summary=summary,
            wants_more_steps=wants_more,
            fallback=fallback,
            seconds=round(time.monotonic() - t0, 3),
            too_broad=broad,
        )
        job.steps.append(rec)
        job.prototypes = [
            np.round(np.atleast_2d(d.prototype), 5).tolist() if d.prototype is not None else None for d in drafts
        ]
        job.name_weights = [float(d.name_weight) for d in drafts]
        job.named_by = [d.named_by for d in drafts]
        job.naming_problems = [list(d.naming_problems) for d in drafts]
        job.exemplars = [[job.items[i] for i in d.exemplars] for d in drafts]
        if len(drafts) >= self.cfg.max_descriptors:
            log.warning(
                "job %s step %d: %d descriptors, the cap (build.max_descriptors=%d)",
                job.job_id, step, len(drafts), self.cfg.max_descriptors,
            )
        job.annotations = [a.matches for a in annotations]
        job.notes = [a.note for a in annotations]
        job.errors = [a.error for a in annotations]
        job.fits = [a.fits for a in annotations]
        self._save(job)
        self._log({"job": job.job_id, "level": job.level, "parent_path": job.parent_path, **asdict(rec), "descriptors": len(drafts)})
        self._set_stats(last_coverage=rec.coverage, level=job.level)
        if broad:
            log.info("job %s step %d: too broad to tell items apart: %s; their items count as not covered",
                     job.job_id, step, ", ".join(broad))
        if n_err:
            log.warning("job %s step %d: %d annotator call(s) failed; those items are excluded from coverage", job.job_id, step, n_err)

    def _judge_breadth(self, annotations: list[ItemAnnotation], names: list[str]) -> list[str]:
        """Marks the items of too-broad descriptors as not covered; returns those descriptors' names."""
        broad = too_broad(annotations, len(names), self.cfg.too_broad_factor)
        mark_too_broad(annotations, broad, names)
        return [names[k] for k in broad]

    def _distill_failures(self, view: JobView, annotations: list[ItemAnnotation]) -> list[FailureReport]:
        failed = [i for i, a in enumerate(annotations) if not a.covered and not a.error]
        if not failed:
            return []
        picks = select_representatives(view.embeddings[failed], self.cfg.n_failure_reports, view.seed + 1)
        return [FailureReport(failed[p], view.texts[failed[p]], annotations[failed[p]].note) for p in picks]

    def _finalise(self, job: JobState) -> None:
        last = job.steps[-1]
        members: list[list[int]] = [[] for _ in last.descriptors]
        rng = np.random.default_rng(job_seed(self.seed, job.job_id + "/branch"))
        for local, matches in enumerate(job.annotations):
            if not matches:
                continue
            chosen = matches if self.cfg.branching == "all" else [matches[int(rng.integers(len(matches)))]]
            for k in chosen:
                members[k].append(job.items[local])
        order = sorted(range(len(members)), key=lambda k: (-len(members[k]), k))
        if job.job_id != ROOT_ID and sum(1 for k in order if members[k]) < 2:
            # A job that ends with one descriptor did not split its items: that descriptor is its
            # parent again (give or take the items it missed), a level that tells a reader nothing
            # and whose own sub-job saw the same items ("Pla Filament > Printer > Printing
            # Filament", a few items fewer each level). The parent stays a leaf.
            order = []
        job.final = [
            {
                "name": last.descriptors[k][0],
                "definition": last.descriptors[k][1],
                "members": members[k],
                "draft": k,  # its prototype is job.prototypes[k], stored once
                "named_by": job.named_by[k] if k < len(job.named_by) else "",
                "exemplars": job.exemplars[k] if k < len(job.exemplars) else [],
                "naming_problems": job.naming_problems[k] if k < len(job.naming_problems) else [],
            }
            for k in order
            if members[k]
        ]
        job.status = "done"
        self._save(job)

    # -- state, logs, assembly ------------------------------------------------------------------
    def _load_or_new(self, job_id: str, level: int, parent_path: list[str], items: list[int]) -> JobState:
        path = _job_file(self.state_dir, job_id)
        if path.exists():
            job = JobState.from_json(json.loads(path.read_text(encoding="utf-8")))
            if job.items != items:
                raise BuildError(
                    f"{path} was written for different items; the run folder belongs to another "
                    "catalog or configuration. Use a new run folder."
                )
            if job.status == "failed":
                job.status = "running"
            return job
        job = JobState(job_id, level, parent_path, list(items))
        self._save(job)
        return job

    def _save(self, job: JobState) -> None:
        _atomic_write(_job_file(self.state_dir, job.job_id), json.dumps(job.to_json(), ensure_ascii=False))

    def _log(self, record: dict) -> None:
        with self._log_lock, open(self.run_dir / "build_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), **record}, ensure_ascii=False) + "\n")

    def _phase(self, job: JobState, what: str) -> None:
        where = " > ".join(job.parent_path) or "root"
        self._set_stats(phase=f"L{job.level} {where[:40]} ({len(job.items)} items): {what}", level=job.level)

    def _set_stats(self, **kw: Any) -> None:
        with self._stats_lock:
            self.stats.update(kw)
            snapshot = dict(self.stats)
        if self.progress:
            self.progress(snapshot)

    def _warnings(self, jobs: Any) -> list[str]:
        out = []
        below = []
        for job in jobs:
            last = job.steps[-1]
            if last.coverage < self.cfg.coverage_target and last.n_failures >= self.cfg.min_failures:
                below.append(
                    (last.coverage, f"job {job.job_id} ({' > '.join(job.parent_path) or 'root'}) ended at coverage "
                     f"{last.coverage:.0%} with {last.n_failures} uncovered items")
                )
        below.sort()
        if len(below) > 3:
            out.append(
                f"{len(below)} jobs ended below build.coverage_target ({self.cfg.coverage_target:.0%}); the lowest: "
                + "; ".join(text for _, text in below[:3])
            )
        else:
            out += [text for _, text in below]
        broad = [(job, job.steps[-1].too_broad) for job in jobs if job.steps[-1].too_broad]
        for job, names in broad[:3]:
            out.append(
                f"job {job.job_id} ({' > '.join(job.parent_path) or 'root'}) ended with a descriptor too broad to tell "
                f"its items apart: {', '.join(names)} (refinement did not split it; see build_log.jsonl)"
            )
        if len(broad) > 3:
            out.append(f"{len(broad) - 3} more jobs ended with a too-broad descriptor")
        for job in jobs:
            n_fallback = sum(1 for s in job.steps if s.fallback)
            if n_fallback:
                out.append(
                    f"job {job.job_id}: the offline architect stood in for the LLM architect in {n_fallback} "
                    f"step(s) (its answers stayed invalid; first: {next(s.fallback_reason for s in job.steps if s.fallback)[:160]})"
                )
        for w in out:
            log.info(w)  # returned to the caller, which shows them (the CLI prints each once)
        return out

    def _assemble(self, jobs: dict[str, JobState]) -> Vocabulary:
        vocab = Vocabulary()

        def add(job_id: str) -> None:
            job = jobs.get(job_id)
            if job is None:
                return
            for k, d in enumerate(job.final):
                did = descriptor_id(job_id, k)
                vocab.add(
                    Descriptor(
                        did,
                        d["name"],
                        d["definition"],
                        job.level,
                        job_id,
                        len(d["members"]),
                        named_by=d.get("named_by", ""),
                        exemplars=[self.item_ids[i] for i in d.get("exemplars", [])] if self.item_ids else [],
                        naming_problems=list(d.get("naming_problems", [])),
                    )
                )
                proto = job.final_prototype(d)
                if proto is not None:
                    vocab.prototypes[did] = np.asarray(proto, dtype=np.float32)
                    w = job.name_weight(d["draft"]) if "draft" in d else 0.0
                    if w:
                        vocab.name_weights[did] = np.full(len(vocab.prototypes[did]), w, dtype=np.float32)
                add(did)

        add(ROOT_ID)
        return vocab


def _is_validation_failure(exc: BaseException) -> bool:
    from agentictagger.vocab.llm_agents import ArchitectGaveUp

    return isinstance(exc, ArchitectGaveUp)


def step_architect(step: StepRecord, configured: str) -> str:
    """Who wrote a step's descriptors (state written before this was recorded: from the flag)."""
    if step.architect:
        return step.architect
    if step.fallback:
        return "offline-fallback"
    return "llm" if configured == "llm" else "offline"


def architect_meta(jobs: Any, configured: str) -> dict:
    """What actually produced the descriptors, for vocabulary.json's meta: ``architect`` is
    'llm' or 'offline' when one architect wrote every step, else e.g.
    'llm+offline-fallback(3 steps)'; with per-kind step counts and the fallbacks' reasons."""
    by_kind: dict[str, int] = {}
    fallbacks: list[dict] = []
    for job in jobs:
        for s in job.steps:
            kind = step_architect(s, configured)
            by_kind[kind] = by_kind.get(kind, 0) + 1
            if kind == "offline-fallback":
                fallbacks.append({"job": job.job_id, "step": s.step, "reason": s.fallback_reason})
    main = "llm" if configured == "llm" else "offline"
    others = [k for k in sorted(by_kind) if k != main]
    label = "+".join(([main] if by_kind.get(main) or not others else []) + [f"{k}({by_kind[k]} steps)" for k in others])
    return {
        "architect": label,
        "architect_configured": configured,
        "architect_steps_by_kind": by_kind,
        "fallbacks": len(fallbacks),
        "fallback_steps": fallbacks,
    }


def _names_by_level(vocab: Vocabulary) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for d in vocab:
        per = out.setdefault(str(d.level), {})
        per[d.named_by or "architect"] = per.get(d.named_by or "architect", 0) + 1
    return out


def descriptor_id(parent_id: str, k: int) -> str:
    """Path-derived id of the k-th (0-based) child of ``parent_id``."""
    return f"d{k + 1}" if parent_id == ROOT_ID else f"{parent_id}.{k + 1}"
