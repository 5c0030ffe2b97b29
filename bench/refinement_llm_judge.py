"""Does refinement make the names better for a reader other than its own judge? The build's
refinement step accepts a rename or a new group when more items are matched, by name and
definition alone, to their own group by the *embedding* judge. Here the local LLM judges instead:
for items of the jobs whose names refinement changed, it reads the item and the names and
definitions of that job's descriptors and picks one, once with the names the job ended with in the
offline build and once with the names it started with (the same build without refinement,
``offline_norefine``: identical up to the first refinement step). Agreement = the share that picks
the item's own descriptor (its assigned one in that build), on the same items for both.

Runs on the finished runs of bench/taxonomy_alignment.py (offline and offline_norefine profiles)
and writes bench/results/refinement_llm_judge.json:

  python bench/refinement_llm_judge.py [--catalogs scientific office] [--seeds 0 1 2] [--sample 200]

Runs judged before with the same sample size stay in the file (a run judged again is replaced).

Reported per catalog and seed: the jobs compared (level, parent, names before and after), items
judged, agreement before / after, the paired counts and an exact two-sided sign test on the items
where the two disagree (McNemar).
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
from names_llm_judge import judge_setup  # noqa: E402

from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary  # noqa: E402
from agentictagger.vocab.quality import llm_name_agreement  # noqa: E402


def changed_jobs(refined: Path, plain: Path) -> list[dict]:
    """Jobs built from the same items and first proposal in both runs whose final names differ."""
    out = []
    for f in sorted((refined / "build_state" / "jobs").glob("*.json")):
        other = plain / "build_state" / "jobs" / f.name
        if not other.exists():
            continue
        a, b = json.loads(f.read_text(encoding="utf-8")), json.loads(other.read_text(encoding="utf-8"))
        if a["items"] != b["items"] or a["parent_path"] != b["parent_path"] or a["steps"][0]["descriptors"] != b["steps"][0]["descriptors"]:
            continue
        after, before = [d["name"] for d in a["final"]], [d["name"] for d in b["final"]]
        # The same names and definitions in another order are no change.
        if sorted((d["name"], d["definition"]) for d in a["final"]) != sorted((d["name"], d["definition"]) for d in b["final"]):
            out.append({"job": a["job_id"], "level": a["level"], "parent_path": a["parent_path"], "items": len(a["items"]),
                        "names_before": before, "names_after": after, "summary": a["steps"][-1]["summary"]})
    return out


def sign_test(only_after: int, only_before: int) -> float:
    from scipy.stats import binomtest

    n = only_after + only_before
    return round(float(binomtest(only_after, n, 0.5).pvalue), 4) if n else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "office"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "refinement_llm_judge.json"))
    args = ap.parse_args()
    client, out = judge_setup(args.out, args.sample, "agentictagger.vocab.quality.llm_name_agreement")
    try:
        for name in args.catalogs:
            catalog = load_shared(name)
            ids = catalog.ids
            texts = [catalog.by_id(i).text for i in ids]
            for seed in args.seeds:
                runs = {k: REPO / "bench" / "runs" / "align" / f"{name}_{p}_s{seed}"
                        for k, p in (("after", "offline"), ("before", "offline_norefine"))}
                jobs = changed_jobs(runs["after"], runs["before"])
                row: dict = {"jobs": jobs, "command": command_line()}
                vocabs = {k: Vocabulary.load(r / "vocabulary.json") for k, r in runs.items()}
                paths = {k: Assignment.load_jsonl(r / "assignments.jsonl").paths for k, r in runs.items()}
                by_level: dict[int, list[str]] = {}
                for j in jobs:
                    by_level.setdefault(j["level"], []).append(j["job"])
                for level, parents in sorted(by_level.items()):
                    # Items assigned under a changed job's parent in both builds (same parent ids:
                    # the builds are identical above these jobs).
                    def under(k: str, i: str) -> bool:
                        p = paths[k].get(i, [])
                        if len(p) < level:
                            return False
                        parent = ROOT_ID if level == 1 else p[level - 2]
                        return parent in parents and len(vocabs[k].children(parent)) >= 2

                    rows = [n for n, i in enumerate(ids) if under("after", i) and under("before", i)]
                    res = {}
                    t0 = time.monotonic()
                    for k in ("before", "after"):
                        res[k] = llm_name_agreement(vocabs[k], texts, [paths[k].get(i, []) for i in ids], client, level=level,
                                                    sample=args.sample, seed=seed, rows=rows)
                    assert res["before"]["items"] == res["after"]["items"]
                    hb, ha = res["before"]["hits"], res["after"]["hits"]
                    only_after = sum(a and not b for a, b in zip(ha, hb))
                    only_before = sum(b and not a for a, b in zip(ha, hb))
                    row[str(level)] = {
                        "items_eligible": len(rows), "items_judged": len(ha),
                        "agreement_before": res["before"]["agreement"], "agreement_after": res["after"]["agreement"],
                        "both_right": sum(a and b for a, b in zip(ha, hb)), "only_after_right": only_after,
                        "only_before_right": only_before, "both_wrong": sum(not a and not b for a, b in zip(ha, hb)),
                        "sign_test_p": sign_test(only_after, only_before),
                        "failed_calls": res["before"]["failed_calls"] + res["after"]["failed_calls"],
                        "seconds": round(time.monotonic() - t0, 1),
                    }
                    print(name, seed, level, {k: v for k, v in row[str(level)].items()}, flush=True)
                out["runs"][f"{name}_s{seed}"] = row
    finally:
        from agentictagger.llm.backends import local

        local.shutdown_servers()
    write_result(args.out, out)
    print(f"{'run':<16} {'level':>5} {'jobs':>4} {'items':>5} {'before':>7} {'after':>7} {'+/-':>7} {'p':>7}")
    for key, row in out["runs"].items():
        for lv, r in row.items():
            if lv.isdigit():
                n_jobs = sum(j["level"] == int(lv) for j in row["jobs"])
                print(f"{key:<16} {lv:>5} {n_jobs:>4} {r['items_judged']:>5} {r['agreement_before']:>7} {r['agreement_after']:>7} "
                      f"{r['only_after_right']:>3}/{r['only_before_right']:<3} {r['sign_test_p']:>7}")


if __name__ == "__main__":
    main()
