"""Scale benchmark: the per-item costs `agentictagger estimate` reads (bench/results/scale.json).

Measured here:
* ``embedding_texts_per_s_per_core``: all-MiniLM-L6-v2, 1 torch thread, on ``--embed-sample``
  real Beauty titles (cache off), texts/s of wall time and of process CPU time.
* per size in ``--sizes`` (default 10^4): the sharded assignment (agentictagger.shards) of a
  synthetic catalog derived from the real Beauty titles (title + " #k", ids unique) into the
  built Beauty vocabulary (bench/runs/align/beauty_offline_s0), in a fresh subprocess each, for
  each executor in ``--executors`` (local; ray with ``--ray-cpus`` workers): items/s and peak RSS.
  Vectors: the title's real embedding plus small seeded noise (precomputed, standing in for the
  encoder, stated in the JSON), so the figure is the assigner's and the shards' cost.
* ``llm_tokens_per_item``: from the committed bench/results/assign_beauty.json
  (``throughput_llm``: one level-1 LLM-assigner call per item, with and without prefix reuse),
  and ``llm_calls_per_item``: the mean path length of the full Beauty catalog's assignment there
  (one call per level; deeper levels have fewer choices, so an upper bound on tokens).

Usage: python bench/scale.py [--sizes 10000 100000 1000000] [--executors local ray]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "scale.json"
VOCAB = REPO / "bench" / "runs" / "align" / "beauty_offline_s0" / "vocabulary.json"


def beauty_titles() -> list[str]:
    from agentictagger.catalog import load_shared

    return load_shared("beauty").texts


def measure_embedding(titles: list[str], n: int) -> dict:
    from agentictagger.config import EmbeddingConfig
    from agentictagger.embed import Embedder

    emb = Embedder(EmbeddingConfig(cache=False, num_threads=1))
    emb.encode(titles[:64])  # load the model
    sample = titles[64 : 64 + n]
    c0, t0 = time.process_time(), time.perf_counter()
    emb.encode(sample)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"texts": len(sample), "seconds": round(wall, 2), "texts_per_s": round(len(sample) / wall, 1),
            "cpu_seconds": round(cpu, 2), "texts_per_cpu_s": round(len(sample) / cpu, 1), "num_threads": 1}


class NoisyTitleVectors:
    """The real embedding of a synthetic item's source title plus seeded noise (unit norm)."""

    def __init__(self, base: dict, sigma: float = 0.05) -> None:
        self.base, self.sigma = base, sigma

    def encode(self, texts):
        import hashlib

        import numpy as np

        out = []
        for t in texts:
            title, _, k = t.rpartition(" #")
            v = self.base.get(title)
            if v is None:  # a descriptor text: a seeded random direction
                v = np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).standard_normal(384)
            rng = np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16))
            x = np.asarray(v, np.float32) + self.sigma * rng.standard_normal(len(v)).astype(np.float32)
            out.append(x / np.linalg.norm(x))
        return np.stack(out).astype(np.float32)


def _child(args: argparse.Namespace) -> None:
    """One measured run (in its own process, so peak RSS is this run's)."""
    import numpy as np

    from agentictagger.config import RunConfig
    from agentictagger.shards import assign_sharded

    base = dict(np.load(args.base, allow_pickle=True)["pairs"].tolist())
    overrides = [f"run_dir={args.run_dir}", f"cache_dir={args.run_dir}/cache", "catalog.text_template='{title}'",
                 f"scale.shard_size={args.shard_size}", f"scale.executor={args.executor}", "assign.max_empty_share=1",
                 "embedding.cache=false"]
    if args.executor == "ray":
        overrides.append(f"scale.num_cpus={args.ray_cpus}")
    cfg = RunConfig.load(None, overrides)
    t0 = time.perf_counter()
    out = assign_sharded(cfg, args.catalog, embedder=NoisyTitleVectors(base))
    wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"items": out.items, "shards": out.shards, "seconds": round(wall, 2), "items_per_s": round(out.items / wall, 1),
                      "peak_rss_mb": round(rss_kb / 1024, 1), "peak_rss_children_mb": round(kids_kb / 1024, 1)}))


