"""Does our level 1 agree with human categories better than plain clustering? (issue #8)

For each profile (offline; local LLM) and seed, build and assign with the CLI as a user would,
then score the *assigned* level 1 of every labelled Scientific item against the Amazon level-2
categories (NMI / ARI / purity, no outliers dropped). Beside it, in the same run and on the same
embeddings (same text, same model, same cache): KMeans with k = our level-1 count and k = 25, and
BERTopic 0.17.4 (bench-only dependency) with default settings and with ``nr_topics`` = our
level-1 count, each over the same seeds. Also: seed-to-seed ARI of our level 1 vs KMeans's own at
the same k, build-time coverage per level (what the annotators accepted, before assignment forces
every item somewhere), name-quality figures for Scientific and all-Beauty level 1-2, the full
level-1 lists and 20 random full paths with item titles.

Honesty notes written into the JSON:
* Design choices of the offline architect (fine clusters per descriptor, prototype weight,
  outlier z, Ward merging) were made looking only at the *development half* of Scientific (items
  whose crc32(item_id) is even). Scores are reported on all labelled items and on the held-out
  half separately. The annotator acceptance rule is label-free (spread of each group's own items).
* Beauty has no category labels: it contributes name quality, coverage and cost only.

  nice python bench/taxonomy_alignment.py                       # offline, 3 seeds, both catalogs
  nice python bench/taxonomy_alignment.py --profiles offline local-llm --llm-seeds 0 1 2

writes bench/results/taxonomy_alignment.json and prints a short table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import random
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

from agentictagger.assign.base import Assignment  # noqa: E402
from agentictagger.catalog import load_shared, shared_data_root  # noqa: E402
from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.vocab.quality import name_identifiability, name_quality, partition_scores  # noqa: E402
from agentictagger.vocab.summary import coverage_by_level, load_jobs  # noqa: E402
from agentictagger.vocabulary import Vocabulary  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

PROFILES: dict[str, list[str]] = {
    "offline": [],
    # The local LLM (Qwen2.5-Coder-1.5B-Instruct, assembled by `make local-llm`) names the level-1
    # groups (one call each); deeper levels keep key-phrase names, so a build costs ~15 calls and
    # fits this 2-core machine for 3 seeds. Grouping stays in embedding space either way.
    "local-llm": [
        "build.naming.kind=llm",
        "build.naming.max_level=1",
        "llms.namer.backend=local",
        "llms.namer.model_path=qwen2.5-coder-1.5b-instruct",
        "llms.namer.n_threads=2",
    ],
    # The same with LLM names on levels 1 and 2 (~135 calls on Scientific).
    "local-llm-l2": [
        "build.naming.kind=llm",
        "build.naming.max_level=2",
        "llms.namer.backend=local",
        "llms.namer.model_path=qwen2.5-coder-1.5b-instruct",
        "llms.namer.n_threads=2",
    ],
}
CATALOGS = {"scientific": "scientific", "beauty": "beauty"}


def cli(*args: str) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    t0 = time.monotonic()
    subprocess.run([str(REPO / ".venv" / "bin" / "agentictagger"), *args], check=True, env=env)
    return time.monotonic() - t0


def run_profile(catalog: str, profile: str, seed: int, fresh: bool, extra: list[str], tag: str = "") -> dict:
    run_dir = REPO / "bench" / "runs" / "align" / f"{catalog}_{profile}{'_' + tag if tag else ''}_s{seed}"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    path = str(shared_data_root(None, catalog) / catalog / "items.jsonl.gz")
    sets = [f"seed={seed}", *PROFILES[profile], *extra]
    flags = [x for s in sets for x in ("--set", s)]
    done = (run_dir / "assignments.jsonl").exists() and (run_dir / "vocabulary.json").exists()
    build_s = assign_s = None
    if not done:
        build_s = cli("build", "--catalog", path, "--run-dir", str(run_dir), *flags)
        assign_s = cli("assign", "--catalog", path, "--run-dir", str(run_dir), *flags)
    return {"run_dir": str(run_dir.relative_to(REPO)), "sets": sets, "build_seconds": build_s, "assign_seconds": assign_s}


def level1(paths: dict, ids: list[str]) -> list[str]:
    return [paths[i][0] if paths.get(i) else "(none)" for i in ids]


def usage_of(run_dir: Path) -> dict:
    p = run_dir / "usage.json"
    if not p.exists():
        return {}
    u = json.loads(p.read_text())
    t = u.get("total", {})
    return {
        "llm_calls": t.get("calls", 0),
        "cache_hits": t.get("cache_hits", 0),
        "prompt_tokens": t.get("prompt_tokens", 0),
        "completion_tokens": t.get("completion_tokens", 0),
        "stages": {k: v.get("calls", 0) for k, v in u.get("stages", {}).items()},
    }


def mean_sd(xs: list[float]) -> dict:
    a = np.asarray(xs, dtype=float)
    return {"mean": round(float(a.mean()), 4), "sd": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4), "values": [round(float(x), 4) for x in a]}


def pairwise_ari(parts: list[list[str]]) -> list[float]:
    from sklearn.metrics import adjusted_rand_score

    return [round(float(adjusted_rand_score(a, b)), 4) for a, b in itertools.combinations(parts, 2)]


def bertopic_labels(texts: list[str], emb: np.ndarray, seed: int, nr_topics: int | None) -> list[str]:
    from bertopic import BERTopic
    from umap import UMAP

    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    model = BERTopic(umap_model=umap_model, nr_topics=nr_topics, calculate_probabilities=False)
    topics, _ = model.fit_transform(texts, embeddings=emb)
    return [str(t) for t in topics]  # -1 (outliers) counts as one more group: no item dropped


def sample_paths(vocab: Vocabulary, paths: dict, catalog, k: int = 20, seed: int = 0) -> list[dict]:
    ids = sorted(paths)
    rng = random.Random(seed)
    out = []
    for i in rng.sample(ids, min(k, len(ids))):
        title = str(catalog.by_id(i).fields.get("title") or catalog.by_id(i).text)[:110]
        out.append({"item_id": i, "title": title, "path": " > ".join(vocab[d].name for d in paths[i])})
    return out


def analyse_catalog(name: str, profiles: list[str], seeds: dict[str, list[int]], fresh: bool, bertopic: bool, extra: list[str],
                    tag: str = "") -> dict:
    from sklearn.cluster import KMeans

    from agentictagger.embed import Embedder

    catalog = load_shared(name)
    ids = catalog.ids
    labels = {it.item_id: it.label for it in catalog if it.label}
    lab_ids = [i for i in ids if i in labels]
    gold = [labels[i] for i in lab_ids]
    heldout = [crc % 2 == 1 for crc in (zlib.crc32(i.encode()) for i in lab_ids)]
    res: dict = {"catalog": name, "items": len(ids), "labelled_items": len(lab_ids), "profiles": {}}
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    # The vectors every build of this catalog used (same text, model and cache), for the baselines.
    emb = embedder.encode(catalog.texts)
    row_of = {i: r for r, i in enumerate(ids)}
    lab_rows = [row_of[i] for i in lab_ids]
    for profile in profiles:
        per_seed = []
        parts = []
        for seed in seeds[profile]:
            info = run_profile(name, profile, seed, fresh, extra, tag)
            run_dir = REPO / info["run_dir"]
            vocab = Vocabulary.load(run_dir / "vocabulary.json")
            assigned = Assignment.load_jsonl(run_dir / "assignments.jsonl").paths
            l1 = level1(assigned, ids)
            parts.append(l1)
            jobs = load_jobs(run_dir)
            entry = {
                **info,
                "level1_descriptors": len(vocab.level(1)),
                "descriptors": len(vocab),
                "depth": vocab.depth,
                "build_coverage_by_level": coverage_by_level(jobs, len(ids)),
                "usage": usage_of(run_dir),
                "architect_meta": {k: vocab.meta.get(k) for k in ("architect", "annotator", "architect_steps_by_kind", "fallbacks") if k in vocab.meta},
                "name_quality": name_quality(vocab, (1, 2)),
            }
            paths_list = [assigned.get(i, []) for i in ids]
            entry["names_alone_identify_groups"] = name_identifiability(vocab, emb, paths_list, embedder.encode, (1, 2))
            if labels:
                pred = [l1[row_of[i]] for i in lab_ids]
                entry["alignment_all"] = partition_scores(pred, gold)
                entry["alignment_heldout_half"] = partition_scores(
                    [p for p, h in zip(pred, heldout) if h], [g for g, h in zip(gold, heldout) if h]
                )
                k_ours = entry["level1_descriptors"]
                km = {}
                for k in sorted({k_ours, 25}):
                    p = KMeans(n_clusters=k, random_state=seed, n_init="auto").fit_predict(emb)[lab_rows]
                    km[f"k={k}"] = {
                        "all": partition_scores(p, gold),
                        "heldout_half": partition_scores([a for a, h in zip(p, heldout) if h], [g for g, h in zip(gold, heldout) if h]),
                    }
                entry["kmeans"] = km
                if bertopic:
                    bt = {}
                    for label, nr in (("default", None), (f"nr_topics={k_ours}", k_ours)):
                        t0 = time.monotonic()
                        p_all = bertopic_labels(catalog.texts, emb, seed, nr)
                        p = [p_all[r] for r in lab_rows]
                        bt[label] = {"all": partition_scores(p, gold), "seconds": round(time.monotonic() - t0, 1)}
                    entry["bertopic"] = bt
            entry["level1_list"] = [
                {"name": d.name, "definition": d.definition, "items": d.item_count, "named_by": d.named_by}
                for d in vocab.children("root")
            ]
            entry["sample_paths"] = sample_paths(vocab, assigned, catalog, 20, seed)
            per_seed.append({"seed": seed, **entry})
            print_row(name, profile, seed, entry)
        summary: dict = {"seeds": [s["seed"] for s in per_seed]}
        summary["level1_descriptors"] = [s["level1_descriptors"] for s in per_seed]
        summary["seed_stability_pairwise_ari"] = pairwise_ari(parts)
        if labels:
            for key in ("nmi", "ari", "purity"):
                summary[f"ours_{key}"] = mean_sd([s["alignment_all"][key] for s in per_seed])
                summary[f"ours_heldout_{key}"] = mean_sd([s["alignment_heldout_half"][key] for s in per_seed])
            k_med = int(np.median(summary["level1_descriptors"]))
            km_parts = [
                [str(v) for v in KMeans(n_clusters=k_med, random_state=s, n_init="auto").fit_predict(emb)] for s in summary["seeds"]
            ]
            summary["kmeans_seed_stability_pairwise_ari"] = {"k": k_med, "values": pairwise_ari(km_parts)}
            wins = []
            for s in per_seed:
                kk = s["kmeans"][f"k={s['level1_descriptors']}"]["all"]
                wins.append(
                    {
                        "seed": s["seed"],
                        "nmi_ours_minus_kmeans": round(s["alignment_all"]["nmi"] - kk["nmi"], 4),
                        "ari_ours_minus_kmeans": round(s["alignment_all"]["ari"] - kk["ari"], 4),
                    }
                )
            summary["vs_kmeans_equal_k"] = wins
            summary["beats_kmeans_every_seed_nmi_and_ari"] = all(
                w["nmi_ours_minus_kmeans"] >= 0 and w["ari_ours_minus_kmeans"] >= 0 for w in wins
            )
        res["profiles"][profile] = {"summary": summary, "per_seed": per_seed}
    return res


def print_row(catalog: str, profile: str, seed: int, e: dict) -> None:
    cov = e["build_coverage_by_level"].get("1", {}).get("coverage_in_jobs")
    line = f"{catalog:10s} {profile:9s} s{seed} L1={e['level1_descriptors']:>2} build-cov L1={cov}"
    if "alignment_all" in e:
        a = e["alignment_all"]
        k = e["kmeans"][f"k={e['level1_descriptors']}"]["all"]
        line += f" | ours NMI {a['nmi']:.3f} ARI {a['ari']:.3f} pur {a['purity']:.3f} | KMeans NMI {k['nmi']:.3f} ARI {k['ari']:.3f}"
        if "bertopic" in e:
            b = e["bertopic"]
            line += " | BERTopic " + " ".join(f"{n}: {v['all']['nmi']:.3f}/{v['all']['ari']:.3f}" for n, v in b.items())
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "beauty"], choices=sorted(CATALOGS))
    ap.add_argument("--profiles", nargs="+", default=["offline"], choices=sorted(PROFILES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--llm-seeds", nargs="+", type=int, default=None, help="seeds of the local-LLM profile (default: --seeds)")
    ap.add_argument("--fresh", action="store_true", help="rebuild run folders that exist")
    ap.add_argument("--no-bertopic", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="extra config override for every run")
    ap.add_argument("--tag", default="", help="suffix of the run folders (bench/runs/align/<catalog>_<profile>_<tag>_s<seed>), "
                                              "required with --set so a variant never reuses another's runs")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "taxonomy_alignment.json"))
    args = ap.parse_args()
    if args.set and not args.tag:
        ap.error("--set changes the runs: give them their own folders with --tag")
    seeds = {p: (args.llm_seeds if p == "local-llm" and args.llm_seeds else args.seeds) for p in args.profiles}
    t0 = time.monotonic()
    out = {
        "command": "python bench/taxonomy_alignment.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared: timings are noisy)",
        "protocol": {
            "reference": "Amazon level-2 category (Scientific); every labelled item counted, no outliers dropped",
            "development_half": "offline-architect settings were chosen on items with crc32(item_id) even; "
            "alignment_heldout_half scores only the other half",
            "annotator_acceptance": "label-free: an item fits its nearest prototype unless its similarity is more than "
            "build.annotator.outlier_z standard deviations below the mean of the items that chose it",
            "embeddings": RunConfig().embedding.model,
            "baselines": "KMeans (sklearn defaults, n_init='auto') and BERTopic 0.17.4 (UMAP random_state=seed) on the same "
            "embeddings of the same texts",
        },
        "catalogs": {},
    }
    path = Path(args.out)
    # Profiles run at different times (the LLM profile is slow): results of other profiles already
    # in the file are kept, each with the command and date that produced it.
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for name in args.catalogs:
        res = analyse_catalog(name, args.profiles, seeds, args.fresh, not args.no_bertopic, args.set, args.tag)
        for prof in res["profiles"].values():
            prof["command"], prof["date"] = out["command"], out["date"]
        kept = old.get("catalogs", {}).get(name, {}).get("profiles", {})
        res["profiles"] = {**{k: v for k, v in kept.items() if k not in res["profiles"]}, **res["profiles"]}
        old.setdefault("catalogs", {})[name] = res
    out["catalogs"] = {**old.get("catalogs", {})}
    out["seconds_last_run"] = round(time.monotonic() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_result(path, out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
