"""The all-LLM profile (the paper's method) with a real local model, beside the offline and the
local-LLM profiles, on the same random subsample of Amazon 2018 Industrial_and_Scientific.

Three profiles, built with the CLI as a user would, on the same subsample (build.subsample, seed)
with the same build settings (depth, refinement steps); they differ only in who does each role:

* offline: embeddings group and annotate, key phrases name; no LLM;
* local-llm: as offline, but the local LLM names the groups of levels 1-3 with the demo's naming
  settings (names only, definitions from the groups' phrases; see ``DEMO_LLM_SETTINGS``);
* all-llm: the LLM architect proposes and refines the descriptors, LLM annotators tag every item
  (one call per item and step), the LLM namer stands by for the offline architect should the
  LLM architect's answers stay invalid (build.architect.fallback=offline: recorded per step),
  and the LLM assigner walks the tree level by level.

Every LLM role is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) on llama.cpp's server started in-process
(the 'local' backend, 2 threads). Each profile's vocabulary is assigned to all of its build
items by the embedding assigner (so the three rows compare like with like); the all-LLM
vocabulary is also assigned by the LLM assigner, to a fixed random sample of the build items
when --llm-assign-sample is below the subsample (CPU time), and every profile's embedding
assignment is scored on that sample too. Then, as §6.2, every profile's vocabulary is assigned to
the whole catalog by the embedding assigner and scored on all its labelled items.

Reported per profile: wall time per stage, LLM calls and prompt/completion tokens (usage.json,
assign_usage.json), who named the descriptors (LLM, architect, key phrases, fallbacks), the
name-rule figures and names-alone agreement, coverage before/after refinement per level, and
NMI / ARI / purity of the level-1 assignments against the items' Amazon level-2 categories.

Resumable: rerunning the same command continues every unfinished build or assignment from its
checkpoints, and the response cache (its own, under the run folders) answers every request
already paid for; finished stages are not run again (their first timings are kept).

  AGENTICTAGGER_DATA=../shared/data nice .venv/bin/python bench/all_llm_profile.py \\
      [--items 1000] [--max-depth 2] [--refine-steps 1] [--llm-assign-sample 200]

writes bench/results/all_llm_profile.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402

from agentictagger.cli.main import DEMO_LLM_SETTINGS  # noqa: E402

EXE = str(REPO / ".venv" / "bin" / "agentictagger")
MODEL = "qwen2.5-coder-1.5b-instruct"
CATALOG = "scientific"


def local_llm(name: str, threads: int) -> list[str]:
    return [f"llms.{name}.backend=local", f"llms.{name}.model_path={MODEL}", f"llms.{name}.n_threads={threads}"]


def profile_sets(profile: str, threads: int = 2) -> list[str]:
    """The settings of a profile; ``threads`` is the local llama.cpp server's (--llm-threads)."""
    if profile == "offline":
        return []
    if profile == "local-llm":
        # The demo's naming settings; the build settings (refinement steps) stay the bench's own.
        return [*(s for s in DEMO_LLM_SETTINGS if s.startswith("build.naming.")), *local_llm("namer", threads)]
    return [
        "build.architect.kind=llm",
        "build.architect.fallback=offline",
        "build.annotator.kind=llm",
        # One short answer per item: the descriptor's name (a failure's note is then the item
        # text). JSON with a note costs about three times the generated tokens on 2 CPU cores.
        "build.annotator.output=choice",
        "build.naming.kind=llm",
        "build.naming.max_level=3",
        *local_llm("architect", threads),
        *local_llm("annotator", threads),
        *local_llm("namer", threads),
        # The LLM assigner uses assign.llm ('default'); the embedding-assigned copy ignores it.
        *local_llm("default", threads),
    ]


PROFILES = ("offline", "local-llm", "all-llm")


