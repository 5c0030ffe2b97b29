"""Embedding speed on one CPU thread, and the cost of a full cache hit.

Writes bench/results/embed_speed.json. Run from the repo root:
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_embed.py
Every figure comes from real shared-data texts: the scientific catalog (long texts: title, brand,
description) and the beauty catalog (12,101 short titles). The cache lives in a fresh temporary
folder, so the cold pass really encodes everything.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentictagger.catalog import load_shared
from agentictagger.config import EmbeddingConfig
from agentictagger.embed import Embedder, _load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402


def main() -> None:
    out = Path(__file__).parent / "results" / "embed_speed.json"
    cfg = EmbeddingConfig(num_threads=1)
    sci = load_shared("scientific").texts
    beauty = load_shared("beauty").texts
    res: dict = {
        "model": cfg.model,
        "num_threads": cfg.num_threads,
        "batch_size": cfg.batch_size,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "note": "shared 2-core machine with other jobs running: wall-clock rates are lower bounds; "
        "texts_per_cpu_s (process CPU time) is the less load-sensitive figure",
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        emb = Embedder(cfg, cache_dir=tmp)
        _load_model(emb.model_path, cfg.device)
        res["model_load_s"] = round(time.perf_counter() - t, 2)

        # Cold encode of long texts (scientific: title + brand + description up to 600 chars).
        n_sci = 256
        t, c = time.perf_counter(), time.process_time()
        emb.encode(sci[:n_sci])
        dt, dc = time.perf_counter() - t, time.process_time() - c
        res["scientific_cold"] = {"texts": n_sci, "seconds": round(dt, 2), "texts_per_s": round(n_sci / dt, 1),
                                  "cpu_seconds": round(dc, 2), "texts_per_cpu_s": round(n_sci / dc, 1),
                                  "mean_chars": round(statistics.mean(map(len, sci[:n_sci])))}

        # Cold encode of all beauty titles, then the same 12k texts again from a fresh Embedder.
        t, c = time.perf_counter(), time.process_time()
        emb.encode(beauty)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        n_unique = len(set(beauty))
        res["beauty_cold"] = {"texts": len(beauty), "unique": n_unique, "seconds": round(dt, 2),
                              "texts_per_s": round(n_unique / dt, 1), "cpu_seconds": round(dc, 2),
                              "texts_per_cpu_s": round(n_unique / dc, 1),
                              "mean_chars": round(statistics.mean(map(len, beauty)))}
        hits = []
        for _ in range(3):
            fresh = Embedder(cfg, cache_dir=tmp)
            t = time.perf_counter()
            v = fresh.encode(beauty)
            hits.append(time.perf_counter() - t)
            assert fresh.stats["encoded"] == 0 and v.shape == (len(beauty), fresh.dim)
        res["beauty_cache_hit"] = {"texts": len(beauty), "seconds_each_run": [round(h, 3) for h in hits],
                                   "median_s": round(statistics.median(hits), 3),
                                   "cache_file_mb": round(fresh.cache.path.stat().st_size / 2**20, 1)}
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, res, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
