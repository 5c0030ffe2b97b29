"""Control flow of the build loop (Algorithms 1-2) with scripted agents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agentictagger.config import BuildConfig, RunConfig
from agentictagger.vocab.agents import DescriptorDraft, ItemAnnotation, Refinement
from agentictagger.run.build import build_set
from agentictagger.vocab.builder import BuildError, VocabularyBuilder
from agentictagger.vocab.summary import load_jobs, refinement_effect
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary


class ScriptedArchitect:
    """Proposes ``n`` descriptors; each refinement adds one and may ask for more steps."""

    def __init__(self, n: int = 3, wants_more: bool = False) -> None:
        self.n = n
        self.wants_more = wants_more
        self.proposals: list[str] = []
        self.refinements: list[str] = []

    def propose(self, job, representatives, target):
        self.proposals.append(job.job_id)
        assert representatives and all(0 <= r < len(job) for r in representatives)
        return [DescriptorDraft(f"{job.job_id} kind {k}", f"definition {k}") for k in range(self.n)]

    def refine(self, job, descriptors, annotations, failures, target):
        self.refinements.append(job.job_id)
        assert all(not annotations[f.item].covered for f in failures)
        new = descriptors + [DescriptorDraft(f"{job.job_id} extra {len(descriptors)}", "added for failures")]
        return Refinement(new, wants_more_steps=self.wants_more, summary="added one")


class ScriptedAnnotator:
    """Item i matches descriptor (i mod k); the first ``uncovered[step]`` share of items fail."""

    def __init__(self, uncovered: list[float], multi: bool = False) -> None:
        self.uncovered = uncovered
        self.multi = multi
        self.calls: dict[str, int] = {}

    def annotate(self, job, descriptors, items):
        step = self.calls.get(job.job_id, 0)
        self.calls[job.job_id] = step + 1
        share = self.uncovered[min(step, len(self.uncovered) - 1)] if job.job_id == ROOT_ID else 0.0
        n_fail = int(round(share * len(items)))
        out = []
        for i in items:
            if i < n_fail:
                out.append(ItemAnnotation([], f"item {i} fits nothing"))
            else:
                k = i % len(descriptors)
                matches = [k, (k + 1) % len(descriptors)] if self.multi else [k]
                out.append(ItemAnnotation(matches))
        return out


def _builder(tmp_path, cfg: BuildConfig, architect, annotator, n: int = 300, dim: int = 8):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return VocabularyBuilder(
        cfg,
        texts=[f"item {i}" for i in range(n)],
        embeddings=emb,
        architect=architect,
        annotator=annotator,
        run_dir=tmp_path / "run",
    )


def _cfg(**kw) -> BuildConfig:
    base = dict(min_cluster_size=30, max_depth=1, refine_steps=3, max_refine_steps=5, min_failures=5,
                n_representatives=10, max_parallel_jobs=2)
    base.update(kw)
    return BuildConfig(**base)


def test_stops_when_coverage_target_reached(tmp_path):
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.02])
    res = _builder(tmp_path, _cfg(coverage_target=0.95), arch, ann).run()
    root = next(j for j in res.jobs if j.job_id == ROOT_ID)
    assert len(root.steps) == 1 and arch.refinements == []
    assert root.steps[0].coverage == pytest.approx(0.98)
    # No job refined: the per-level coverage is still reported (before = after).
    eff = refinement_effect(load_jobs(tmp_path / "run"))
    assert eff["jobs_refined"] == 0 and "wilcoxon_p_greater" not in eff
    assert eff["by_level"]["1"]["coverage_before"] == eff["by_level"]["1"]["coverage_after"] == pytest.approx(0.98)


def test_stops_when_few_failures_remain(tmp_path):
    # 10 % uncovered = 30 failures, above min_failures=20 -> refine; then 5 % = 15 < 20 -> stop.
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.10, 0.05, 0.0])
    res = _builder(tmp_path, _cfg(coverage_target=0.999, min_failures=20), arch, ann).run()
    root = next(j for j in res.jobs if j.job_id == ROOT_ID)
    assert [s.n_failures for s in root.steps] == [30, 15]
    assert len(arch.refinements) == 1


def test_step_budget_and_architect_asking_for_more(tmp_path):
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.5])
    res = _builder(tmp_path, _cfg(coverage_target=0.99, refine_steps=3), arch, ann).run()
    root = next(j for j in res.jobs if j.job_id == ROOT_ID)
    assert len(root.steps) == 4  # initial + 3 refinements, coverage never reached
    assert any("coverage" in w for w in res.warnings)  # a job that ends badly is reported

    arch2, ann2 = ScriptedArchitect(wants_more=True), ScriptedAnnotator([0.5])
    res2 = _builder(tmp_path / "b", _cfg(coverage_target=0.99, refine_steps=3, max_refine_steps=5), arch2, ann2).run()
    root2 = next(j for j in res2.jobs if j.job_id == ROOT_ID)
    assert len(root2.steps) == 6  # extended to the hard cap of 5 refinements, not beyond


def test_coverage_recorded_after_every_step(tmp_path):
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.4, 0.3, 0.2, 0.1])
    b = _builder(tmp_path, _cfg(coverage_target=0.99), arch, ann)
    b.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "build_log.jsonl").read_text().splitlines()]
    root_steps = [r for r in log if r["job"] == ROOT_ID]
    assert [round(r["coverage"], 2) for r in root_steps] == [0.6, 0.7, 0.8, 0.9]
    eff = refinement_effect(load_jobs(tmp_path / "run"))
    assert eff["mean_change"] == pytest.approx(0.3)


def test_a_refinement_that_covers_less_is_not_applied_and_the_job_stops(tmp_path):
    # Coverage 0.6 -> 0.7 -> 0.5: the second refinement is worse, so the job keeps step 1.
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.4, 0.3, 0.5, 0.1])
    res = _builder(tmp_path, _cfg(coverage_target=0.99), arch, ann).run()
    root = next(j for j in res.jobs if j.job_id == ROOT_ID)
    assert [round(s.coverage, 2) for s in root.steps] == [0.6, 0.7]
    assert len(root.final) == 4  # the 3 proposed + the one the applied refinement added
    assert [(r["step"], r["coverage"], r["previous"]) for r in root.rejected] == [(2, 0.5, 0.7)]
    assert arch.refinements.count(ROOT_ID) == 2  # no third refinement after the rejected one
    log = [json.loads(line) for line in (tmp_path / "run" / "build_log.jsonl").read_text().splitlines()]
    assert [r["rejected_step"] for r in log if "rejected_step" in r] == [2]
    eff = refinement_effect(load_jobs(tmp_path / "run"))
    assert eff["refinements_rejected"] == 1 and eff["mean_change"] == pytest.approx(0.1)
    # Resuming the finished build repeats nothing.
    res2 = _builder(tmp_path, _cfg(coverage_target=0.99), arch, ann).run()
    assert arch.refinements.count(ROOT_ID) == 2 and len(res2.vocabulary.level(1)) == 4

    # Asked to keep every step, the worse one is applied (Algorithm 1 read plainly).
    arch2, ann2 = ScriptedArchitect(), ScriptedAnnotator([0.4, 0.3, 0.5, 0.1])
    res3 = _builder(tmp_path / "b", _cfg(coverage_target=0.99, keep_worse_refinements=True), arch2, ann2).run()
    root3 = next(j for j in res3.jobs if j.job_id == ROOT_ID)
    assert [round(s.coverage, 2) for s in root3.steps] == [0.6, 0.7, 0.5, 0.9] and not root3.rejected


def test_a_refinement_must_gain_the_least_share_asked(tmp_path):
    # Coverage 0.6 -> 0.7: a gain of 0.1 is short of the 0.15 asked, so the proposal stays.
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.4, 0.3, 0.5, 0.1])
    res = _builder(tmp_path, _cfg(coverage_target=0.99, min_refinement_gain=0.15), arch, ann).run()
    root = next(j for j in res.jobs if j.job_id == ROOT_ID)
    assert [round(s.coverage, 2) for s in root.steps] == [0.6] and len(root.final) == 3
    assert [(r["step"], r["coverage"], r["previous"]) for r in root.rejected] == [(1, 0.7, 0.6)]
    # A gain of exactly the share asked is applied.
    arch2, ann2 = ScriptedArchitect(), ScriptedAnnotator([0.4, 0.3, 0.5, 0.1])
    res2 = _builder(tmp_path / "b", _cfg(coverage_target=0.99, min_refinement_gain=0.1), arch2, ann2).run()
    root2 = next(j for j in res2.jobs if j.job_id == ROOT_ID)
    assert [round(s.coverage, 2) for s in root2.steps] == [0.6, 0.7]


def test_recursion_threshold_and_depth_cap(tmp_path):
    # 300 items over 3 descriptors = 100 each > 30 -> three sub-jobs; over 12 = 25 each -> none.
    arch, ann = ScriptedArchitect(n=3), ScriptedAnnotator([0.0])
    res = _builder(tmp_path, _cfg(max_depth=2), arch, ann).run()
    assert sorted(j.job_id for j in res.jobs) == ["d1", "d2", "d3", ROOT_ID]
    assert res.vocabulary.depth == 2
    for d in res.vocabulary.level(2):
        assert res.vocabulary.is_valid_path([p.id for p in res.vocabulary.path_to(d.id)])

    arch, ann = ScriptedArchitect(n=12), ScriptedAnnotator([0.0])
    res = _builder(tmp_path / "few", _cfg(max_depth=3), arch, ann).run()
    assert [j.job_id for j in res.jobs] == [ROOT_ID]

    # The depth cap wins over the size threshold.
    arch, ann = ScriptedArchitect(n=2), ScriptedAnnotator([0.0])
    res = _builder(tmp_path / "cap", _cfg(max_depth=1), arch, ann).run()
    assert res.vocabulary.depth == 1


class OneBelowRootArchitect(ScriptedArchitect):
    """Three descriptors at the root, one in every other job (a job that does not split)."""

    def propose(self, job, representatives, target):
        out = super().propose(job, representatives, target)
        return out if job.job_id == ROOT_ID else out[:1]


def test_a_job_that_does_not_split_adds_no_level(tmp_path):
    # Each level-1 descriptor (100 items) becomes a sub-job that proposes one descriptor: that
    # descriptor would be its parent again, so the parents stay leaves and nothing runs below.
    arch, ann = OneBelowRootArchitect(n=3), ScriptedAnnotator([0.0])
    res = _builder(tmp_path, _cfg(max_depth=4), arch, ann).run()
    assert sorted(j.job_id for j in res.jobs) == ["d1", "d2", "d3", ROOT_ID]
    assert [j.final for j in res.jobs if j.job_id != ROOT_ID] == [[], [], []]
    assert res.vocabulary.depth == 1 and len(res.vocabulary.level(1)) == 3
    # The saved state reads back the same (a resumed build makes the same vocabulary).
    res2 = _builder(tmp_path, _cfg(max_depth=4), OneBelowRootArchitect(n=3), ScriptedAnnotator([0.0])).run()
    assert res2.vocabulary.depth == 1 and len(res2.vocabulary.level(1)) == 3
    # A root with one descriptor keeps it (the catalog's only kind), and does not split it again.
    arch, ann = ScriptedArchitect(n=1), ScriptedAnnotator([0.0])
    res = _builder(tmp_path / "one", _cfg(max_depth=3), arch, ann).run()
    assert [j.job_id for j in res.jobs] == [ROOT_ID] and len(res.vocabulary.level(1)) == 1


def test_branching_all_vs_one(tmp_path):
    arch, ann = ScriptedArchitect(n=3), ScriptedAnnotator([0.0], multi=True)
    res_all = _builder(tmp_path / "all", _cfg(max_depth=2, branching="all"), arch, ann).run()
    sizes_all = sum(len(j.items) for j in res_all.jobs if j.job_id != ROOT_ID)
    assert sizes_all == 600  # every item follows both of its matches

    arch, ann = ScriptedArchitect(n=3), ScriptedAnnotator([0.0], multi=True)
    res_one = _builder(tmp_path / "one", _cfg(max_depth=2, branching="one"), arch, ann).run()
    children = [j for j in res_one.jobs if j.job_id != ROOT_ID]
    assert sum(len(j.items) for j in children) == 300  # one random match each
    seen = [i for j in children for i in j.items]
    assert len(set(seen)) == 300


def test_subsample(tmp_path):
    from agentictagger.catalog import Catalog

    cat = Catalog.from_records([{"item_id": str(i), "title": f"thing {i}"} for i in range(100)])
    cfg = RunConfig.load(None, ["build.subsample=30"])
    assert len(build_set(cat, cfg)) == 30
    assert build_set(cat, cfg).ids == build_set(cat, cfg).ids  # seeded
    assert len(build_set(cat, RunConfig.load(None, ["build.subsample=0.5"]))) == 50
    assert len(build_set(cat, RunConfig())) == 100


class CrashingAnnotator(ScriptedAnnotator):
    def __init__(self, crash_on_call: int, *a, **kw):
        super().__init__(*a, **kw)
        self.total = 0
        self.crash_on_call = crash_on_call

    def annotate(self, job, descriptors, items):
        self.total += 1
        if self.total == self.crash_on_call:
            raise RuntimeError("simulated crash")
        return super().annotate(job, descriptors, items)


def test_failed_job_is_reported_and_resume_repeats_no_finished_step(tmp_path):
    cfg = _cfg(coverage_target=0.99, max_depth=2, max_parallel_jobs=1)
    arch = ScriptedArchitect(n=3)
    ann = CrashingAnnotator(3, [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(BuildError, match="simulated crash"):
        _builder(tmp_path, cfg, arch, ann).run()
    state = json.loads((tmp_path / "run" / "build_state" / "jobs" / f"{ROOT_ID}.json").read_text())
    assert state["status"] == "failed" and len(state["steps"]) == 2

    # Resume: the root job continues from its third step; its first two are not redone.
    arch2 = ScriptedArchitect(n=3)
    ann2 = ScriptedAnnotator([0.2, 0.1])
    res = _builder(tmp_path, cfg, arch2, ann2).run()
    root = next(j for j in res.jobs if j.job_id == ROOT_ID)
    assert len(root.steps) == 4
    assert arch2.proposals.count(ROOT_ID) == 0  # the initial proposal was not repeated
    assert arch2.refinements.count(ROOT_ID) == 2
    assert ann2.calls[ROOT_ID] == 2


def test_resume_of_finished_build_makes_no_agent_call(tmp_path):
    cfg = _cfg(max_depth=2)
    _builder(tmp_path, cfg, ScriptedArchitect(), ScriptedAnnotator([0.0])).run()
    arch, ann = ScriptedArchitect(), ScriptedAnnotator([0.0])
    res = _builder(tmp_path, cfg, arch, ann).run()
    assert arch.proposals == [] and ann.calls == {}
    assert len(res.vocabulary) == 3 + 3 * 3


def test_job_state_json_round_trip_keeps_everything():
    from dataclasses import asdict

    from agentictagger.vocab.builder import JobState, StepRecord

    job = JobState("d1", 2, ["Lab"], [3, 1, 2])
    job.steps.append(StepRecord(0, [["Gloves", "Items that are gloves."]], 0.9, 3, 1, 0, "proposed", architect="offline"))
    job.prototypes = [[[0.25, -0.5]]]
    job.named_by, job.exemplars, job.fits = ["keyphrase"], [[3]], [True, None, False]
    job.naming_problems = [["'Pink' names a colour, size or marketing word, not a kind of item"]]
    data = json.loads(json.dumps(job.to_json()))
    assert data == json.loads(json.dumps(asdict(job)))  # the same file as before
    assert JobState.from_json(data) == job


class FallbackNamedArchitect(ScriptedArchitect):
    """Names its second descriptor by key phrases after an LLM's name was turned down."""

    def propose(self, job, representatives, target):
        drafts = super().propose(job, representatives, target)
        drafts[1].named_by = "keyphrase-fallback"
        drafts[1].naming_problems = ["'Deluxe' praises the item or names a benefit, not a kind of item; say what the items are"]
        return drafts


