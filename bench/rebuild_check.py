"""Do the committed benchmark builds still come out of this code? Rebuilds run folders of other
benchmarks from their own ``config.yaml`` (same catalog, settings, seed and embedding cache) into
``bench/runs/rebuild_check/`` and compares the new vocabulary with the folder's, descriptor by
descriptor, on the fields both files have (a field that newer code adds is listed, not counted as
a difference). Writes bench/results/rebuild_check.json and prints one line per folder:

  python bench/rebuild_check.py [--runs bench/runs/align/scientific_offline_s0 ...]

By default: the offline alignment builds (``offline``, ``offline+keepworse``, ``offline+norefine``
profiles; Scientific and Office; seeds 0-2) and the first build of ``bench/build_speed.py``. A
build reads its texts' vectors from the cache its folder was built with, so the check runs where
those builds ran (the caches are not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _provenance import write_result  # noqa: E402

DEFAULT_RUNS = [
    f"bench/runs/align/{cat}_{prof}_s{seed}"
    for cat in ("scientific", "office")
    for prof in ("offline", "offline_keepworse", "offline_norefine")
    for seed in (0, 1, 2)
] + ["bench/runs/build_speed/first0"]


def compare(old: dict, new: dict) -> dict:
    """Descriptors of two vocabulary files: counts, fields that differ, fields only one has."""
    a = {d["id"]: d for d in old["descriptors"]}
    b = {d["id"]: d for d in new["descriptors"]}
    differ, one_only = [], set()
    for did in sorted(set(a) | set(b)):
        x, y = a.get(did), b.get(did)
        if x is None or y is None:
            differ.append({"id": did, "field": "(descriptor)", "before": bool(x), "now": bool(y)})
            continue
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                one_only.add(k)
            elif x[k] != y[k]:
                differ.append({"id": did, "field": k, "before": x[k], "now": y[k]})
    return {"descriptors_before": len(a), "descriptors_now": len(b), "same": not differ, "differences": differ,
            "fields_in_one_file_only": sorted(one_only)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="run folders (relative to the repository)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "rebuild_check.json"))
    a = ap.parse_args()
    base = REPO / "bench" / "runs" / "rebuild_check"
    rows = {}
    for run in a.runs:
        src = REPO / run
        name = src.name
        out = base / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cfg = src.joinpath("config.yaml").read_text(encoding="utf-8").splitlines()
        cfg = [f"run_dir: {out}" if line.startswith("run_dir:") else line for line in cfg]
        (out.parent / f"{name}.yaml").write_text("\n".join(cfg) + "\n", encoding="utf-8")
        t0 = time.monotonic()
        done = subprocess.run([str(REPO / ".venv" / "bin" / "agentictagger"), "build", "--config", str(out.parent / f"{name}.yaml")],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{run}: the build failed (exit {done.returncode})")
        row = compare(json.loads((src / "vocabulary.json").read_text(encoding="utf-8")),
                      json.loads((out / "vocabulary.json").read_text(encoding="utf-8")))
        row["seconds"] = round(time.monotonic() - t0, 1)
        rows[run] = row
        print(f"{run}: {row['descriptors_before']} -> {row['descriptors_now']} descriptors, "
              f"{'the same' if row['same'] else str(len(row['differences'])) + ' field(s) differ'} ({row['seconds']} s)", flush=True)
    write_result(a.out, {
        "what": "benchmark run folders rebuilt with this code from their own config.yaml (same catalog, settings, seed, "
                "embedding cache), vocabularies compared descriptor by descriptor on the fields both files have",
        "runs": rows,
        "all_same": all(r["same"] for r in rows.values()),
    })
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
