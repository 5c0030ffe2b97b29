"""Why the local LLM's names fall back to key phrases: which name rules turn its answers down.

Rebuilds the local-llm profile of bench/taxonomy_alignment.py (Qwen2.5-Coder-1.5B names levels
1-3; seed 0 by default) into bench/runs/fallbacks/, with the same settings and the shared caches:
the answers the alignment run paid for are served from the LLM response cache, so an identical
build makes no new call (the calls and cache hits are reported). Each descriptor whose LLM name
was turned down after the re-ask carries the reasons in ``naming_problems`` (vocabulary.json);
this counts them per level by rule (``name_rules.problem_rule``), lists every fallback with the
LLM's last rejected answer (and counts those whose key-phrase name is that answer), and says whether the vocabulary is the alignment run's (same names,
same tree), so the counts describe that run's names.

  python bench/llm_fallbacks.py [--catalogs scientific office] [--seed 0]

writes bench/results/llm_fallbacks.json and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import CATALOGS, PROFILES, cli  # noqa: E402

from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402
from agentictagger.vocab.name_rules import name_key, problem_rule  # noqa: E402
from agentictagger.vocab.quality import fallbacks_by_rule  # noqa: E402


def rejected_name(problems: list[str]) -> str:
    """The LLM's last answer, as the first reason quotes it ("" when none does)."""
    for p in problems:
        m = re.match(r"""^(['"])(.*?)\1 """, p)
        if m:
            return m.group(2)
    return ""


def tree(vocab: Vocabulary) -> list[tuple[str, ...]]:
    return sorted(tuple(x.name for x in vocab.path_to(d.id)) for d in vocab)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=list(CATALOGS), choices=CATALOGS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "llm_fallbacks.json"))
    args = ap.parse_args()
    out: dict = {"command": command_line(), "profile": "local-llm", "sets": PROFILES["local-llm"], "runs": {}}
    for name in args.catalogs:
        run = REPO / "bench" / "runs" / "fallbacks" / f"{name}_local-llm_s{args.seed}"
        if run.exists():
            shutil.rmtree(run)
        sets = [f"seed={args.seed}", *PROFILES["local-llm"]]
        t0 = time.monotonic()
        cli("build", "--catalog", f"shared:{name}", "--run-dir", str(run), *(x for s in sets for x in ("--set", s)))
        seconds = round(time.monotonic() - t0, 1)
        vocab = Vocabulary.load(run / "vocabulary.json")
        usage = json.loads((run / "usage.json").read_text()).get("total", {}) if (run / "usage.json").exists() else {}
        aligned = REPO / "bench" / "runs" / "align" / f"{name}_local-llm_s{args.seed}" / "vocabulary.json"
        same = tree(vocab) == tree(Vocabulary.load(aligned)) if aligned.exists() else None
        levels: dict[str, dict] = {}
        for level in (1, 2, 3):
            descs = vocab.level(level)
            falls = [d for d in descs if d.named_by == "keyphrase-fallback"]
            levels[str(level)] = {
                "descriptors": len(descs),
                "named_by_llm": sum(d.named_by == "llm" for d in descs),
                "fallbacks": len(falls),
                "fallbacks_without_reasons": sum(not d.naming_problems for d in falls),
                # The key-phrase name is the LLM's turned-down answer (the same words, lemmatised).
                "fallback_is_the_llm_answer": sum(name_key(d.name) == name_key(rejected_name(d.naming_problems)) for d in falls),
                "by_rule": fallbacks_by_rule(falls),
                "fallbacks_list": [
                    {"path": " > ".join(x.name for x in vocab.path_to(d.id)), "llm_answer": rejected_name(d.naming_problems),
                     "rules": sorted({problem_rule(p) for p in d.naming_problems}), "reasons": d.naming_problems}
                    for d in falls
                ],
            }
        out["runs"][name] = {
            "run_dir": str(run.relative_to(REPO)),
            "build_seconds": seconds,
            "llm_calls": usage.get("calls", 0),
            "llm_cache_hits": usage.get("cache_hits", 0),
            "same_vocabulary_as_alignment_run": same,
            "alignment_run": str(aligned.parent.relative_to(REPO)),
            "levels": levels,
        }
    write_result(args.out, out)
    print(f"{'catalog':<11} {'level':>5} {'llm':>5} {'fallback':>8}  by rule")
    for name, r in out["runs"].items():
        for lv, x in r["levels"].items():
            rules = ", ".join(f"{k} {v}" for k, v in x["by_rule"].items())
            print(f"{name:<11} {lv:>5} {x['named_by_llm']:>5} {x['fallbacks']:>8}  {rules}")
        print(f"{name}: {r['llm_calls']} calls, {r['llm_cache_hits']} from cache; same vocabulary as the alignment run: "
              f"{r['same_vocabulary_as_alignment_run']}")


if __name__ == "__main__":
    main()
