"""Names alone, judged by an LLM: for 200 items per level, the local LLM (Qwen2.5-Coder-1.5B) reads
the item and its level's sibling names and definitions and picks one; agreement = the share that
picks the item's assigned descriptor. Runs on the finished runs of bench/taxonomy_alignment.py (seed
0, offline profile by default) and writes bench/results/names_llm_judge.json, keeping the runs judged
before with the same sample size.

  python bench/names_llm_judge.py [--catalogs scientific office] [--levels 1 2] [--sample 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import LLM_THREADS  # noqa: E402

from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.config import LLMConfig  # noqa: E402
from agentictagger.llm.factory import make_client  # noqa: E402
from agentictagger.vocab.quality import llm_name_agreement  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402


def judge_setup(out_path: str, sample: int, grammar_source: str) -> tuple:
    """The local LLM judge's client and the result to fill: the runs judged before (other
    catalogs, profiles or seeds) with the same sample size are kept."""
    cfg = LLMConfig(backend="local", model_path="qwen2.5-coder-1.5b-instruct", n_threads=LLM_THREADS)
    client = make_client(cfg, REPO / ".cache" / "agentictagger" / "llm")
    old = json.loads(Path(out_path).read_text(encoding="utf-8")) if Path(out_path).exists() else {}
    kept = {k: v for k, v in old.get("runs", {}).items() if old.get("sample") == sample}
    out: dict = {"judge": "qwen2.5-coder-1.5b-instruct on the local llama.cpp server, greedy, answer held to the names by a "
                          f"grammar of the bare names ({grammar_source})",
                 "sample": sample, "runs": kept}
    return client, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "office"])
    ap.add_argument("--levels", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "names_llm_judge.json"))
    args = ap.parse_args()
    client, out = judge_setup(args.out, args.sample, "bench/choice_decoding.py")
    try:
        for name in args.catalogs:
            run = REPO / "bench" / "runs" / "align" / f"{name}_{args.profile}_s{args.seed}"
            catalog = load_shared(name)
            ids = catalog.ids
            vocab = Vocabulary.load(run / "vocabulary.json")
            paths = Assignment.load_jsonl(run / "assignments.jsonl").paths
            texts = [catalog.by_id(i).text for i in ids]
            per = {}
            for lv in args.levels:
                t0 = time.monotonic()
                r = llm_name_agreement(vocab, texts, [paths.get(i, []) for i in ids], client, level=lv, sample=args.sample, seed=args.seed)
                r["seconds"] = round(time.monotonic() - t0, 1)
                r["command"] = command_line()
                per[str(lv)] = r
                print(name, lv, {k: v for k, v in r.items() if k != "items"}, flush=True)
            # Levels judged before for the same run stay; a level judged again is replaced.
            out["runs"].setdefault(f"{name}_{args.profile}_s{args.seed}", {}).update(per)
    finally:
        from agentictagger.llm.backends import local

        local.shutdown_servers()
    write_result(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
