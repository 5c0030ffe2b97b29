"""Build a vocabulary on a 2,000-item random sample of Beauty (titles) with the offline default.

    .venv/bin/python bench/build_beauty.py            # writes bench/results/build_beauty.json
"""

from __future__ import annotations

import argparse

from _build_common import REPO, print_table, run_build, summarise, write

p = argparse.ArgumentParser()
p.add_argument("--items", type=int, default=2000, help="random sample size; 0 = all 12,101 items")
p.add_argument("--run-dir", default=str(REPO / "runs" / "beauty2k"))
p.add_argument("--resume", action="store_true", help="keep an existing run folder")
p.add_argument("--set", action="append", default=[], dest="sets")
a = p.parse_args()

from pathlib import Path  # noqa: E402

sets = ([f"build.subsample={a.items}"] if a.items else []) + ["seed=0", *a.sets]
wall = run_build(Path(a.run_dir), "shared:beauty", sets, fresh=not a.resume)
cmd = "python bench/build_beauty.py" + (f" --items {a.items}" if a.items != 2000 else "")
res = summarise(Path(a.run_dir), wall, cmd + "".join(f" --set {s}" for s in a.sets))
what = f"random sample of {a.items} items (seed 0)" if a.items else "all 12,101 items"
res["dataset"] = f"Amazon 2014 Beauty, {what}, titles only"
print_table(res)
write(res, "build_beauty.json" if a.items == 2000 else f"build_beauty_{a.items or 'all'}.json")