def test_why_an_llm_name_fell_back_reaches_the_vocabulary_file(tmp_path):
    from agentictagger.vocab.quality import name_quality

    res = _builder(tmp_path, _cfg(), FallbackNamedArchitect(), ScriptedAnnotator([0.0])).run()
    res.vocabulary.save(tmp_path / "vocabulary.json")
    vocab = Vocabulary.load(tmp_path / "vocabulary.json")
    d = vocab.level(1)[1]
    assert d.named_by == "keyphrase-fallback" and "praises" in d.naming_problems[0]
    assert all(not x.naming_problems for x in vocab if x.id != d.id)
    assert name_quality(vocab, levels=(1,))["1"]["fallbacks_by_rule"] == {"praise or benefit": 1}
    from agentictagger.vocab.summary import llm_names_by_level

    assert llm_names_by_level(vocab) == {"1": {"descriptors": 3, "llm": 0, "fallbacks": 1, "fallbacks_by_rule": {"praise or benefit": 1}}}
    # A resumed build reads the reasons back from the job's saved state.
    res2 = _builder(tmp_path, _cfg(), FallbackNamedArchitect(), ScriptedAnnotator([0.0])).run()
    assert res2.vocabulary.level(1)[1].naming_problems == d.naming_problems


class PrototypeArchitect(ScriptedArchitect):
    """Gives descriptor k the prototype row [k + 1, level, 0, ...] (dim 8)."""

    def propose(self, job, representatives, target):
        drafts = super().propose(job, representatives, target)
        for k, d in enumerate(drafts):
            d.prototype = np.array([[k + 1.0, float(job.level)] + [0.0] * 6], dtype=np.float32)
            d.name_weight = 0.5
        return drafts


