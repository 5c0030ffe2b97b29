"""What a finished build looks like: coverage per level, refinement effect, level-1 grouping."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agentictagger.vocab.builder import BuildResult, JobState, descriptor_id
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary


def load_jobs(run_dir: str | Path) -> list[JobState]:
    folder = Path(run_dir) / "build_state" / "jobs"
    return [JobState.from_json(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]


def refinement_effect(jobs: Sequence[JobState], by_level: bool = True) -> dict[str, Any]:
    """Coverage after the first vs the last step of every job that refined (paper Fig. 4/5),
    with a one-sided Wilcoxon signed-rank test over those jobs; also per level."""
    pairs = [(j.steps[0].coverage, j.steps[-1].coverage, j.level) for j in jobs if len(j.steps) > 1]
    out: dict[str, Any] = {
        "jobs_total": len(jobs),
        "jobs_refined": len(pairs),
        "jobs_stopped_after_first_step": len(jobs) - len(pairs),
        # Refinement steps not applied because they covered less than the step before them.
        "refinements_rejected": sum(len(j.rejected) for j in jobs),
    }
    if pairs:
        out.update(_paired_change(pairs))
    if by_level:
        levels = sorted({j.level for j in jobs})
        out["by_level"] = {}
        for lv in levels:
            sub = refinement_effect([j for j in jobs if j.level == lv], by_level=False)
            sub.pop("per_job", None)
            items = [j for j in jobs if j.level == lv and j.steps]
            n = sum(len(j.items) for j in items)
            # Item-weighted coverage of every job of the level, before (first step) and after.
            sub["coverage_before"] = round(sum(j.steps[0].coverage * len(j.items) for j in items) / max(1, n), 4)
            sub["coverage_after"] = round(sum(j.steps[-1].coverage * len(j.items) for j in items) / max(1, n), 4)
            out["by_level"][str(lv)] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in sub.items()}
    return out


def _paired_change(pairs: list[tuple[float, float, int]]) -> dict[str, Any]:
    """Coverage of the refined jobs after their first and last steps, and the one-sided Wilcoxon test."""
    first = np.array([p[0] for p in pairs])
    last = np.array([p[1] for p in pairs])
    delta = last - first
    out: dict[str, Any] = {
        "mean_first": float(first.mean()),
        "mean_last": float(last.mean()),
        "mean_change": float(delta.mean()),
        "share_improved": float((delta > 0).mean()),
        "per_job": [{"level": lv, "first": round(a, 4), "last": round(b, 4)} for a, b, lv in pairs],
    }
    if len(pairs) >= 2 and np.any(delta != 0):
        from scipy.stats import wilcoxon

        res = wilcoxon(last, first, alternative="greater", zero_method="wilcox")
        out["wilcoxon_p_greater"] = float(res.pvalue)
        out["wilcoxon_statistic"] = float(res.statistic)
    return out


def coverage_by_level(jobs: Sequence[JobState], n_items: int) -> dict[str, Any]:
    """Per level: jobs, descriptors, item-weighted final coverage of the jobs, and the share of
    all build items that reached that level with a descriptor."""
    by_level: dict[int, list[JobState]] = defaultdict(list)
    for j in jobs:
        by_level[j.level].append(j)
    out = {}
    for level in sorted(by_level):
        js = by_level[level]
        items = sum(len(j.items) for j in js)
        covered = sum(j.steps[-1].coverage * len(j.items) for j in js)
        reached: set[int] = set()
        for j in js:
            for d in j.final:
                reached.update(d["members"])
        out[str(level)] = {
            "jobs": len(js),
            "descriptors": sum(len(j.final) for j in js),
            "items_in_jobs": items,
            "coverage_in_jobs": round(covered / max(1, items), 4),
            "share_of_all_items_tagged": round(len(reached) / max(1, n_items), 4),
        }
    return out


def level1_grouping(jobs: Sequence[JobState]) -> dict[int, str]:
    """Build-set index -> the level-1 descriptor id the root job's annotator chose first."""
    root = next(j for j in jobs if j.job_id == ROOT_ID)
    names = [d[0] for d in root.steps[-1].descriptors]
    order = {d["name"]: k for k, d in enumerate(root.final)}
    out = {}
    for local, matches in enumerate(root.annotations):
        if matches and names[matches[0]] in order:
            out[root.items[local]] = descriptor_id(ROOT_ID, order[names[matches[0]]])
    return out