def write_catalog(path: Path, titles: list[str], n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for k in range(n):
            fh.write(json.dumps({"item_id": f"s{k}", "title": f"{titles[k % len(titles)]} #{k}"}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--executors", nargs="+", default=["local"], choices=["local", "ray"])
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=5_000)
    ap.add_argument("--embed-sample", type=int, default=1_000)
    ap.add_argument("--work", default="bench/runs/scale")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--catalog", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--executor", default="local", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    import numpy as np

    work = REPO / args.work
    work.mkdir(parents=True, exist_ok=True)
    titles = list(dict.fromkeys(beauty_titles()))[: max(args.sizes)]
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    embedding = measure_embedding(list(dict.fromkeys(beauty_titles())), args.embed_sample)
    # The base vectors of every title (cached across runs of this script).
    base_file = work / "title_vectors.npz"
    if not base_file.exists():
        from agentictagger.config import EmbeddingConfig
        from agentictagger.embed import Embedder

        vecs = Embedder(EmbeddingConfig(num_threads=1), cache_dir=REPO / ".cache/agentictagger").encode(titles)
        np.savez(base_file, pairs=np.array(list(zip(titles, list(vecs))), dtype=object))
    runs = dict(old.get("assign_runs") or {})
    for n in args.sizes:
        cat = work / f"catalog_{n}.jsonl"
        if not cat.exists():
            write_catalog(cat, titles, n)
        for ex in args.executors:
            run_dir = work / f"run_{n}_{ex}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            shutil.copy(VOCAB, run_dir / "vocabulary.json")
            side = VOCAB.with_name("vocabulary.prototypes.npz")
            if side.exists():
                shutil.copy(side, run_dir / side.name)
            cmd = [sys.executable, __file__, "--child", "--base", str(base_file), "--catalog", str(cat), "--run-dir", str(run_dir),
                   "--executor", ex, "--ray-cpus", str(args.ray_cpus), "--shard-size", str(args.shard_size)]
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if res.returncode != 0:
                sys.exit(f"run {n} {ex} failed:\n{res.stderr[-3000:]}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row.update({"executor": ex, "workers": args.ray_cpus if ex == "ray" else 1, "shard_size": args.shard_size,
                        "measured_at": time.strftime("%Y-%m-%d %H:%M"), "loadavg": [round(x, 2) for x in os.getloadavg()]})
            runs[f"{n}_{ex}"] = row
            print(n, ex, row, flush=True)
            shutil.rmtree(run_dir / "shards", ignore_errors=True)

    ab = json.loads((REPO / "bench/results/assign_beauty.json").read_text())
    tl = ab["throughput_llm"]
    depth = ab["full_catalog"]["diagnostics"]["depth_distribution"]
    mean_depth = sum(int(k) * v for k, v in depth.items()) / sum(depth.values())

    def toks(d: dict) -> dict:
        return {"prompt": d["prompt_tokens_per_item"], "cached_prompt": d["cached_prompt_tokens_per_item"],
                "completion": d["completion_or_choice_tokens_per_item"]}

    local = {int(k.split("_")[0]): v for k, v in runs.items() if v["executor"] == "local"}
    largest = max(local)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "note":
                    "a shared 2-core machine with another benchmark running: rates are lower bounds"},
        "per_item": {
            "embedding_texts_per_s_per_core": embedding["texts_per_s"],
            "embedding_assigner_items_per_s": local[largest]["items_per_s"],
            "llm_tokens_per_item": {"with_prefix_caching": toks(tl["with_prefix_reuse"]),
                                    "without_prefix_caching": toks(tl["without_prefix_reuse"])},
            "llm_calls_per_item": round(mean_depth, 3),
        },
        "sources": {
            "embedding_texts_per_s_per_core": f"measured here: embedding (all-MiniLM-L6-v2, {embedding['texts']} Beauty titles, 1 thread, cache off)",
            "embedding_assigner_items_per_s": f"measured here: assign_runs['{largest}_local'] (sharded embedding assigner, "
                                              "precomputed vectors = real title embedding + noise sigma 0.05, 1 core)",
            "llm_tokens_per_item": "bench/results/assign_beauty.json: throughput_llm.{with,without}_prefix_reuse "
                                   f"(level-1 call, {tl['descriptors_at_level']} choices, {tl['items']} items, embedded backend)",
            "llm_calls_per_item": "bench/results/assign_beauty.json: full_catalog.diagnostics.depth_distribution (mean path length)",
        },
        "embedding": embedding,
        "assign_runs": runs,
        "sizes_measured": sorted({int(k.split("_")[0]) for k in runs}),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
