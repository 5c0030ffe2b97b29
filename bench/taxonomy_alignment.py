"""Does our taxonomy agree with human categories better than plain clustering, and are its names
names a person would accept?

For each catalog, profile and seed, build and assign with the CLI as a user would, then score the
*assigned* paths of every labelled item against Amazon's categories (NMI / ARI / purity, no item
dropped):

* level 1 vs the human level named by the dataset's label (Scientific: level 2, 25 classes;
  Office: level 3, 34 classes), beside, in the same run, on the same embeddings of the same texts:
  KMeans with n_init = 10 at our level-1 count (and at the class count), the *consensus-KMeans
  ablation* (our grouping with no agents: no naming, no annotators, no refinement, items in the
  raw consensus groups, drawn with the build's own seed for its root job), and BERTopic 0.17 with its default clusterer and with KMeans(k);
* our level 2 (the level-1/level-2 path) vs the human level below (Scientific level 3, Office
  level 4), beside KMeans at our level-2 count.

Names: per level 1-3 the share named by the LLM, the rule figures (noun phrases, sibling
duplicates, numbered copies, whole brand names, children adding nothing to their parent),
names-alone agreement by the embedding judge (levels 1-3) and, with --llm-judge, by the local
LLM on a 200-item sample; at levels 1-2, the share of names nearer the Amazon category name most
of their items carry than any other category name of that depth; refinement per level (jobs refined, coverage first -> last step,
Wilcoxon p); the full level-1 and level-2 lists and 20 random full paths with titles.

Which data chose what: the offline architect's grouping settings were chosen on Scientific's
development half (crc32(item_id) even) in earlier work; the name judge, the name rules and the
key-phrase namer were developed looking at Scientific names. Office is held out: nothing was
chosen on it. Scientific scores are reported on all items and on the held-out half.

  nice python bench/taxonomy_alignment.py                                   # offline, 3 seeds, both catalogs
  nice python bench/taxonomy_alignment.py --profiles local-llm --seeds 0 --llm-judge

writes bench/results/taxonomy_alignment.json (profiles run at other times are kept) and prints a
short table; `python bench/render_alignment_results.py` writes the RESULTS.md section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

sys.path.insert(0, str(REPO / "bench"))
from _provenance import command_line, provenance, write_result  # noqa: E402

from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.catalog import LCREC_LABEL_LEVEL, load_shared, scientific_label  # noqa: E402
from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.vocab.keyphrases import catalog_brands  # noqa: E402
from agentictagger.vocab.quality import category_name_agreement, name_identifiability, name_quality, partition_scores  # noqa: E402
from agentictagger.vocab.summary import coverage_by_level, load_jobs, refinement_effect  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402

# Threads of the local llama.cpp server: BENCH_LLM_THREADS=1 leaves a core to a benchmark beside
# this one (greedy decoding: the answers do not depend on it).
LLM_THREADS = int(os.environ.get("BENCH_LLM_THREADS", "2"))
LOCAL_LLM = [
    "llms.namer.backend=local",
    "llms.namer.model_path=qwen2.5-coder-1.5b-instruct",
    f"llms.namer.n_threads={LLM_THREADS}",
    # The demo's naming settings (`agentictagger demo`): names only (definitions from the
    # groups' phrases), 3 titles per group, one re-ask, no renames from the judge's feedback.
    "build.naming.titles_per_group=3",
    "build.naming.definitions=keyphrase",
    "build.naming.max_reasks=1",
    "build.naming.refine_steps=0",
]
PROFILES: dict[str, list[str]] = {
    # The default: embeddings group and judge, key phrases name.
    "offline": [],
    # The demo's profile: the local LLM (Qwen2.5-Coder-1.5B, `make local-llm`) names levels 1-3,
    # one call per job naming its sibling groups together; grouping and judging stay in
    # embedding space.
    "local-llm": ["build.naming.kind=llm", "build.naming.max_level=3", *LOCAL_LLM],
    # The same with LLM names on levels 1-2 only (fewer calls).
    "local-llm-l2": ["build.naming.kind=llm", "build.naming.max_level=2", *LOCAL_LLM],
}
CATALOGS = ("scientific", "office")


def cli(*args: str) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    t0 = time.monotonic()
    subprocess.run([str(REPO / ".venv" / "bin" / "agentictagger"), *args], check=True, env=env)
    return time.monotonic() - t0


def run_profile(catalog: str, profile: str, seed: int, fresh: bool, extra: list[str], tag: str = "") -> dict:
    run_dir = REPO / "bench" / "runs" / "align" / f"{catalog}_{profile}{'_' + tag if tag else ''}_s{seed}"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    path = f"shared:{catalog}"  # the dataset loader: its fields and labels
    sets = [f"seed={seed}", *PROFILES[profile], *extra]
    flags = [x for s in sets for x in ("--set", s)]
    done = (run_dir / "assignments.jsonl").exists() and (run_dir / "vocabulary.json").exists()
    build_s = assign_s = None
    if not done:
        build_s = cli("build", "--catalog", path, "--run-dir", str(run_dir), *flags)
        assign_s = cli("assign", "--catalog", path, "--run-dir", str(run_dir), *flags)
    return {"run_dir": str(run_dir.relative_to(REPO)), "sets": sets, "build_seconds": build_s, "assign_seconds": assign_s}


def prefix(paths: dict, ids: list[str], depth: int) -> list[str]:
    return ["/".join(paths[i][:depth]) if paths.get(i) else "(none)" for i in ids]


def usage_of(run_dir: Path) -> dict:
    p = run_dir / "usage.json"
    if not p.exists():
        return {}
    t = json.loads(p.read_text()).get("total", {})
    return {k: t.get(k, 0) for k in ("calls", "cache_hits", "prompt_tokens", "completion_tokens")}


def mean_sd(xs: list[float]) -> dict:
    a = np.asarray(xs, dtype=float)
    return {"mean": round(float(a.mean()), 4), "sd": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4), "values": [round(float(x), 4) for x in a]}


def pairwise_ari(parts: list[list[str]]) -> list[float]:
    from sklearn.metrics import adjusted_rand_score

    return [round(float(adjusted_rand_score(a, b)), 4) for a, b in itertools.combinations(parts, 2)]


def bertopic_labels(texts: list[str], emb: np.ndarray, seed: int, k: int | None) -> list[str]:
    from bertopic import BERTopic
    from sklearn.cluster import KMeans
    from umap import UMAP

    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    kw = {"hdbscan_model": KMeans(n_clusters=k, n_init=10, random_state=seed)} if k else {}
    model = BERTopic(umap_model=umap_model, calculate_probabilities=False, **kw)
    topics, _ = model.fit_transform(texts, embeddings=emb)
    return [str(t) for t in topics]  # -1 (outliers) counts as one more group: no item dropped


def sample_paths(vocab: Vocabulary, paths: dict, catalog, k: int = 20, seed: int = 0) -> list[dict]:
    ids = sorted(paths)
    rng = random.Random(seed)
    out = []
    for i in rng.sample(ids, min(k, len(ids))):
        item = catalog.by_id(i)
        title = str(item.fields.get("title") or item.text)[:110]
        out.append({"item_id": i, "title": title, "path": " > ".join(vocab[d].name for d in paths[i])})
    return out


def scores(pred: list[str], gold: list[str], heldout: list[bool] | None = None) -> dict:
    out = {"all": partition_scores(pred, gold)}
    if heldout is not None:
        out["heldout_half"] = partition_scores([p for p, h in zip(pred, heldout) if h], [g for g, h in zip(gold, heldout) if h])
    return out


def kmeans(emb: np.ndarray, k: int, seed: int) -> list[str]:
    from sklearn.cluster import KMeans

    from agentictagger.vocab.grouping import single_threaded_numerics

    with single_threaded_numerics():
        return [str(v) for v in KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(emb)]


def consensus_only(emb: np.ndarray, k: int, seed: int, extra: list[str] = ()) -> list[str]:
    """Our grouping with no agents: the consensus of fine-then-merged draws, as the offline
    architect's first step computes it (with the run's grouping settings, ``extra`` included, and
    the build's own random seed for its root job, so the two differ only by what the agents do),
    with no names, annotators or refinement."""
    from agentictagger.vocab.builder import job_seed
    from agentictagger.vocab.grouping import consensus_groups, n_fine_clusters, single_threaded_numerics

    g = RunConfig.load(None, [s for s in extra if s.startswith("build.grouping.")]).build.grouping
    with single_threaded_numerics():
        labels, _ = consensus_groups(emb, n_fine_clusters(len(emb), k, g.fine_per_group, g.min_fine_size), k, job_seed(seed, "root"), g.restarts)
    return [str(v) for v in labels]


def llm_judge(vocab: Vocabulary, catalog, assigned: dict, ids: list[str], level: int, seed: int) -> dict:
    from agentictagger.config import LLMConfig
    from agentictagger.llm.factory import make_client
    from agentictagger.vocab.quality import llm_name_agreement

    cfg = LLMConfig(backend="local", model="qwen2.5-coder-1.5b-instruct", model_path="qwen2.5-coder-1.5b-instruct", n_threads=LLM_THREADS)
    client = make_client(cfg, REPO / ".cache" / "llm")
    t0 = time.monotonic()
    texts = [catalog.by_id(i).text for i in ids]
    res = llm_name_agreement(vocab, texts, [assigned.get(i, []) for i in ids], client, level=level, sample=200, seed=seed)
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["model"] = "qwen2.5-coder-1.5b-instruct (local llama.cpp)"
    return res


def analyse(name: str, profiles: list[str], seeds: list[int], fresh: bool, bertopic: bool, extra: list[str], tag: str,
            judge: bool) -> dict:
    from agentictagger.embed import Embedder

    catalog = load_shared(name)
    ids = catalog.ids
    lvl = LCREC_LABEL_LEVEL[name]
    cats = {it.item_id: it.fields.get("categories") for it in catalog}
    gold1 = {i: scientific_label(c, lvl) for i, c in cats.items()}
    gold2 = {i: scientific_label(c, lvl + 1) for i, c in cats.items()}
    lab1 = [i for i in ids if gold1[i]]
    lab2 = [i for i in ids if gold2[i]]
    # Scientific's settings were chosen on its development half: report the other half apart.
    heldout1 = [zlib.crc32(i.encode()) % 2 == 1 for i in lab1] if name == "scientific" else None
    n_classes = len({gold1[i] for i in lab1})
    res: dict = {
        "catalog": name,
        "role": "development (settings chosen here; held-out half reported apart)" if name == "scientific" else "held out (nothing chosen here)",
        "items": len(ids),
        "level1_reference": f"Amazon level {lvl} ({n_classes} classes, {len(lab1)} labelled items)",
        "level2_reference": f"Amazon level {lvl + 1} ({len({gold2[i] for i in lab2})} classes, {len(lab2)} labelled items)",
        "profiles": {},
    }
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    emb = np.asarray(embedder.encode(catalog.texts), dtype=np.float32)
    row = {i: r for r, i in enumerate(ids)}
    brand_words, brands = catalog_brands([str(it.fields.get("brand") or "") for it in catalog], catalog.texts)
    for profile in profiles:
        per_seed, parts = [], []
        for seed in seeds:
            info = run_profile(name, profile, seed, fresh, extra, tag)
            run_dir = REPO / info["run_dir"]
            vocab = Vocabulary.load(run_dir / "vocabulary.json")
            assigned = Assignment.load_jsonl(run_dir / "assignments.jsonl").paths
            l1 = dict(zip(ids, prefix(assigned, ids, 1)))
            l2 = dict(zip(ids, prefix(assigned, ids, 2)))
            parts.append([l1[i] for i in ids])
            jobs = load_jobs(run_dir)
            k1 = len(vocab.level(1))
            k2 = len({l2[i] for i in lab2})
            g1 = [gold1[i] for i in lab1]
            g2 = [gold2[i] for i in lab2]
            t0 = time.monotonic()
            entry: dict = {
                **info,
                "level1_descriptors": k1,
                "level2_groups_used": k2,
                "descriptors": len(vocab),
                "descriptors_per_level": {str(lv): len(vocab.level(lv)) for lv in range(1, vocab.depth + 1)},
                "build_coverage_by_level": coverage_by_level(jobs, len(ids)),
                "refinement": {k: v for k, v in refinement_effect(jobs).items() if k != "per_job"},
                "usage": usage_of(run_dir),
                "names_by_level": vocab.meta.get("names_by_level"),
                "name_quality": name_quality(vocab, (1, 2, 3), brand_strings=brands, brand_terms=brand_words),
                "names_alone_embedding_judge": name_identifiability(
                    vocab, emb, [assigned.get(i, []) for i in ids], embedder.encode, (1, 2, 3)
                ),
                # Is each name nearest the Amazon category name most of its items carry?
                "names_vs_category_names": category_name_agreement(
                    vocab, [assigned.get(i, []) for i in ids], {1: [gold1[i] for i in ids], 2: [gold2[i] for i in ids]},
                    embedder.encode,
                ),
                "level1": {
                    "ours": scores([l1[i] for i in lab1], g1, heldout1),
                    f"kmeans_k{k1}_ninit10": scores(_rows(kmeans(emb, k1, seed), row, lab1), g1, heldout1),
                    f"kmeans_k{n_classes}_ninit10": scores(_rows(kmeans(emb, n_classes, seed), row, lab1), g1, heldout1),
                    f"consensus_kmeans_k{k1}_no_agents": scores(_rows(consensus_only(emb, k1, seed, extra), row, lab1), g1, heldout1),
                },
                "level2": {
                    "ours": scores([l2[i] for i in lab2], g2),
                    f"kmeans_k{k2}_ninit10": scores(_rows(kmeans(emb, k2, seed), row, lab2), g2),
                },
            }
            if bertopic:
                for label, k in (("bertopic_default", None), (f"bertopic_kmeans_k{k1}", k1)):
                    t1 = time.monotonic()
                    entry["level1"][label] = scores(_rows(bertopic_labels(catalog.texts, emb, seed, k), row, lab1), g1, heldout1)
                    entry["level1"][label]["seconds"] = round(time.monotonic() - t1, 1)
            if judge:
                entry["names_alone_llm_judge"] = {str(lv): llm_judge(vocab, catalog, assigned, ids, lv, seed) for lv in (1, 2)}
            entry["scoring_seconds"] = round(time.monotonic() - t0, 1)
            entry["level1_list"] = [
                {"id": d.id, "name": d.name, "definition": d.definition, "items": d.item_count, "named_by": d.named_by,
                 "children": [{"id": c.id, "name": c.name, "items": c.item_count, "named_by": c.named_by} for c in vocab.children(d.id)]}
                for d in vocab.children("root")
            ]
            entry["sample_paths"] = sample_paths(vocab, assigned, catalog, 20, seed)
            per_seed.append({"seed": seed, **entry})
            print_row(name, profile, seed, entry)
        summary: dict = {"seeds": seeds, "seed_stability_pairwise_ari": pairwise_ari(parts)}
        # The same baselines at each seed's own k: compare by role, not by key.
        def role(key: str) -> str:
            return re.sub(r"_k\d+", "", key)
        for lvl_key in ("level1", "level2"):
            by_role: dict[str, dict] = {}
            for s in per_seed:
                for k, v in s[lvl_key].items():
                    r = role(k) + ("_classcount" if lvl_key == "level1" and k == f"kmeans_k{n_classes}_ninit10" and
                                   n_classes != s["level1_descriptors"] else "")
                    by_role.setdefault(r, {"nmi": [], "ari": [], "purity": []})
                    for m in ("nmi", "ari", "purity"):
                        by_role[r][m].append(v["all"][m])
            summary[lvl_key] = {r: {m: mean_sd(x) for m, x in d.items()} for r, d in by_role.items()}
        margins = []
        for s in per_seed:
            ours = s["level1"]["ours"]["all"]
            km = s["level1"][f"kmeans_k{s['level1_descriptors']}_ninit10"]["all"]
            margins.append({"seed": s["seed"], "nmi": round(ours["nmi"] - km["nmi"], 4), "ari": round(ours["ari"] - km["ari"], 4)})
        summary["level1_ours_minus_kmeans_equal_k"] = margins
        summary["target_kmeans_plus_0.03_every_seed"] = all(m["nmi"] >= 0.03 and m["ari"] >= 0.03 for m in margins)
        # A variant (--set ... --tag T) is its own profile, "<profile>+<T>", beside the default's.
        res["profiles"][profile + (f"+{tag}" if tag else "")] = {"summary": summary, "per_seed": per_seed, "sets": list(extra)}
    return res


def _rows(labels: list[str], row: dict, ids: list[str]) -> list[str]:
    return [labels[row[i]] for i in ids]


def print_row(catalog: str, profile: str, seed: int, e: dict) -> None:
    a = e["level1"]["ours"]["all"]
    k = e["level1"][f"kmeans_k{e['level1_descriptors']}_ninit10"]["all"]
    c = e["level1"][f"consensus_kmeans_k{e['level1_descriptors']}_no_agents"]["all"]
    l2 = e["level2"]
    k2 = l2[f"kmeans_k{e['level2_groups_used']}_ninit10"]["all"]
    na = e["names_alone_embedding_judge"]
    print(
        f"{catalog:10s} {profile:9s} s{seed} L1={e['level1_descriptors']:>2} | ours {a['nmi']:.3f}/{a['ari']:.3f} "
        f"KMeans10 {k['nmi']:.3f}/{k['ari']:.3f} consensus {c['nmi']:.3f}/{c['ari']:.3f} | L2 ours "
        f"{l2['ours']['all']['nmi']:.3f}/{l2['ours']['all']['ari']:.3f} KMeans {k2['nmi']:.3f}/{k2['ari']:.3f} | names-alone "
        + " ".join(f"L{lv} {v['accuracy']:.2f}" for lv, v in na.items())
        + " | category-name hit " + " ".join(f"L{lv} {v['hit']:.2f}" for lv, v in e.get("names_vs_category_names", {}).items()),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=list(CATALOGS), choices=CATALOGS)
    ap.add_argument("--profiles", nargs="+", default=["offline"], choices=sorted(PROFILES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--fresh", action="store_true", help="rebuild run folders that exist")
    ap.add_argument("--no-bertopic", action="store_true")
    ap.add_argument("--llm-judge", action="store_true", help="also the local LLM as name judge (200 items, levels 1-2)")
    ap.add_argument("--set", action="append", default=[], help="extra config override for every run")
    ap.add_argument("--tag", default="", help="suffix of the run folders (bench/runs/align/<catalog>_<profile>_<tag>_s<seed>), "
                                              "required with --set so a variant never reuses another's runs")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "taxonomy_alignment.json"))
    ap.add_argument("--prune-only", action="store_true", help="only drop profiles of an older layout (and --drop) from --out")
    ap.add_argument("--drop", action="append", default=[], help="a profile key to remove from --out (e.g. a variant "
                                                                "that became the default)")
    args = ap.parse_args()
    if args.set and not args.tag:
        ap.error("--set changes the runs: give them their own folders with --tag")
    t0 = time.monotonic()
    path = Path(args.out)
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    out = {
        "command": command_line(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared: timings are noisy)",
        "protocol": {
            "reference": "Amazon categories from the dataset's category path; every labelled item counted, no outliers dropped",
            "spread": "mean ± sample standard deviation over seeds",
            "embeddings": RunConfig().embedding.model,
            "baselines": "KMeans (n_init=10), consensus KMeans without agents, BERTopic 0.17 (UMAP random_state=seed; default "
            "HDBSCAN and KMeans(k, n_init=10) as cluster model), all on the same embeddings of the same texts",
        },
        "catalogs": {k: v for k, v in old.get("catalogs", {}).items() if k in CATALOGS},
    }
    # Profiles kept from earlier runs must have this script's layout (older files scored level 1 only).
    for cat in out["catalogs"].values():
        cat["profiles"] = {k: v for k, v in cat.get("profiles", {}).items()
                           if k not in args.drop and all("level1" in s for s in v.get("per_seed", []))}
    if args.prune_only:
        write_result(path, {**old, "catalogs": out["catalogs"]})
        print(f"pruned {path}")
        return
    commit = provenance()["git_commit"]
    for name in args.catalogs:
        res = analyse(name, args.profiles, args.seeds, args.fresh, not args.no_bertopic, args.set, args.tag, args.llm_judge)
        for prof in res["profiles"].values():
            prof["command"], prof["date"] = out["command"], out["date"]
            prof["git_commit"] = commit
        kept = out["catalogs"].get(name, {}).get("profiles", {})
        res["profiles"] = {**{k: v for k, v in kept.items() if k not in res["profiles"]}, **res["profiles"]}
        out["catalogs"][name] = res
    out["seconds_last_run"] = round(time.monotonic() - t0, 1)
    write_result(path, out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
