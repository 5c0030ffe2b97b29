"""How long `agentictagger demo` takes, and who named what, on a machine that starts cold.

Runs the demo as a new user would after `make demo`'s install step (`.venv` and the local model
in place), in an empty working folder: no embedding cache, no LLM response cache, no run folder.
Records the wall time of the command, the LLM calls and tokens it paid for (from the run's usage
log) and, per level, how many names the LLM gave and how many fell back to key phrases, with the
level 1-3 names themselves.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/demo_timing.py [--llm-levels 3]

writes bench/results/demo_timing.json and prints a short table. Nothing else should run on the
machine meanwhile: the JSON records the load average before the command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _provenance import write_result  # noqa: E402

TARGET_S = 360.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llm-levels", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "demo_timing.json"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="demo_timing_") as work:
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [str(REPO / ".venv" / "bin" / "agentictagger"), "demo", "--run-dir", "runs/demo", "--llm-levels", str(a.llm_levels)]
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, cwd=work, env=env, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        run = Path(work) / "runs" / "demo"
        vocab = json.loads((run / "vocabulary.json").read_text())
        usage = json.loads((run / "usage.json").read_text())
    meta = vocab.get("meta", {})
    descs = vocab["descriptors"]
    names = {str(lv): [{"name": d["name"], "named_by": d.get("named_by"), "items_path": d["id"]} for d in descs if d["level"] == lv]
             for lv in range(1, a.llm_levels + 1)}
    total = usage.get("total", {})
    result = {
        "what": "`agentictagger demo` (local-LLM profile, the shipped 304-item sample catalog) from an empty working folder: "
                "no embedding, LLM or run cache; the model and .venv installed",
        "llm_levels": a.llm_levels,
        "wall_s": round(wall, 1),
        "target_s": TARGET_S,
        "under_target": wall <= TARGET_S,
        "load_avg_1min_before": round(load, 2),
        "machine": f"{os.cpu_count()} cores, no GPU",
        "descriptors": len(descs),
        "names_by_level": meta.get("names_by_level"),
        "llm_usage": {k: total[k] for k in ("calls", "answered", "reasks", "failures", "prompt_tokens", "cached_prompt_tokens", "completion_tokens", "wall_s")
                      if k in total},
        "names": names,
    }
    write_result(a.out, result)
    by = meta.get("names_by_level") or {}
    print(f"demo: {wall:.0f} s (target {TARGET_S:.0f} s), {len(descs)} descriptors; LLM calls {total.get('calls')}, "
          f"tokens {total.get('prompt_tokens')} + {total.get('completion_tokens')}")
    for lv in sorted(by, key=int)[: a.llm_levels]:
        print(f"  level {lv}: {by[lv]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
