"""Shared by the build benchmarks: run `agentictagger build` as a user would, then summarise."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from agentictagger.vocab.summary import build_summary, names_of_first_levels  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402


def run_build(run_dir: Path, catalog: str, sets: list[str], fresh: bool) -> float:
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [str(REPO / ".venv" / "bin" / "agentictagger"), "build", "--catalog", catalog, "--run-dir", str(run_dir)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env)
    return time.monotonic() - t0


def summarise(run_dir: Path, wall_s: float, command: str) -> dict:
    summary = build_summary(run_dir)
    vocab = Vocabulary.load(run_dir / "vocabulary.json")
    usage = summary.pop("usage")
    stages = usage.get("stages", {})
    total = usage.get("total", {})
    return {
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work: timings are noisy)",
        "wall_seconds": round(wall_s, 1),
        "llm_calls": total.get("calls", 0),
        "llm_tokens": {"prompt": total.get("prompt_tokens", 0), "completion": total.get("completion_tokens", 0)},
        "llm_stages": stages,
        "embedding": usage.get("embedding"),
        **summary,
        "first_two_levels": names_of_first_levels(vocab, 2),
    }


def print_table(res: dict) -> None:
    print(f"\n{res['build_items']} items, {res['vocabulary_size']} descriptors, depth {res['depth']}, "
          f"{res['wall_seconds']} s, {res['llm_calls']} LLM calls")
    print(f"{'level':>5} {'jobs':>5} {'descr':>6} {'cov(jobs)':>10} {'tagged':>8}")
    for lv, row in res["coverage_by_level"].items():
        print(f"{lv:>5} {row['jobs']:>5} {row['descriptors']:>6} {row['coverage_in_jobs']:>10.1%} "
              f"{row['share_of_all_items_tagged']:>8.1%}")
    ref = res["refinement"]
    if ref.get("jobs_refined"):
        print(f"refinement: {ref['jobs_refined']} jobs, coverage {ref['mean_first']:.3f} -> {ref['mean_last']:.3f} "
              f"(mean change {ref['mean_change']:+.3f}, Wilcoxon p={ref.get('wilcoxon_p_greater', float('nan')):.2g})")


def write(res: dict, name: str) -> Path:
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, res)
    print(f"wrote {out}")
    return out
