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


def _render_provenance():
    spec = importlib.util.spec_from_file_location("render_provenance", REPO / "bench" / "render_provenance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_provenance_table_reads_each_part_a_bench_reran_on_its_own():
    mod = _render_provenance()
    nested = {
        "provenance": {"git_commit": "c" * 40},
        "catalogs": {"office": {"profiles": {"offline": {"git_commit": "a" * 40, "summary": {}},
                                             "local-llm": {"git_commit": "b" * 40, "git_uncommitted_changes": True}}}},
    }
    assert mod.parts(nested) == [("office / offline", "a" * 40, None), ("office / local-llm", "b" * 40, True)]
    assert mod.parts({"provenance": {"git_commit": "c" * 40, "git_uncommitted_changes": False}}) == [("", "c" * 40, False)]
    assert mod.parts({"rows": [1, 2]}) == []


def test_the_changes_the_provenance_table_names_are_commits_of_this_history_newest_first():
    import pytest

    mod = _render_provenance()
    if mod.git("rev-parse", "--is-shallow-repository") != "false":
        pytest.skip("needs the full git history (a shallow clone lacks the older commits)")
    dates = [int(mod.git("log", "-1", "--format=%ct", c) or 0) for c, _ in mod.CHANGES]
    assert all(dates) and dates == sorted(dates, reverse=True), dates
