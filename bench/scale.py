"""Scale benchmark: the per-item costs `agentictagger estimate` reads (bench/results/scale.json).

Measured here:
* ``embedding_texts_per_s_per_core``: all-MiniLM-L6-v2, 1 torch thread, on ``--embed-sample``
  real Beauty titles (cache off), texts/s of wall time and of process CPU time.
* per size in ``--sizes`` (default 10^4): the sharded assignment (agentictagger.run.shards) of a
  synthetic catalog derived from the real Beauty titles (title + " #k", ids unique) into the
  built Beauty vocabulary (bench/runs/align/beauty_offline_s0), in a fresh subprocess each, for
  each executor in ``--executors`` (local: 1 core; ray with each worker count of ``--ray-cpus``):
  items/s and peak RSS of the driver, of the largest worker and of the whole process tree (Ray's
  own processes included), sampled from /proc every 0.25 s. Vectors: the title's real embedding
  plus small seeded noise (precomputed, standing in for the encoder, stated in the JSON), so the
  figure is the assigner's and the shards' cost. ``scale.merge_max_items`` is 0 (``--merge-max-items``):
  only the shards are written, the streaming path whose memory should not grow with N.
* ``--llm-throughput``: LLM assignment of a 10^4-item catalog (one call per item, the Beauty
  level-1 descriptors as choices) through the OpenAI-compatible backend against the scripted local
  server of tests/fake_openai_server.py answering after ``--llm-latency-s``, with a client-side
  rate limit: items/s for each (executor, workers, max_concurrency) of ``--llm-configs``, and the
  server's request count (each distinct request paid once).
* ``llm_tokens_per_item``: from the committed bench/results/assign_beauty.json
  (``throughput_llm``: one level-1 LLM-assigner call per item, with and without prefix reuse),
  and ``llm_calls_per_item``: the mean path length of the full Beauty catalog's assignment there
  (one call per level; deeper levels have fewer choices, so an upper bound on tokens).

Usage: python bench/scale.py [--sizes 10000 100000 1000000] [--executors local ray] [--ray-cpus 1 2]
       python bench/scale.py --llm-throughput [--llm-items 10000] [--llm-latency-s 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

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


class TreeRSS:
    """Peak resident memory of this process and of every process below it (Ray's raylet and
    workers are descendants of a driver that started Ray locally), sampled from /proc."""

    def __init__(self, every_s: float = 0.25) -> None:
        import threading

        self.every_s, self.peak_total_kb, self.peak_worker_kb = every_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _tree(root: int) -> list[int]:
        kids: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d))
        out, todo = [], [root]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    @staticmethod
    def _status_kb(pid: int, field: str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def sample(self) -> None:
        me = os.getpid()
        pids = self._tree(me)
        self.peak_total_kb = max(self.peak_total_kb, sum(self._status_kb(p, "VmRSS") for p in pids))
        others = [self._status_kb(p, "VmHWM") for p in pids if p != me]
        self.peak_worker_kb = max([self.peak_worker_kb, *others])

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> "TreeRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()


def _child(args: argparse.Namespace) -> None:
    """One measured run (in its own process, so peak RSS is this run's)."""
    import numpy as np

    from agentictagger.config import RunConfig
    from agentictagger.run.shards import assign_sharded

    base = dict(np.load(args.base, allow_pickle=True)["pairs"].tolist())
    overrides = [f"run_dir={args.run_dir}", f"cache_dir={args.run_dir}/cache", "catalog.text_template='{title}'",
                 f"scale.shard_size={args.shard_size}", f"scale.executor={args.executor}", "assign.max_empty_share=1",
                 "embedding.cache=false", f"scale.merge_max_items={args.merge_max_items}"]
    if args.executor == "ray":
        overrides.append(f"scale.num_cpus={args.workers}")
    cfg = RunConfig.load(None, overrides)
    with TreeRSS() as tree:
        t0 = time.perf_counter()
        out = assign_sharded(cfg, args.catalog, embedder=NoisyTitleVectors(base))
        wall = time.perf_counter() - t0
        tree.sample()
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    rss_kb = tree._status_kb(os.getpid(), "VmHWM")
    print(json.dumps({"items": out.items, "shards": out.shards, "seconds": round(wall, 2), "items_per_s": round(out.items / wall, 1),
                      "peak_rss_mb": round(rss_kb / 1024, 1), "peak_rss_worker_mb": round(tree.peak_worker_kb / 1024, 1),
                      "peak_rss_tree_mb": round(tree.peak_total_kb / 1024, 1), "merged_outputs": out.merged}))


def _llm_child(args: argparse.Namespace) -> None:
    """One LLM-assignment run against the scripted server at ``args.server``."""
    from agentictagger.config import RunConfig
    from agentictagger.run.shards import assign_sharded

    llm = dict(backend="openai", model="fake-model", base_url=args.server, api_key_env="AGENTICTAGGER_BENCH_KEY_UNSET",
               structured_output="prompt", max_retries=2, backoff_base_s=0.01, max_concurrency=args.concurrency,
               requests_per_minute=args.rpm)
    overrides = [f"run_dir={args.run_dir}", f"cache_dir={args.run_dir}/cache", "catalog.text_template='{title}'",
                 f"scale.shard_size={args.shard_size}", f"scale.executor={args.executor}", "assign.assigner=llm",
                 "scale.merge_max_items=0", *[f"llms.default.{k}={v}" for k, v in llm.items()]]
    if args.executor == "ray":
        overrides.append(f"scale.num_cpus={args.workers}")
    cfg = RunConfig.load(None, overrides)
    t0 = time.perf_counter()
    out = assign_sharded(cfg, args.catalog)
    wall = time.perf_counter() - t0
    usage = json.loads((Path(args.run_dir) / "assign_usage.json").read_text())["total"]
    print(json.dumps({"items": out.items, "shards": out.shards, "empty_paths": out.empty_paths, "seconds": round(wall, 2),
                      "items_per_s": round(out.items / wall, 1), "usage_calls": usage.get("calls"),
                      "usage_answered": usage.get("answered"), "usage_cache_hits": usage.get("cache_hits")}))


def write_catalog(path: Path, titles: list[str], n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for k in range(n):
            fh.write(json.dumps({"item_id": f"s{k}", "title": f"{titles[k % len(titles)]} #{k}"}) + "\n")


def _run_child(cmd: list[str], what: str) -> dict:
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode != 0:
        sys.exit(f"run {what} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _stamp(row: dict) -> dict:
    return {**row, "measured_at": time.strftime("%Y-%m-%d %H:%M"), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def llm_throughput(args: argparse.Namespace, work: Path, titles: list[str], old: dict | None = None) -> dict:
    """Items/s of LLM assignment for each configuration (``executor:workers:concurrency[:rpm]``),
    against one scripted server; runs of other configurations in ``old`` (same items and latency) are kept."""
    import hashlib

    sys.path.insert(0, str(REPO / "tests"))
    from fake_openai_server import FakeOpenAIServer, Reply, last_user_message

    from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary

    full = Vocabulary.load(VOCAB)
    names = [(d.name, d.definition or d.name) for d in full.children(ROOT_ID)]
    cat = work / f"llm_catalog_{args.llm_items}.jsonl"
    write_catalog(cat, titles, args.llm_items)

    def answer(body: dict) -> Reply:
        item = last_user_message(body).rsplit("Item:\n", 1)[-1]
        k = int(hashlib.md5(item.encode()).hexdigest()[:8], 16) % len(names)
        return Reply(content=names[k][0], delay_s=args.llm_latency_s)

    prev = old if old and old.get("items") == args.llm_items and old.get("latency_s") == args.llm_latency_s else {}
    rows = {}
    for r in prev.get("runs", []):  # rows written before per-run rates existed: the run's one rate
        r.setdefault("config", f"{r['executor']}:{r['workers']}:{r['max_concurrency_per_worker']}")
        r.setdefault("requests_per_minute", prev["requests_per_minute"])
        r.setdefault("rate_limit_items_per_s", prev["rate_limit_items_per_s"])
        rows[r["config"]] = r
    with FakeOpenAIServer(handler=answer) as server:
        for conf in args.llm_configs:
            ex, workers, conc, *rest = conf.split(":")
            rpm = float(rest[0]) if rest else args.llm_rpm
            run_dir = work / f"llm_run_{conf.replace(':', '_')}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            v = Vocabulary()
            v.add_children(ROOT_ID, names)
            v.save(run_dir / "vocabulary.json")
            before, server.max_concurrent = server.request_count, 0
            cmd = [sys.executable, __file__, "--llm-child", "--server", server.url, "--catalog", str(cat), "--run-dir", str(run_dir),
                   "--executor", ex, "--workers", workers, "--concurrency", conc, "--rpm", str(rpm),
                   "--shard-size", str(args.llm_shard_size)]
            row = _run_child(cmd, f"llm {conf}")
            row.update({"config": conf, "executor": ex, "workers": int(workers), "max_concurrency_per_worker": int(conc),
                        "requests_per_minute": rpm, "rate_limit_items_per_s": round(rpm / 60, 1),
                        "in_flight_max": int(workers) * int(conc), "server_requests": server.request_count - before,
                        "server_max_concurrent": server.max_concurrent})
            rows[conf] = _stamp(row)
            print("llm", conf, row, flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    return {"items": args.llm_items, "latency_s": args.llm_latency_s, "requests_per_minute": args.llm_rpm,
            "rate_limit_items_per_s": round(args.llm_rpm / 60, 1), "shard_size": args.llm_shard_size,
            "choices": len(names), "runs": list(rows.values()),
            "server": "tests/fake_openai_server.py in the benchmark's process (ThreadingHTTPServer), each answer after "
                      "the latency; one call per item (a one-level vocabulary of the Beauty level-1 descriptors)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000])
    ap.add_argument("--executors", nargs="+", default=["local"], choices=["local", "ray"])
    ap.add_argument("--ray-cpus", type=int, nargs="+", default=[2], help="Ray worker counts to measure")
    ap.add_argument("--shard-size", type=int, default=5_000)
    ap.add_argument("--merge-max-items", type=int, default=0, help="scale.merge_max_items of the measured runs")
    ap.add_argument("--embed-sample", type=int, default=1_000)
    ap.add_argument("--skip-embedding", action="store_true", help="keep the committed embedding figure")
    ap.add_argument("--llm-throughput", action="store_true")
    ap.add_argument("--llm-items", type=int, default=10_000)
    ap.add_argument("--llm-latency-s", type=float, default=0.1)
    ap.add_argument("--llm-rpm", type=float, default=18_000.0, help="client-side rate limit (all workers together)")
    ap.add_argument("--llm-shard-size", type=int, default=1_000)
    ap.add_argument("--llm-configs", nargs="+", default=["local:1:4", "local:1:16", "ray:1:16", "ray:2:16", "ray:2:64"],
                    help="executor:workers:max_concurrency[:requests_per_minute] (default rate: --llm-rpm)")
    ap.add_argument("--note", default=None, help="machine note stored in the JSON (e.g. what else ran)")
    ap.add_argument("--work", default="bench/runs/scale")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--results-md", default="bench/RESULTS.md", help="rewrite this file's scale section ('' = do not)")
    ap.add_argument("--render-only", action="store_true")
    for hidden in ("--child", "--llm-child"):
        ap.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--base", "--catalog", "--run-dir", "--server"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--executor", default="local", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=4, help=argparse.SUPPRESS)
    ap.add_argument("--rpm", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    if args.llm_child:
        _llm_child(args)
        return
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    if args.render_only:
        if args.note:
            old.setdefault("machine", {})["note"] = args.note
            write_result(args.out, old)
        if args.results_md:
            render(old, Path(args.results_md))
        return

    import numpy as np

    work = REPO / args.work
    work.mkdir(parents=True, exist_ok=True)
    all_titles = list(dict.fromkeys(beauty_titles()))
    titles = all_titles[: max(args.sizes + [args.llm_items])]
    embedding = old.get("embedding") if args.skip_embedding and old.get("embedding") else measure_embedding(all_titles, args.embed_sample)
    runs = dict(old.get("assign_runs") or {})
    if args.sizes:
        # The base vectors of every title (cached across runs of this script).
        base_file = work / "title_vectors.npz"
        if not base_file.exists():
            from agentictagger.config import EmbeddingConfig
            from agentictagger.embed import Embedder

            vecs = Embedder(EmbeddingConfig(num_threads=1), cache_dir=REPO / ".cache/agentictagger").encode(titles)
            np.savez(base_file, pairs=np.array(list(zip(titles, list(vecs))), dtype=object))
    for n in args.sizes:
        cat = work / f"catalog_{n}.jsonl"
        if not cat.exists():
            write_catalog(cat, titles, n)
        for ex, workers in [(e, w) for e in args.executors for w in (args.ray_cpus if e == "ray" else [1])]:
            key = (f"{n}_local" if ex == "local" else f"{n}_ray_w{workers}") + ("_merged" if n <= args.merge_max_items else "")
            run_dir = work / f"run_{key}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            shutil.copy(VOCAB, run_dir / "vocabulary.json")
            side = VOCAB.with_name("vocabulary.prototypes.npz")
            if side.exists():
                shutil.copy(side, run_dir / side.name)
            cmd = [sys.executable, __file__, "--child", "--base", str(base_file), "--catalog", str(cat), "--run-dir", str(run_dir),
                   "--executor", ex, "--workers", str(workers), "--shard-size", str(args.shard_size),
                   "--merge-max-items", str(args.merge_max_items)]
            row = _run_child(cmd, key)
            row.update({"executor": ex, "workers": workers, "shard_size": args.shard_size,
                        "merge_max_items": args.merge_max_items})
            runs[key] = _stamp(row)
            runs.pop(f"{n}_ray", None)  # the older single-key layout
            print(key, runs[key], flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    llm = llm_throughput(args, work, titles, old.get("llm_throughput")) if args.llm_throughput else old.get("llm_throughput")

    ab = json.loads((REPO / "bench/results/assign_beauty.json").read_text())
    tl = ab["throughput_llm"]
    depth = ab["full_catalog"]["diagnostics"]["depth_distribution"]
    mean_depth = sum(int(k) * v for k, v in depth.items()) / sum(depth.values())

    def toks(d: dict) -> dict:
        return {"prompt": d["prompt_tokens_per_item"], "cached_prompt": d["cached_prompt_tokens_per_item"],
                "completion": d["completion_or_choice_tokens_per_item"]}

    local = {int(k.split("_")[0]): v for k, v in runs.items() if v["executor"] == "local" and not v.get("merged_outputs")}
    largest = max(local)
    ratios = {}
    for n, loc in sorted(local.items()):
        for k, v in runs.items():
            if v["executor"] == "ray" and int(k.split("_")[0]) == n and not v.get("merged_outputs"):
                ratios[k] = {"ray_over_local": round(v["items_per_s"] / loc["items_per_s"], 3),
                             "ray_over_local_per_core": round(v["items_per_s"] / (v["workers"] * loc["items_per_s"]), 3)}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": args.note or old.get("machine", {}).get("note", "")},
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
        "assign_runs": dict(sorted(runs.items(), key=lambda kv: (int(kv[0].split("_")[0]), kv[0]))),
        "ray_ratios": ratios,
        "sizes_measured": sorted({int(k.split("_")[0]) for k in runs}),
        "llm_throughput": llm,
    }
    write_result(args.out, result)
    print(f"wrote {args.out}")
    if args.results_md:
        render(result, Path(args.results_md))


def render(res: dict, md: Path) -> None:
    """Rewrite the scale section of RESULTS.md (between its markers) from the JSON."""
    runs, ratios = res.get("assign_runs", {}), res.get("ray_ratios", {})
    lines = ["<!-- scale:start -->",
             "## Scale — `bench/scale.py` (`bench/results/scale.json`)", "",
             f"Machine: {res['machine']['cpus']} cores. {res['machine'].get('note', '')}".rstrip(), "",
             "Sharded assignment of synthetic catalogs (Beauty titles + \" #k\", unique ids) by the embedding assigner "
             "into the built Beauty vocabulary (`bench/runs/align/beauty_offline_s0`), shards of "
             f"{next(iter(runs.values()), {}).get('shard_size', '?')} items, only the shards written "
             "(`scale.merge_max_items=0`) except in rows marked *merged* (the single-file outputs too, as the default "
             "does for catalogs up to 2M items). Vectors are precomputed (each title's real MiniLM embedding + seeded noise, "
             "sigma 0.05), so the rates are the shards' and the assigner's cost, not the encoder's (MiniLM: "
             f"{res['per_item']['embedding_texts_per_s_per_core']} texts/s on one thread). RSS: the driver's peak "
             "(VmHWM), the largest Ray worker's peak (VmHWM) and the peak sum over the whole process tree "
             "(Ray's GCS and raylet included), sampled from /proc every 0.25 s.", "",
             "| items | executor | workers | seconds | items/s | Ray/local (per core) | peak RSS driver / worker / tree (MB) |",
             "|---|---|---|---|---|---|---|"]
    for k, r in runs.items():
        rat = ratios.get(k)
        rs = f"{rat['ray_over_local']} ({rat['ray_over_local_per_core']})" if rat else ""
        lines.append(f"| {r['items']:,} | {r['executor']}{' (merged)' if r.get('merged_outputs') else ''} | {r['workers']} | {r['seconds']} | {r['items_per_s']:,} | {rs} | "
                     f"{r.get('peak_rss_mb', '')} / {r.get('peak_rss_worker_mb') if r['executor'] == 'ray' else '—'} / "
                     f"{r.get('peak_rss_tree_mb', '—')} |")
    llm = res.get("llm_throughput")
    if llm:
        lines += ["", f"LLM assignment through the OpenAI-compatible backend, {llm['items']:,} items, one call per item "
                      f"({llm['choices']} choices), scripted server (in the benchmark's process) answering after "
                      f"{llm['latency_s']} s, a client-side rate limit per row (all workers together), shards of "
                      f"{llm['shard_size']:,}; every run starts with an empty cache. Seconds include starting Ray.", "",
                  "| executor | workers | concurrency per worker | in flight (max) | rate limit (items/s) | seconds | items/s | "
                  "server requests | paid calls (usage) | cache hits |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in llm["runs"]:
            lines.append(f"| {r['executor']} | {r['workers']} | {r['max_concurrency_per_worker']} | {r['in_flight_max']} | "
                         f"{r.get('rate_limit_items_per_s', llm['rate_limit_items_per_s'])} | {r['seconds']} | {r['items_per_s']} | {r['server_requests']:,} | {r['usage_answered']:,} | "
                         f"{r['usage_cache_hits']} |")
    lines.append("<!-- scale:end -->")
    text = md.read_text() if md.exists() else "# Benchmark results\n"
    block = "\n".join(lines)
    if "<!-- scale:start -->" in text:
        a, rest = text.split("<!-- scale:start -->", 1)
        text = a + block + rest.split("<!-- scale:end -->", 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    md.write_text(text)


if __name__ == "__main__":
    main()