def roles(profile: str, threads: int = 2) -> str:
    return {
        "offline": "architect: offline (embedding consensus grouping); annotator: embedding judge; names: key phrases; "
        "assigner: embedding",
        "local-llm": f"as offline, but the names of levels 1-3 by the local LLM ({MODEL}), names only (the demo's "
        "naming settings: definitions from the groups' phrases, 3 titles per group, one re-ask, no LLM renames); "
        "assigner: embedding",
        "all-llm": f"architect, annotator (choice output), namer (stand-by for the offline fallback) and the LLM assigner: "
        f"{MODEL} via llama.cpp (local backend, {threads} thread{'s' if threads > 1 else ''}, n_ctx 4096); also assigned "
        "by the embedding assigner",
    }[profile]


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def cli(args: list[str], logfile: Path) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.monotonic()
    with logfile.open("a", encoding="utf-8") as f:
        f.write(f"\n$ agentictagger {' '.join(args)}\n")
        f.flush()
        proc = subprocess.run(["nice", EXE, *args], check=False, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"agentictagger {args[0]} failed (exit {proc.returncode}); see {logfile}")
    return time.monotonic() - t0


def subset_catalog(folder: Path, ids: list[str], texts: dict[str, str]) -> Path:
    """``ids`` with the item texts the shared dataset's loader gives them (``item_id``, ``text``),
    read by the CLI with :data:`SUBSET_READ` (same ids, same texts as the build read)."""
    path = folder / "items.jsonl"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"item_id": i, "text": texts[i]}, ensure_ascii=False) + "\n" for i in ids),
                   encoding="utf-8")
    tmp.replace(path)
    return path


#: How the CLI reads a subset catalog written by :func:`subset_catalog`.
SUBSET_READ = ["catalog.id_field=item_id", "catalog.text_template={text}", "catalog.max_text_chars=100000"]


class Timings:
    """Wall seconds of every stage that ran, kept across reruns (a resumed stage adds its time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = json.loads(path.read_text()) if path.exists() else {}

    def add(self, profile: str, stage: str, seconds: float) -> None:
        self.data.setdefault(profile, {}).setdefault(stage, []).append(round(seconds, 1))
        self.path.write_text(json.dumps(self.data, indent=1))

    def of(self, profile: str) -> dict:
        return {k: {"seconds": round(sum(v), 1), "invocations": len(v)} for k, v in self.data.get(profile, {}).items()}


def usage_of(path: Path) -> dict:
    if not path.exists():
        return {}
    u = json.loads(path.read_text())
    t = u.get("total", {})
    keys = ("calls", "answered", "cache_hits", "reasks", "failures", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "wall_s")
    def pick(d: dict) -> dict:
        return {k: round(d[k], 1) if isinstance(d[k], float) else d[k] for k in keys if k in d}

    stages = {s: pick(v) for s, v in (u.get("stages") or {}).items() if isinstance(v, dict)}
    return {**pick(t), "stages": stages}


def per_call(path: Path, n_ctx: int = 4096) -> dict:
    """Per stage, from a usage log (one record per answered request): answered requests, the
    longest prompt and the longest prompt + answer, which must fit the server's ``n_ctx``.
    (Per-request seconds are not summed: up to max_concurrency requests wait in the server's
    queue at once, so each one's time includes the others'; the stage's wall_s is in usage.)"""
    out: dict = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line) if line.strip() else {}
        if "prompt_tokens" not in r:
            continue
        s = out.setdefault(r.get("stage", "?"), {"answers": 0, "max_prompt_tokens": 0, "max_prompt_plus_answer": 0})
        s["answers"] += 1
        s["max_prompt_tokens"] = max(s["max_prompt_tokens"], int(r["prompt_tokens"]))
        s["max_prompt_plus_answer"] = max(s["max_prompt_plus_answer"], int(r["prompt_tokens"]) + int(r.get("completion_tokens", 0)))
    for s in out.values():
        s["fits_context"] = s["max_prompt_plus_answer"] <= n_ctx
    return out


def level1(paths: dict, ids: list[str]) -> list[str]:
    return [paths[i][0] if paths.get(i) else "(none)" for i in ids]


def architect_steps(jobs) -> dict:
    out: dict = {}
    for j in jobs:
        for s in j.steps:
            key = s.architect or ("offline-fallback" if s.fallback else "unknown")
            out.setdefault(str(j.level), {}).setdefault(key, 0)
            out[str(j.level)][key] += 1
    return out


