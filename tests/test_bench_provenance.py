"""Result files say how they were made without machine-specific paths."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_provenance():
    spec = importlib.util.spec_from_file_location("_provenance", REPO / "bench" / "_provenance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_command_line_writes_paths_relative_to_a_checkout(tmp_path):
    prov = load_provenance()
    other = tmp_path / "elsewhere"  # another checkout of the project (a git worktree or clone)
    (other / "bench" / "results").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    inside = REPO / "bench" / "results" / "x.json"
    loose = tmp_path / "loose" / "y.json"
    cmd = prov.command_line(
        ["bench/x.py", "--out", str(other / "bench" / "results" / "x.json"), f"--out={inside}", "--cache", str(loose),
         "--seeds", "0-2"]
    )
    assert str(tmp_path) not in cmd and str(REPO) not in cmd, cmd
    assert cmd.endswith("bench/x.py --out bench/results/x.json --out=bench/results/x.json --cache y.json --seeds 0-2"), cmd
