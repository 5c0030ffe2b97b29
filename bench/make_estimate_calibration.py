"""Write src/agentictagger/data/estimate_calibration.json, the per-item and per-call figures
`agentictagger estimate` ships with, from committed benchmark results:

* ``per_item`` (embedding and assignment throughput, LLM-assigner tokens and calls per item):
  ``bench/results/scale.json`` (``bench/scale.py``), copied as is with its sources;
* ``build`` (tokens per call of the LLM architect and annotator, and of the LLM namer per named
  group): ``bench/results/build_llm_embedded.json`` (``llm_stages``) and
  ``bench/results/llm_profile_e2e.json`` (the Scientific first run: its namer calls).

Run from the repository root after any of those benchmarks changes:
``python bench/make_estimate_calibration.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "src" / "agentictagger" / "data" / "estimate_calibration.json"


def per_call(stage: dict) -> dict:
    calls = stage["calls"] - stage.get("cache_hits", 0)
    return {
        "prompt": round(stage["prompt_tokens"] / calls, 1),
        "cached_prompt": round(stage.get("cached_prompt_tokens", 0) / calls, 1),
        "completion": round(stage["completion_tokens"] / calls, 1),
    }


def main() -> None:
    scale = json.loads((RESULTS / "scale.json").read_text(encoding="utf-8"))
    build = json.loads((RESULTS / "build_llm_embedded.json").read_text(encoding="utf-8"))
    e2e = json.loads((RESULTS / "llm_profile_e2e.json").read_text(encoding="utf-8"))
    sci = e2e["catalogs"]["scientific"]["first_run"]
    groups = sum(sci["names_by_level"]["1"].values())  # level-1 groups the namer was asked about
    demo = json.loads((RESULTS / "demo_timing.json").read_text(encoding="utf-8"))
    demo_groups = sum(sum(demo["names_by_level"][str(lv)].values()) for lv in range(1, demo["llm_levels"] + 1))
    demo_usage = demo["llm_usage"]
    out = {
        "generated_by": "bench/make_estimate_calibration.py",
        "per_item": scale["per_item"],
        "sources": {k: f"bench/results/scale.json: {v}" for k, v in scale["sources"].items()},
        "machine": scale.get("machine"),
        "build": {
            "architect_tokens_per_call": per_call(build["llm_stages"]["architect"]),
            "annotator_tokens_per_call": per_call(build["llm_stages"]["annotator"]),
            "namer_tokens_per_group": {
                "prompt": round(sci["prompt_tokens"] / groups, 1),
                "cached_prompt": 0.0,
                "completion": round(sci["completion_tokens"] / groups, 1),
            },
            # naming.definitions: keyphrase (the demo's setting): the LLM writes names only.
            "namer_tokens_per_group_names_only": {
                "prompt": round(demo_usage["prompt_tokens"] / demo_groups, 1),
                "cached_prompt": round(demo_usage.get("cached_prompt_tokens", 0) / demo_groups, 1),
                "completion": round(demo_usage["completion_tokens"] / demo_groups, 1),
            },
        },
        "build_sources": {
            "architect_tokens_per_call": "bench/results/build_llm_embedded.json: llm_stages.architect "
            f"({build['agents']}; {build['dataset']})",
            "annotator_tokens_per_call": "bench/results/build_llm_embedded.json: llm_stages.annotator (one item per call)",
            "namer_tokens_per_group": "bench/results/llm_profile_e2e.json: catalogs.scientific.first_run "
            f"(prompt and completion tokens over its {groups} level-1 groups, re-asks included)",
            "namer_tokens_per_group_names_only": "bench/results/demo_timing.json: llm_usage over the "
            f"{demo_groups} groups of levels 1-{demo['llm_levels']} (names only, re-asks included"
            + ("" if "cached_prompt_tokens" in demo_usage else "; prompt tokens the server had cached not recorded, counted as read")
            + ")",
        },
    }
    write_result(OUT, out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
