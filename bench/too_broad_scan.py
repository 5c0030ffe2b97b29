"""Does the too-broad check (``build.too_broad_factor``) fire on offline builds?

Reads the job states of existing offline run folders (by default the alignment builds,
``bench/runs/align/*_offline*``, and the development-half builds of ``bench/tune_renames.py``,
``bench/runs/tune_renames/*``) and, for each job's last step, judges its annotations with
``agents.too_broad`` at the given factor; also reports the largest multiple of an even share
(items / descriptors) among descriptors that take more than half of their job's items, the figure
the factor is compared with. With ``--rebuild RUN`` it rebuilds that run folder's configuration
with the current code into a scratch folder and says whether the vocabulary, every job's steps
and annotations are the same (a check that the current code builds what the run folder holds).

    AGENTICTAGGER_DATA=../shared/data .venv/bin/python bench/too_broad_scan.py \\
        [--factor 5] [--rebuild scientific_offline_s0]

writes bench/results/too_broad_scan.json and prints a short table. The run folders are
git-ignored: the scan describes the builds on the machine that ran it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _provenance import write_result  # noqa: E402

from agentictagger.vocab.agents import ItemAnnotation, first_match_counts, too_broad  # noqa: E402

DEFAULT_GLOBS = ("bench/runs/align/*_offline*", "bench/runs/tune_renames/*")


def scan_run(run: Path, factor: float) -> dict:
    jobs = flagged = 0
    worst = {"multiple": 0.0, "job": None, "name": None, "share": None, "descriptors": None}
    for f in sorted((run / "build_state" / "jobs").glob("*.json")):
        j = json.loads(f.read_text(encoding="utf-8"))
        if not j.get("steps"):
            continue
        names = [n for n, _ in j["steps"][-1]["descriptors"]]
        errors = j.get("errors") or [""] * len(j["annotations"])
        anns = [ItemAnnotation(list(m), error=e) for m, e in zip(j["annotations"], errors)]
        jobs += 1
        flagged += bool(too_broad(anns, len(names), factor))
        answered = sum(1 for a in anns if not a.error)
        counts = first_match_counts(anns, len(names))
        if answered and len(names) > 1 and counts.max() > answered / 2:
            k = int(counts.argmax())
            multiple = counts[k] / answered * len(names)
            if multiple > worst["multiple"]:
                worst = {"multiple": round(float(multiple), 2), "job": j["job_id"], "name": names[k],
                         "share": round(float(counts[k] / answered), 3), "descriptors": len(names)}
    return {"run": str(run.relative_to(REPO)), "jobs": jobs, "jobs_with_a_too_broad_descriptor": flagged,
            "largest_even_share_multiple_over_half": worst}


def rebuild_same(run: Path) -> dict:
    """Rebuild ``run``'s config into a scratch folder; compare vocabulary and job states."""
    scratch = Path(tempfile.mkdtemp(prefix="too_broad_rebuild_"))
    try:
        cfg = (run / "config.yaml").read_text(encoding="utf-8").splitlines()
        cfg = [f"run_dir: {scratch / 'run'}" if line.startswith("run_dir:") else line for line in cfg]
        (scratch / "config.yaml").write_text("\n".join(cfg) + "\n", encoding="utf-8")
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        subprocess.run([str(REPO / ".venv" / "bin" / "agentictagger"), "build", "--config", str(scratch / "config.yaml")],
                       check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)

        def state(root: Path) -> tuple:
            vocab = json.loads((root / "vocabulary.json").read_text(encoding="utf-8"))
            desc = [(d["id"], d["name"], d.get("definition"), d.get("item_count")) for d in vocab["descriptors"]]
            jobs = {}
            for f in sorted((root / "build_state" / "jobs").glob("*.json")):
                j = json.loads(f.read_text(encoding="utf-8"))
                jobs[f.name] = ([(s["coverage"], s["descriptors"]) for s in j["steps"]], j["annotations"])
            return desc, jobs

        (d_old, j_old), (d_new, j_new) = state(run), state(scratch / "run")
        return {"run": str(run.relative_to(REPO)), "descriptors": [len(d_old), len(d_new)],
                "same_vocabulary": d_old == d_new, "jobs": [len(j_old), len(j_new)],
                "jobs_with_other_steps_or_annotations": sum(j_old.get(k) != v for k, v in j_new.items())
                + len(set(j_old) ^ set(j_new))}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--factor", type=float, default=5.0)
    ap.add_argument("--runs", nargs="+", default=list(DEFAULT_GLOBS), help="run-folder globs, relative to the repo")
    ap.add_argument("--rebuild", nargs="*", default=[], help="align run names to rebuild and compare")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "too_broad_scan.json"))
    a = ap.parse_args()
    runs = sorted({p for g in a.runs for p in REPO.glob(g) if (p / "build_state" / "jobs").is_dir()})
    if not runs:
        raise SystemExit(f"no run folders match {a.runs}; build them first (bench/taxonomy_alignment.py, bench/tune_renames.py)")
    rows = [scan_run(r, a.factor) for r in runs]
    rebuilt = [rebuild_same(REPO / "bench" / "runs" / "align" / name) for name in a.rebuild]
    res = {
        "what": "the too-broad check on the last step of every job of existing offline builds, and rebuilds compared",
        "factor": a.factor,
        "runs": rows,
        "jobs": sum(r["jobs"] for r in rows),
        "jobs_with_a_too_broad_descriptor": sum(r["jobs_with_a_too_broad_descriptor"] for r in rows),
        "largest_even_share_multiple_over_half": max(r["largest_even_share_multiple_over_half"]["multiple"] for r in rows),
        "rebuilt": rebuilt,
    }
    write_result(a.out, res)
    for r in rows:
        w = r["largest_even_share_multiple_over_half"]
        print(f"{r['run']:55s} jobs {r['jobs']:4d}  too broad {r['jobs_with_a_too_broad_descriptor']}  "
              f"largest multiple {w['multiple']:.2f} ({w['name']}, {w['share']} of {w['descriptors']})")
    for r in rebuilt:
        print(f"rebuilt {r['run']}: same vocabulary {r['same_vocabulary']}, jobs differing {r['jobs_with_other_steps_or_annotations']}")
    print(f"{res['jobs']} jobs, {res['jobs_with_a_too_broad_descriptor']} with a too-broad descriptor at factor {a.factor:g}; "
          f"largest multiple {res['largest_even_share_multiple_over_half']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