class UnevenAnnotator(ScriptedAnnotator):
    """Half the items match the last descriptor, so the final order (largest first) is not the
    draft order."""

    def annotate(self, job, descriptors, items):
        self.calls[job.job_id] = self.calls.get(job.job_id, 0) + 1
        last = len(descriptors) - 1
        return [ItemAnnotation([last] if i % 2 == 0 else [(i // 2) % last]) for i in items]


def test_final_descriptors_keep_their_prototype_once_and_old_states_still_assemble(tmp_path):
    cfg = _cfg(max_depth=1)
    res = _builder(tmp_path, cfg, PrototypeArchitect(n=3), UnevenAnnotator([0.0])).run()
    state_file = tmp_path / "run" / "build_state" / "jobs" / f"{ROOT_ID}.json"
    state = json.loads(state_file.read_text())
    assert [d["draft"] for d in state["final"]] == [2, 0, 1]
    assert all("prototype" not in d for d in state["final"])  # the vectors are in "prototypes" only
    got = {res.vocabulary[did].name: vec.tolist() for did, vec in res.vocabulary.prototypes.items()}
    want = {f"{ROOT_ID} kind {k}": [[k + 1.0, 1.0] + [0.0] * 6] for k in range(3)}
    assert got == want
    assert {did: w.tolist() for did, w in res.vocabulary.name_weights.items()} == {did: [0.5] for did in res.vocabulary.prototypes}

    # A job state written with the vectors inline in "final" (and no "draft"), before the rows
    # had name weights, gives the same rows, matched as they are.
    for d in state["final"]:
        d["prototype"] = state["prototypes"][d.pop("draft")]
    state["prototypes"] = []
    del state["name_weights"]
    state_file.write_text(json.dumps(state))
    arch = PrototypeArchitect(n=3)
    again = _builder(tmp_path, cfg, arch, UnevenAnnotator([0.0])).run()
    assert arch.proposals == []
    assert {again.vocabulary[did].name: vec.tolist() for did, vec in again.vocabulary.prototypes.items()} == want
    assert again.vocabulary.name_weights == {}


def test_progress_names_the_annotation_phase_of_each_step(tmp_path):
    phases = []
    builder = _builder(tmp_path, _cfg(coverage_target=0.99), ScriptedArchitect(), ScriptedAnnotator([0.3, 0.0]))
    builder.progress = lambda stats: phases.append(stats.get("phase", ""))
    builder.run()
    root = [p for p in dict.fromkeys(phases) if p.startswith("L1 root")]
    assert root == [
        "L1 root (300 items): grouping and naming",
        "L1 root (300 items): proposal: annotating 300 items against 3 descriptors",
        "L1 root (300 items): refinement 1",
        "L1 root (300 items): refinement 1: annotating 300 items against 4 descriptors",
    ]
