"""How long the offline build of a ~12k-title catalog takes on this machine, beside plain KMeans.

The whole Amazon 2014 Beauty catalog (12,101 items, titles), the offline default profile
(embedding grouping, key-phrase names, name-judging annotator), the embedding cache warm with the
item texts (a fresh cache folder, filled by one timed pass over the titles first, so the figure is
the build, not the encoder). Each repeat builds into a fresh run folder with `agentictagger build`,
as a user would; wall time from the command's start to its exit. The first repeat is a first build
(the definitions' trial sentences are embedded then); later repeats find those cached too. The
builds run with the machine's defaults (``OMP_NUM_THREADS`` unset: encoding uses every core). Beside it, the first thing a user would try: scikit-learn KMeans with k = the build's
level-1 size and n_init = 10 on the same embeddings (one level only, no names), timed in this
process with one BLAS thread per core.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/build_speed.py [--repeats 3] [--set build.grouping.restarts=10 ...]

writes bench/results/build_speed.json and prints a short table. The machine is shared with other
work when it runs: the JSON records the load average before each repeat.
"""

from __future__ import annotations

import argparse
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


def build_once(run_dir: Path, cache: Path, sets: list[str]) -> float:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [str(REPO / ".venv" / "bin" / "agentictagger"), "build", "--catalog", "shared:beauty", "--run-dir", str(run_dir),
           "--set", f"cache_dir={cache}", "--set", "seed=0", *(x for kv in sets for x in ("--set", kv))]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update({"OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="extra config override for the build (recorded)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "build_speed.json"))
    a = ap.parse_args()
    base = REPO / "bench" / "runs" / "build_speed"
    cache = base / "cache"  # holds the item texts only when the first repeat starts
    if cache.exists():
        shutil.rmtree(cache)
    cat = load_shared("beauty")
    cfg = RunConfig()
    from agentictagger.embed import Embedder

    t0 = time.monotonic()
    emb = Embedder(cfg.embedding, cache_dir=str(cache)).encode(cat.texts)  # warms the cache
    warm_s = time.monotonic() - t0

    rows = []
    for r in range(a.repeats):
        load = os.getloadavg()[0]
        wall = build_once(base / f"r{r}", cache, a.set)
        s = build_summary(base / f"r{r}")
        rows.append({"repeat": r, "wall_s": round(wall, 1), "load_avg_1min_before": round(load, 2),
                     "descriptors": s["vocabulary_size"], "depth": s["depth"],
                     "level1": (s["coverage_by_level"].get("1") or s["coverage_by_level"].get(1) or {}).get("descriptors")})
        print(f"build {r}: {wall:.1f} s (load {load:.2f}), {s['vocabulary_size']} descriptors, depth {s['depth']}")

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
        "what": "offline build of the whole Beauty catalog (12,101 titles) with the embedding cache warm, wall time of "
                "`agentictagger build` per repeat (fresh run folder), beside scikit-learn KMeans(k = our level-1 size, "
                "n_init = 10) on the same embeddings (one flat level, no names, no tree)",
        "items": len(cat),
        "sets": a.set,
        "machine": f"{os.cpu_count()} cores, shared with other work (load average recorded per repeat)",
        "embedding_pass_s_item_texts": round(warm_s, 1),
        "encoding_threads_in_builds": len(os.sched_getaffinity(0)),  # the default with OMP_NUM_THREADS unset
        "target_s": TARGET_S,
        "first_build_s": walls[0],
        "first_build_under_target": walls[0] < TARGET_S,
        "builds": rows,
        "build_wall_s": {"mean": round(statistics.mean(walls), 1), "sd": round(statistics.stdev(walls), 1) if len(walls) > 1 else 0.0,
                         "max": max(walls)},
        "under_target_every_repeat": all(w < TARGET_S for w in walls),
        "kmeans_k": k,
        "kmeans_wall_s": km,
    }
    write_result(a.out, res)
    print(f"\nbuild (tree, names, {rows[0]['descriptors']} descriptors): {res['build_wall_s']['mean']:.1f} ± "
          f"{res['build_wall_s']['sd']:.1f} s, max {max(walls):.1f} s (target {TARGET_S:.0f} s) | KMeans k={k}: "
          f"{statistics.mean(km):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