def grouping_scores(pred: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    from agentictagger.vocab.quality import partition_scores

    s = partition_scores(pred, gold)
    return {"nmi": s["nmi"], "purity": s["purity"], "n": s["items"]}


def build_summary(run_dir: str | Path, result: BuildResult | None = None) -> dict[str, Any]:
    """The build in ``run_dir`` in figures: from its files, or from ``result`` (the
    :class:`~agentictagger.vocab.builder.BuildResult` the build just returned, the same states and
    vocabulary it wrote there), which spares reading every job's state back (about a second for
    the whole Beauty catalog)."""
    run_dir = Path(run_dir)
    if result is not None:
        jobs = sorted(result.jobs, key=lambda j: f"{j.job_id}.json")  # the files' order
        vocab = result.vocabulary
    else:
        jobs = load_jobs(run_dir)
        vocab = Vocabulary.load(run_dir / "vocabulary.json")
    n_items = len(json.loads((run_dir / "build_state" / "build_items.json").read_text(encoding="utf-8")))
    usage = json.loads((run_dir / "usage.json").read_text(encoding="utf-8")) if (run_dir / "usage.json").exists() else {}
    return {
        "build_items": n_items,
        "vocabulary_size": len(vocab),
        "depth": vocab.depth,
        "descriptors_per_level": {str(lv): len(vocab.level(lv)) for lv in range(1, vocab.depth + 1)},
        "coverage_by_level": coverage_by_level(jobs, n_items),
        "refinement": refinement_effect(jobs),
        "usage": usage,
        # LLM calls that failed for good (after retries and re-asks) over the whole run, per stage,
        # and the items of the jobs' final steps still without an annotator answer.
        "failed_calls": failed_calls(usage),
        "unanswered_items": sum(j.steps[-1].n_errors for j in jobs if j.steps),
        "llm_names": llm_names_by_level(vocab),
    }


def llm_names_by_level(vocab: Vocabulary) -> dict[str, dict[str, Any]]:
    """Per level where an LLM named groups: descriptors, names by the LLM, key-phrase fallbacks and
    the fallbacks per name rule the LLM's last answer broke (``naming_problems``)."""
    from agentictagger.vocab.quality import fallbacks_by_rule

    out: dict[str, dict[str, Any]] = {}
    for lv in range(1, vocab.depth + 1):
        descs = vocab.level(lv)
        llm = sum(d.named_by == "llm" for d in descs)
        falls = [d for d in descs if d.named_by == "keyphrase-fallback"]
        if not llm and not falls:
            continue
        out[str(lv)] = {"descriptors": len(descs), "llm": llm, "fallbacks": len(falls), "fallbacks_by_rule": fallbacks_by_rule(falls)}
    return out


def failed_calls(usage: dict) -> dict[str, int]:
    """Per stage, the LLM requests that failed for good, from a usage.json dict."""
    stages = usage.get("stages") if isinstance(usage, dict) else None
    return {k: int(v.get("failures", 0)) for k, v in (stages or {}).items() if isinstance(v, dict)}


def names_of_first_levels(vocab: Vocabulary, levels: int = 2) -> list[dict[str, Any]]:
    out = []
    for d in vocab.children(ROOT_ID):
        entry: dict[str, Any] = {"name": d.name, "items": d.item_count}
        if levels > 1:
            entry["children"] = [f"{c.name} ({c.item_count})" for c in vocab.children(d.id)]
        out.append(entry)
    return out