def llm_name_share(named_by: dict) -> float | None:
    n = sum(named_by.values())
    llm = sum(v for k, v in named_by.items() if k in ("llm", "llm-architect"))
    return round(llm / n, 4) if n else None


def score_profile(name: str, run: Path, emb_run: Path, llm_run: Path | None, ids: list[str], sample: list[str],
                  ctx: dict, timings: Timings, all_run: Path | None = None, llm_threads: int = 2) -> dict:
    from agentictagger.structures.assignment import Assignment
    from agentictagger.vocab.quality import (
        name_identifiability,
        name_quality,
        partition_scores,
    )
    from agentictagger.vocab.summary import (
        coverage_by_level,
        load_jobs,
        refinement_effect,
    )

    from agentictagger.structures.vocabulary import Vocabulary

    vocab = Vocabulary.load(run / "vocabulary.json")
    jobs = load_jobs(run)
    paths = Assignment.load_jsonl(emb_run / "assignments.jsonl").paths
    missing = [i for i in ids if i not in paths]
    if missing:
        raise SystemExit(f"{emb_run}: {len(missing)} build items have no assignment (e.g. {missing[:3]})")
    gold = ctx["gold"]
    lab = [i for i in ids if gold.get(i)]
    lab_s = [i for i in sample if gold.get(i)]
    levels = tuple(range(1, vocab.depth + 1))
    pos = {i: k for k, i in enumerate(ctx["ids"])}
    emb = ctx["emb"][[pos[i] for i in ids]]
    quality = name_quality(vocab, levels, brand_strings=ctx["brands"], brand_terms=ctx["brand_words"])
    # Who wrote each name (the vocabulary's meta): 'llm' = the LLM namer, 'keyphrase' = key
    # phrases, 'keyphrase-fallback' = key phrases after the LLM namer's answers stayed invalid,
    # 'architect' = the LLM architect's own names (its descriptors carry no namer).
    named_by_all: dict = {}
    for per_level in (vocab.meta.get("names_by_level") or {}).values():
        for k, v in per_level.items():
            key = "llm-architect" if k == "architect" else k
            named_by_all[key] = named_by_all.get(key, 0) + v
    entry: dict = {
        "roles": roles(name, llm_threads),
        "sets": profile_sets(name, llm_threads),
        "run_dir": str(run.relative_to(REPO)),
        "wall_seconds": timings.of(name),
        "build_usage": usage_of(run / "usage.json"),
        "build_llm_per_stage": per_call(run / "usage.jsonl"),
        # Resume check: with the LLM annotator every item is asked once per job step, so the
        # annotator requests sent across every invocation (killed ones included) must equal the
        # items x steps of the finished jobs when no request was paid twice.
        **({"annotator_requests_one_per_item_and_step": sum(len(j.items) * len(j.steps) for j in jobs)}
           if "annotator" in (usage_of(run / "usage.json").get("stages") or {}) else {}),
        "descriptors": len(vocab),
        "descriptors_per_level": {str(lv): len(vocab.level(lv)) for lv in levels},
        "names_by_level": vocab.meta.get("names_by_level"),
        "named_by": named_by_all,
        "share_named_by_llm": llm_name_share(named_by_all),
        "architect_steps_by_level": architect_steps(jobs),
        "name_quality": quality,
        "names_alone_embedding_judge": name_identifiability(vocab, emb, [paths[i] for i in ids], ctx["encode"], levels),
        "build_coverage_by_level": coverage_by_level(jobs, len(ids)),
        "refinement": {k: v for k, v in refinement_effect(jobs).items() if k != "per_job"},
        # Steps the build did not apply (they covered less than the step before): what they tried.
        # The root job's steps as the build recorded them: what each step proposed, what it covered,
        # which descriptors were judged too broad (a catch-all's items count as not covered).
        "root_steps": [
            {"step": st.step, "architect": st.architect, "coverage": round(st.coverage, 4), "failures": st.n_failures,
             "too_broad": st.too_broad, "summary": st.summary, "descriptors": [n for n, _ in st.descriptors]}
            for j in jobs if j.job_id == "root" for st in j.steps
        ],
        "refinement_steps_not_applied": [
            {"job": j.job_id, "level": j.level, **r} for j in jobs for r in j.rejected
        ],
        "level1_vs_amazon_level2": {
            "embedding_assigner_all_build_items": partition_scores([paths[i][0] if paths[i] else "(none)" for i in lab], [gold[i] for i in lab]),
            "embedding_assigner_llm_sample": partition_scores(level1(paths, lab_s), [gold[i] for i in lab_s]),
        },
        "level1_list": [
            {"name": d.name, "definition": d.definition, "items": d.item_count, "named_by": d.named_by}
            for d in vocab.children("root")
        ],
    }
    if all_run is not None and (all_run / "assignments.jsonl").exists():
        ap = Assignment.load_jsonl(all_run / "assignments.jsonl").paths
        lab_all = [i for i in ap if gold.get(i)]
        entry["level1_vs_amazon_level2"]["embedding_assigner_all_catalog_items"] = {
            "items": len(ap), "labelled": len(lab_all),
            **partition_scores(level1(ap, lab_all), [gold[i] for i in lab_all])}
    if llm_run is not None:
        lp = Assignment.load_jsonl(llm_run / "assignments.jsonl").paths
        got = [i for i in sample if i in lp]
        entry["llm_assigner"] = {
            "items": len(got),
            "empty_paths": sum(1 for i in got if not lp[i]),
            "usage": usage_of(llm_run / "assign_usage.json"),
            "per_stage": per_call(llm_run / "assign_usage.jsonl"),
            "agreement_with_embedding_assigner_level1": round(sum(1 for i in got if level1(lp, [i]) == level1(paths, [i])) / max(1, len(got)), 4),
        }
        entry["level1_vs_amazon_level2"]["llm_assigner_llm_sample"] = partition_scores(level1(lp, lab_s), [gold[i] for i in lab_s])
        # A vocabulary without item prototypes (the LLM architect's) is matched by the embedding
        # assigner through its names and definitions alone, so names-alone agreement with that
        # assignment is 1 by construction; against the LLM assigner's paths it says something.
        rows_s = [pos[i] for i in got]
        entry["names_alone_embedding_judge_vs_llm_assigner"] = name_identifiability(
            vocab, ctx["emb"][rows_s], [lp[i] for i in got], ctx["encode"], levels
        )
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1000, help="build.subsample (items drawn with --seed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-depth", type=int, default=2, help="build.max_depth of every profile")
    ap.add_argument("--refine-steps", type=int, default=1, help="build.refine_steps (and max_refine_steps) of every profile")
    ap.add_argument("--llm-assign-sample", type=int, default=200, help="build items the LLM assigner tags (all if >= --items)")
    ap.add_argument("--llm-threads", type=int, default=2,
                    help="threads of the local llama.cpp server (1 leaves a core to other work)")
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    ap.add_argument("--fresh", action="store_true", help="delete this setting's run folders (and its response cache) first")
    ap.add_argument("--cache-from", default="", metavar="SETTING",
                    help="seed this setting's LLM response cache with another's (a folder name under bench/runs/all_llm, "
                         "e.g. n1000_s0_d1_r1): requests with the same prompt are answered from it, not paid again")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "all_llm_profile.json"))
    args = ap.parse_args()
    t_start = time.monotonic()
    tag = f"n{args.items}_s{args.seed}_d{args.max_depth}_r{args.refine_steps}"
    base = REPO / "bench" / "runs" / "all_llm" / tag
    if args.fresh and base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    cache = base / "cache"
    if args.cache_from and not (cache / "llm").exists():
        donor = REPO / "bench" / "runs" / "all_llm" / args.cache_from / "cache" / "llm"
        if not donor.is_dir():
            raise SystemExit(f"--cache-from {args.cache_from}: no response cache at {donor}")
        shutil.copytree(donor, cache / "llm")
    emb_cache = REPO / ".cache" / "agentictagger" / "embeddings"
    if emb_cache.exists() and not (cache / "embeddings").exists():
        shutil.copytree(emb_cache, cache / "embeddings")  # item vectors are not what this bench measures
    logfile = base / "cli.log"
    timings = Timings(base / "timings.json")
    common = [
        f"seed={args.seed}",
        f"build.subsample={args.items}",
        f"build.max_depth={args.max_depth}",
        f"build.refine_steps={args.refine_steps}",
        f"build.max_refine_steps={args.refine_steps}",
        f"cache_dir={cache}",
    ]
    log(f"settings {tag}; CLI output goes to {logfile}")

    def flags(profile: str, extra: list[str] = ()) -> list[str]:
        return [x for s in [*common, *profile_sets(profile, args.llm_threads), *extra] for x in ("--set", s)]

    from agentictagger.catalog import load_shared

    rows = {it.item_id: it.text for it in load_shared(CATALOG)}  # the loader's texts
    runs: dict[str, dict] = {}
    ids: list[str] | None = None
    for profile in args.profiles:
        run = base / profile
        if not (run / "vocabulary.json").exists():
            log(f"{profile}: build (tail -f {logfile} for its progress)")
            timings.add(profile, "build", cli(["build", "--catalog", f"shared:{CATALOG}", "--run-dir", str(run), *flags(profile)], logfile))
        log(f"{profile}: built, {timings.of(profile)['build']['seconds']} s")
        got = json.loads((run / "build_state" / "build_items.json").read_text())
        if ids is None:
            ids = got
        elif got != ids:
            raise SystemExit(f"{profile} was built on other items than {args.profiles[0]}")
        build_cat = subset_catalog(base / "data_build", ids, rows)

        def embedding_copy(dest: Path, stage: str, catalog: str, what: str, extra: list[str]) -> Path:
            """The embedding assigner's assignment of ``catalog`` with this profile's vocabulary, in
            a copy of the run folder (the LLM assigner's assignment goes into the folder itself)."""
            if not (dest / "assignments.jsonl").exists():
                if not dest.exists():
                    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("assign*", "semantic_ids*", "*.lock"))
                log(f"{profile}: embedding assigner on {what}")
                timings.add(profile, stage, cli(["assign", "--catalog", catalog, "--run-dir", str(dest),
                                                 *flags(profile, ["assign.assigner=embedding", *extra])], logfile))
            return dest

        emb_run = embedding_copy(base / f"{profile}__embedding_assign", "assign_embedding", str(build_cat),
                                 f"the {len(ids)} build items", SUBSET_READ)
        # Then assign all (paper §6.2): every catalog item.
        all_run = embedding_copy(base / f"{profile}__assign_all", "assign_all_embedding", f"shared:{CATALOG}",
                                 f"every item of shared:{CATALOG}", [])
        runs[profile] = {"run": run, "emb_run": emb_run, "llm_run": None, "all_run": all_run}
    assert ids is not None
    k = min(args.llm_assign_sample, len(ids))
    sample = ids if k >= len(ids) else [ids[i] for i in sorted(random.Random(args.seed).sample(range(len(ids)), k))]
    if "all-llm" in runs:
        run = runs["all-llm"]["run"]
        sample_cat = subset_catalog(base / f"data_llm_sample{k}", sample, rows)
        if not (run / "assignments.jsonl").exists():
            log(f"all-llm: LLM assigner on {k} of the {len(ids)} build items")
            timings.add("all-llm", "assign_llm", cli(
                ["assign", "--catalog", str(sample_cat), "--run-dir", str(run), *flags("all-llm", ["assign.assigner=llm", *SUBSET_READ])], logfile))
        runs["all-llm"]["llm_run"] = run
    build_s = time.monotonic() - t_start

    log("scoring")
    t0 = time.monotonic()
    from agentictagger import catalog as catalog_mod
    from agentictagger.config import RunConfig
    from agentictagger.embed import Embedder
    from agentictagger.vocab.keyphrases import catalog_brands

    catalog = catalog_mod.load_shared(CATALOG)
    lvl = catalog_mod.LCREC_LABEL_LEVEL[CATALOG]
    gold = {it.item_id: catalog_mod.scientific_label(it.fields.get("categories"), lvl) for it in catalog}
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(cache))
    texts = [catalog.by_id(i).text for i in ids]
    import numpy as np

    ctx = {
        "gold": gold,
        "ids": ids,
        "emb": np.asarray(embedder.encode(texts), dtype=np.float32),
        "encode": embedder.encode,
    }
    ctx["brand_words"], ctx["brands"] = catalog_brands([str(it.fields.get("brand") or "") for it in catalog], catalog.texts)
    lab = [i for i in ids if gold.get(i)]
    lab_s = [i for i in sample if gold.get(i)]
    out = {
        "command": command_line(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU (shared with other work: timings are noisy)",
        "dataset": f"Amazon 2018 Industrial_and_Scientific (shared:{CATALOG}, {len(catalog)} items): build on a random "
        f"subsample of {len(ids)} items (build.subsample={args.items}, seed {args.seed}), then assign (paper §6.2)",
        "model": f"{MODEL} (Q4_K_M GGUF) on llama.cpp's server in-process (xllamacpp), n_threads {args.llm_threads}, n_ctx 4096, greedy",
        "settings": {
            "common_sets": common[:-1],
            "llm_assign_sample": f"{len(sample)} of the {len(ids)} build items, drawn with random.Random({args.seed})"
            + ("" if len(sample) < len(ids) else " (all)"),
            "assignment": "every profile: the embedding assigner on all build items and on every catalog item (assign "
            "all, paper §6.2); all-llm also: the LLM assigner (assign.assigner=llm, level by level) on the LLM sample",
        },
        "reference": f"Amazon level {lvl} categories: {len({gold[i] for i in lab})} classes over {len(lab)} labelled build items; "
        f"{len(lab_s)} labelled items in the LLM sample; every labelled item counted",
        "run_folders": str(base.relative_to(REPO)),
        "seconds_building_and_assigning_this_invocation": round(build_s, 1),
        "profiles": {},
    }
    for profile in args.profiles:
        r = runs[profile]
        out["profiles"][profile] = score_profile(profile, r["run"], r["emb_run"], r["llm_run"], ids, sample, ctx, timings,
                                                 all_run=r["all_run"], llm_threads=args.llm_threads)
        log(f"{profile}: scored")
    out["scoring_seconds"] = round(time.monotonic() - t0, 1)
    write_result(args.out, out)
    print_table(out)
    print()
    print(markdown(out))
    print(f"wrote {args.out}")


def print_table(out: dict) -> None:
    print()
    print(f"{'profile':10s} {'build s':>8s} {'assign s':>9s} {'calls':>6s} {'tokens in/out':>15s} {'L1':>3s} {'LLM names':>9s} "
          f"{'cov L1 before>after':>20s} {'names-alone L1':>14s} {'NMI':>6s} {'ARI':>6s} {'purity':>6s}")
    for name, e in out["profiles"].items():
        w = e["wall_seconds"]
        u = e["build_usage"]
        cov = e["refinement"].get("by_level", {}).get("1", {})
        a = e["level1_vs_amazon_level2"]["embedding_assigner_all_build_items"]
        na = e["names_alone_embedding_judge"].get("1", {}).get("accuracy", float("nan"))
        share = e["share_named_by_llm"]
        print(
            f"{name:10s} {w.get('build', {}).get('seconds', 0):8.0f} {w.get('assign_embedding', {}).get('seconds', 0):9.0f} "
            f"{u.get('calls', 0):6d} {str(u.get('prompt_tokens', 0)) + '/' + str(u.get('completion_tokens', 0)):>15s} "
            f"{e['descriptors_per_level'].get('1', 0):3d} {share if share is not None else 0:9.2f} "
            f"{str(cov.get('coverage_before', '-')) + ' > ' + str(cov.get('coverage_after', '-')):>20s} {na:14.3f} "
            f"{a['nmi']:6.3f} {a['ari']:6.3f} {a['purity']:6.3f}"
        )
    print("\nLLM sample (level 1 vs Amazon level 2):")
    for name, e in out["profiles"].items():
        s = e["level1_vs_amazon_level2"]
        line = f"  {name:10s} embedding assigner NMI {s['embedding_assigner_llm_sample']['nmi']:.3f} ARI {s['embedding_assigner_llm_sample']['ari']:.3f}"
        if "llm_assigner_llm_sample" in s:
            la = e["llm_assigner"]
            line += (f" | LLM assigner NMI {s['llm_assigner_llm_sample']['nmi']:.3f} ARI {s['llm_assigner_llm_sample']['ari']:.3f}"
                     f" ({la['items']} items, {e['wall_seconds'].get('assign_llm', {}).get('seconds', 0):.0f} s, "
                     f"{la['usage'].get('calls', 0)} calls)")
        print(line)


def markdown(out: dict) -> str:
    """The rows of the RESULTS.md section, from the result file."""
    lines = [
        ("| profile | build s | embedding assign s | LLM calls (build) | prompt / completion tokens | level-1 descriptors "
         "| named by | numbered copies | brand names | sibling duplicates | names alone (L1) | coverage L1 before -> after "
         "| NMI | ARI | purity |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in out["profiles"].items():
        w, u = e["wall_seconds"], e["build_usage"]
        q = e["name_quality"].get("1", {})
        cov = e["refinement"].get("by_level", {}).get("1", {})
        tried = [r for r in e.get("refinement_steps_not_applied", []) if r["level"] == 1]
        steps = (f"{cov.get('coverage_before', '-')} -> {cov.get('coverage_after', '-')}" if cov else
                 "; ".join(f"{r['previous']} -> {r['coverage']} (not applied)" for r in tried) or "- -> -")
        a = e["level1_vs_amazon_level2"]["embedding_assigner_all_build_items"]
        named = ", ".join(f"{k} {v}" for k, v in sorted(e["named_by"].items()))
        lines.append(
            f"| {name} | {w.get('build', {}).get('seconds', 0):.0f} | {w.get('assign_embedding', {}).get('seconds', 0):.0f} "
            f"| {u.get('calls', 0)} | {u.get('prompt_tokens', 0):,} / {u.get('completion_tokens', 0):,} "
            f"| {e['descriptors_per_level'].get('1', 0)} | {named} | {q.get('numbered_copies', '-')} | {q.get('brand_names', '-')} "
            f"| {q.get('sibling_duplicates_after_lemmatising', '-')} "
            f"| {e['names_alone_embedding_judge'].get('1', {}).get('accuracy', float('nan')):.3f} "
            f"| {steps} "
            f"| {a['nmi']:.3f} | {a['ari']:.3f} | {a['purity']:.3f} |"
        )
    lines += ["", "| profile | assigner | items | NMI | ARI | purity | seconds | LLM calls | prompt / completion tokens |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, e in out["profiles"].items():
        s = e["level1_vs_amazon_level2"]
        x = s["embedding_assigner_llm_sample"]
        lines.append(f"| {name} | embedding | {x['items']} | {x['nmi']:.3f} | {x['ari']:.3f} | {x['purity']:.3f} | – | 0 | – |")
        if "llm_assigner_llm_sample" in s:
            x, la = s["llm_assigner_llm_sample"], e["llm_assigner"]
            lines.append(
                f"| {name} | LLM | {x['items']} | {x['nmi']:.3f} | {x['ari']:.3f} | {x['purity']:.3f} "
                f"| {e['wall_seconds'].get('assign_llm', {}).get('seconds', 0):.0f} | {la['usage'].get('calls', 0)} "
                f"| {la['usage'].get('prompt_tokens', 0):,} / {la['usage'].get('completion_tokens', 0):,} |"
            )
    alls = {n: e["level1_vs_amazon_level2"].get("embedding_assigner_all_catalog_items") for n, e in out["profiles"].items()}
    if any(alls.values()):
        lines += ["", "| profile | assign all: items (labelled) | level-1 groups | NMI | ARI | purity | seconds |",
                  "|---|---|---|---|---|---|---|"]
        for name, x in alls.items():
            if x:
                secs = out["profiles"][name]["wall_seconds"].get("assign_all_embedding", {}).get("seconds", 0)
                lines.append(f"| {name} | {x['items']:,} ({x['labelled']:,}) | {x['clusters']} | {x['nmi']:.3f} "
                             f"| {x['ari']:.3f} | {x['purity']:.3f} | {secs:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
