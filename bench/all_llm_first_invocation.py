"""Adds to ``bench/results/all_llm_profile.json`` the cold costs of an earlier, stopped invocation
whose response and embedding caches the reported run reused.

The 1,000-item all-LLM run (``--refine-steps 0``) took the architect's answers and the first
annotator answers from the cache of a stopped invocation with one refinement step (same items,
same prompts): the reported run counts those as cache hits. This script reads that invocation's
run folder (its ``timings.json`` and the usage logs of its builds) and writes what it paid under
``first_invocation``, with the all-LLM build's total (this invocation plus the stopped one's paid
answers). The result's provenance stays the bench's own; the block names this command.

  python bench/all_llm_first_invocation.py [--prior n1000_s0_d1_r1] [--out bench/results/all_llm_profile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from agentictagger.files import atomic_write_text  # noqa: E402
from _provenance import command_line  # noqa: E402


def paid_by_stage(usage_log: Path) -> dict:
    """Per stage of a usage log: answers paid, their tokens, and the wall time from the stage's
    first record to its last (requests of one stage run back to back)."""
    out: dict = {}
    times: dict = {}
    for line in usage_log.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        s = out.setdefault(r.get("stage", "?"), {"answers": 0, "prompt_tokens": 0, "completion_tokens": 0})
        s["answers"] += int(bool(r.get("answered")))
        s["prompt_tokens"] += int(r.get("prompt_tokens", 0))
        s["completion_tokens"] += int(r.get("completion_tokens", 0))
        times.setdefault(r.get("stage", "?"), []).append(float(r["t"]))
    for stage, ts in times.items():
        out[stage]["wall_s"] = round(max(ts) - min(ts), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", default="n1000_s0_d1_r1", help="the stopped invocation's run folder under bench/runs/all_llm")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "all_llm_profile.json"))
    args = ap.parse_args()
    prior = REPO / "bench" / "runs" / "all_llm" / args.prior
    res = json.loads(Path(args.out).read_text(encoding="utf-8"))
    timings = json.loads((prior / "timings.json").read_text(encoding="utf-8"))
    local_usage = json.loads((prior / "local-llm" / "usage.json").read_text(encoding="utf-8")).get("total", {})
    paid = paid_by_stage(prior / "all-llm" / "usage.jsonl")
    arch, ann = paid.get("architect", {}), paid.get("annotator", {})
    here = res["profiles"]["all-llm"]
    here_usage = here["build_usage"]
    build_s = here["wall_seconds"]["build"]["seconds"]
    res["first_invocation"] = {
        "what": f"A stopped invocation (bench/runs/all_llm/{args.prior}: same items and prompts, one refinement "
        "step, the code of commit bd7ed8f) paid for answers that this run took from the response cache it left (its caches were copied into "
        "this run's folder). Its cold costs:",
        "command": command_line(),
        "offline_build_s": sum(timings["offline"]["build"]),
        "offline_assign_all_embedding_s": sum(timings["offline"]["assign_all_embedding"]),
        "local_llm_build_s": sum(timings["local-llm"]["build"]),
        "local_llm_build_calls": local_usage.get("answered", 0),
        "local_llm_build_tokens": {"prompt": local_usage.get("prompt_tokens", 0), "completion": local_usage.get("completion_tokens", 0)},
        "all_llm_paid_before_stop": {"architect": arch, "annotator": ann},
        "all_llm_build_total": {
            "wall_s_approx": round(build_s + arch.get("wall_s", 0) + ann.get("wall_s", 0), 1),
            "llm_answers_paid": here_usage["answered"] + arch.get("answers", 0) + ann.get("answers", 0),
            "prompt_tokens": here_usage["prompt_tokens"] + arch.get("prompt_tokens", 0) + ann.get("prompt_tokens", 0),
            "completion_tokens": here_usage["completion_tokens"] + arch.get("completion_tokens", 0) + ann.get("completion_tokens", 0),
            "note": "this run's build plus the stopped invocation's paid answers; no answer was paid twice (this run's "
            "cache hits are those answers, and one item text that repeats another's)",
        },
    }
    atomic_write_text(args.out, json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(res["first_invocation"], indent=1))


if __name__ == "__main__":
    main()
