"""Build a vocabulary on a 2,000-item random sample of Beauty (titles) with the offline default.

    .venv/bin/python bench/build_beauty.py            # writes bench/results/build_beauty.json
"""

from __future__ import annotations

import argparse

from _build_common import REPO, print_table, run_build, summarise, write

p = argparse.ArgumentParser()
p.add_argument("--items", type=int, default=2000)
p.add_argument("--run-dir", default=str(REPO / "runs" / "beauty2k"))
p.add_argument("--resume", action="store_true", help="keep an existing run folder")
p.add_argument("--set", action="append", default=[], dest="sets")
a = p.parse_args()

from pathlib import Path  # noqa: E402

sets = [f"build.subsample={a.items}", "seed=0", *a.sets]
wall = run_build(Path(a.run_dir), "shared:beauty", sets, fresh=not a.resume)
res = summarise(Path(a.run_dir), wall, "python bench/build_beauty.py " + " ".join(f"--set {s}" for s in a.sets))
res["dataset"] = f"Amazon 2014 Beauty, random sample of {a.items} items (seed 0), titles only"
print_table(res)
write(res, "build_beauty.json")
