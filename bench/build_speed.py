"""How long the offline build of a ~12k-title catalog takes on this machine, beside plain KMeans.

The whole Amazon 2014 Beauty catalog (12,101 items, titles), the offline default profile
(embedding grouping, key-phrase names, name-judging annotator), the embedding cache warm with the
item texts (a fresh cache folder, filled by one timed pass over the titles first, so the figure is
the build, not the encoder). Each repeat is a **first build**: it starts from its own copy of that
cache (only the item texts), so the key phrases, descriptor texts and the definitions' trial
sentences are embedded in every repeat, as in a user's first build of the catalog; it builds into
a fresh run folder with `agentictagger build`, as a user would; wall time from the command's start
to its exit. Then one **rebuild** (the same command again, the last repeat's cache now holding
every text) shows what a user's second build with the same settings takes. The builds run with
the machine's defaults (``OMP_NUM_THREADS`` unset: encoding uses every core). Beside it, the first
thing a user would try: scikit-learn KMeans with k = the build's level-1 size and n_init = 10 on
the same embeddings (one level only, no names), timed in this process with one BLAS thread per
core, once per repeat (seeds 0..). With ``--baseline-rev REV`` the same first builds are also run
with the package source of git revision REV (the code before a change), interleaved with this
checkout's and alternating which goes first, so both see the same machine: wall times on a shared
2-core virtual machine drift by tens of percent between runs of the same build. With
``--baseline-set KEY=VALUE`` (repeatable) the baseline is this checkout with those overrides in
place of ``--set`` (e.g. ``--set embedding.padding=bucket --baseline-set embedding.padding=batch``);
the item-text cache then holds the items as both settings encode them.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/build_speed.py [--repeats 3] [--baseline-rev REV | --baseline-set K=V ...] [--set build.grouping.restarts=10 ...]

writes bench/results/build_speed.json and prints a short table. The machine is shared with other
work when it runs: the JSON records the load average before each build.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _provenance import write_result  # noqa: E402

from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.vocab.summary import build_summary  # noqa: E402

TARGET_S = 120.0


def build_once(run_dir: Path, cache: Path, sets: list[str], src: Path | None = None) -> float:
    """Wall time of one `agentictagger build`; ``src``: the package's source folder to run instead
    of this checkout's (the baseline revision's)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [str(REPO / ".venv" / "bin" / "agentictagger"), "build", "--catalog", "shared:beauty", "--run-dir", str(run_dir),
           "--set", f"cache_dir={cache}", "--set", "seed=0", *(x for kv in sets for x in ("--set", kv))]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update({"OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if src is not None:
        env["PYTHONPATH"] = str(src)  # ahead of the editable install's path
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="extra config override for the build (recorded)")
    ap.add_argument("--baseline-rev", default="",
                    help="also time first builds with the source of this git revision, interleaved with this "
                         "checkout's (the same machine state for both)")
    ap.add_argument("--baseline-set", action="append", default=[],
                    help="also time first builds of this checkout with these config overrides in place of --set "
                         "(e.g. the default of a setting --set changes), interleaved with the others")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "build_speed.json"))
    a = ap.parse_args()
    base = REPO / "bench" / "runs" / "build_speed"
    items_cache = base / "cache_items"  # the item texts only: every first build starts from a copy
    if base.exists():
        shutil.rmtree(base)
    cat = load_shared("beauty")
    if a.baseline_rev and a.baseline_set:
        ap.error("give --baseline-rev or --baseline-set, not both")
    from agentictagger.embed import Embedder

    t0 = time.monotonic()
    # Warms the cache with the item texts as the builds encode them (their embedding settings).
    emb = Embedder(RunConfig.load(overrides=a.set).embedding, cache_dir=str(items_cache)).encode(cat.texts)
    warm_s = time.monotonic() - t0
    if a.baseline_set:
        Embedder(RunConfig.load(overrides=a.baseline_set).embedding, cache_dir=str(items_cache)).encode(cat.texts)

    baseline_src = None
    if a.baseline_rev:
        rev = subprocess.run(["git", "rev-parse", a.baseline_rev], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
        (base / "baseline").mkdir(parents=True)
        tar = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base / "baseline")], input=tar, check=True)
        baseline_src = base / "baseline" / "src"

    def timed(name: str, cache: Path, src: Path | None = None, sets: list[str] | None = None) -> dict:
        load = os.getloadavg()[0]
        wall = build_once(base / name, cache, a.set if sets is None else sets, src)
        s = build_summary(base / name)
        row = {"build": name, "wall_s": round(wall, 1), "load_avg_1min_before": round(load, 2),
               "descriptors": s["vocabulary_size"], "depth": s["depth"],
               "level1": (s["coverage_by_level"].get("1") or s["coverage_by_level"].get(1) or {}).get("descriptors"),
               "vocabulary_sha256": hashlib.sha256((base / name / "vocabulary.json").read_bytes()).hexdigest()[:16]}
        print(f"{name}: {wall:.1f} s (load {load:.2f}), {s['vocabulary_size']} descriptors, depth {s['depth']}")
        return row

    rows, base_rows = [], []
    for r in range(a.repeats):
        # With a baseline, the two alternate which goes first, so a drift in the machine's speed
        # falls on both.
        order = ["this", "baseline"] if baseline_src is not None or a.baseline_set else ["this"]
        for who in order if r % 2 == 0 else order[::-1]:
            cache = base / f"cache_{who}_r{r}"
            shutil.copytree(items_cache, cache)
            if who == "this":
                rows.append(timed(f"first{r}", cache))
            else:
                base_rows.append(timed(f"baseline_first{r}", cache, baseline_src, a.baseline_set or None))
    rebuild = timed("rebuild", base / f"cache_this_r{a.repeats - 1}")

    import numpy as np
    from sklearn.cluster import KMeans

    k = rows[0]["level1"] or 15
    km = []
    for r in range(a.repeats):
        t0 = time.monotonic()
        KMeans(n_clusters=k, n_init=10, random_state=r).fit(np.asarray(emb, dtype=np.float32))
        km.append(round(time.monotonic() - t0, 1))
        print(f"KMeans k={k} n_init=10, seed {r}: {km[-1]:.1f} s")

    walls = [x["wall_s"] for x in rows]
    res = {
        "what": "offline build of the whole Beauty catalog (12,101 titles) with the embedding cache warm with the item "
                "texts, wall time of `agentictagger build` into a fresh run folder: first builds (each from its own copy "
                "of the item-text cache, so everything the build embeds besides the items is embedded in each), then one "
                "rebuild with every text cached; beside scikit-learn KMeans(k = our level-1 size, n_init = 10) on the "
                "same embeddings (one flat level, no names, no tree)",
        "items": len(cat),
        "sets": a.set,
        "machine": f"{os.cpu_count()} cores, shared with other work (load average recorded per build)",
        "embedding_pass_s_item_texts": round(warm_s, 1),
        "encoding_threads_in_builds": len(os.sched_getaffinity(0)),  # the default with OMP_NUM_THREADS unset
        "target_s": TARGET_S,
        "first_builds": rows,
        "first_build_wall_s": {"mean": round(statistics.mean(walls), 1),
                               "sd": round(statistics.stdev(walls), 1) if len(walls) > 1 else 0.0,
                               "min": min(walls), "max": max(walls)},
        "first_build_under_target_every_repeat": all(w < TARGET_S for w in walls),
        "rebuild": rebuild,
        "rebuild_under_target": rebuild["wall_s"] < TARGET_S,
        "same_vocabulary_every_build": len({x["vocabulary_sha256"] for x in [*rows, rebuild]}) == 1,
        "kmeans_k": k,
        "kmeans_wall_s": km,
    }
    if base_rows:
        bw = [x["wall_s"] for x in base_rows]
        res["baseline"] = {
            "rev": rev if a.baseline_rev else "this checkout",
            "sets": a.baseline_set,
            "first_builds": base_rows,
            "first_build_wall_s": {"mean": round(statistics.mean(bw), 1), "sd": round(statistics.stdev(bw), 1) if len(bw) > 1 else 0.0,
                                   "min": min(bw), "max": max(bw)},
            "same_vocabulary_as_this": {x["vocabulary_sha256"] for x in base_rows} == {x["vocabulary_sha256"] for x in rows},
            "this_minus_baseline_s_per_repeat": [round(t - b, 1) for t, b in zip(walls, bw)],
        }
    write_result(a.out, res)
    f = res["first_build_wall_s"]
    print(f"\nfirst build (tree, names, {rows[0]['descriptors']} descriptors): {f['mean']:.1f} ± {f['sd']:.1f} s, "
          f"max {f['max']:.1f} s (target {TARGET_S:.0f} s) | rebuild {rebuild['wall_s']:.1f} s | KMeans k={k}: "
          f"{statistics.mean(km):.1f} s")
    if base_rows:
        b = res["baseline"]["first_build_wall_s"]
        print(f"baseline {(rev[:8] if a.baseline_rev else ' '.join(a.baseline_set))} first build: {b['mean']:.1f} ± {b['sd']:.1f} s (same vocabulary: "
              f"{res['baseline']['same_vocabulary_as_this']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
