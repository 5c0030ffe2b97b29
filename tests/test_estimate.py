"""`agentictagger estimate`: works from any folder (its figures ship with the package), covers the
build as well as the assignment, shows dollars with and without prefix caching, refuses
out-of-range options with one line, and warns when a price is unknown or --model is not used."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_run_state import CLI

from agentictagger.config import RunConfig
from agentictagger.run.estimate import build_estimate, build_jobs, calibration_path, estimate_table, load_measured

ROOT = Path(__file__).resolve().parents[1]
PRICED = ["llms.default.backend=openai", "llms.default.model=gpt-4o-mini",
          "llms.default.price_per_million_input=0.15", "llms.default.price_per_million_output=0.6"]
LLM_BUILD = ["build.architect.kind=llm", "build.annotator.kind=llm", "build.naming.kind=llm", "build.naming.max_level=1"]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "estimate", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "200"})


def sets(*items: str) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def test_estimate_runs_outside_the_repository_and_covers_build_and_assignment(tmp_path):
    out = run(tmp_path, "--items", "5000", *sets("assign.assigner=llm", *LLM_BUILD, *PRICED))
    assert out.returncode == 0, out.stderr
    assert "build (vocabulary):" in out.stdout and "assignment:" in out.stdout
    assert "architect calls" in out.stdout and "USD cached" in out.stdout and "USD uncached" in out.stdout
    assert "estimate_calibration.json" in out.stdout and "warning" not in out.stderr
    # The shipped figures are the benchmark's: the generator copies per_item from scale.json.
    shipped = json.loads(calibration_path().read_text())
    bench = json.loads((ROOT / "bench" / "results" / "scale.json").read_text())
    assert shipped["per_item"] == bench["per_item"] and shipped["generated_by"] == "bench/make_estimate_calibration.py"


def test_build_calls_follow_the_modelled_job_tree():
    cfg = RunConfig.load(None, [*LLM_BUILD, *PRICED, "build.root_descriptors=10", "build.child_descriptors=5",
                                "build.min_cluster_size=50", "build.refine_steps=1"])
    # 1,000 items -> 10 groups of 100 (above 50: sub-jobs) -> 5 groups of 20 each (not split).
    assert build_jobs(cfg, 1000) == [(1, 1, 1000.0, 10), (2, 10, 100.0, 5)]
    row = build_estimate(cfg, load_measured(), 1000, sizes=())[0]
    assert row.jobs == 11 and row.levels == 2
    assert row.calls == {"architect": 11 * 2, "annotator": 2 * (1000 + 10 * 100), "namer": 1}
    assert 0 < row.usd < row.usd_uncached
    offline = build_estimate(RunConfig.load(None, PRICED), load_measured(), 1000, sizes=())[0]
    assert offline.calls == {"architect": 0, "annotator": 0, "namer": 0} and offline.usd == 0
    # A subsample builds from fewer items.
    sub = build_estimate(RunConfig.load(None, [*LLM_BUILD, *PRICED, "build.subsample=0.1"]), load_measured(), 10_000, sizes=())[0]
    assert sub.build_items == 1000


def test_a_names_only_namer_is_estimated_from_its_own_calibration():
    naming = [*PRICED, "build.naming.kind=llm", "build.naming.max_level=2"]
    full = build_estimate(RunConfig.load(None, naming), load_measured(), 10_000, sizes=())[0]
    short = build_estimate(RunConfig.load(None, [*naming, "build.naming.definitions=keyphrase"]), load_measured(), 10_000, sizes=())[0]
    assert short.calls == full.calls and 0 < short.prompt_tokens < full.prompt_tokens and 0 < short.usd < full.usd
    assert "demo_timing.json" in short.sources["build namer"] and "llm_profile_e2e.json" in full.sources["build namer"]


def test_dollars_are_shown_with_and_without_prefix_caching():
    cfg = RunConfig.load(None, ["assign.assigner=llm", *PRICED])
    m = load_measured()
    r = estimate_table(cfg, m, sizes=(10**6,))[0]
    tok = m["per_item"]["llm_tokens_per_item"]["without_prefix_caching"]
    calls = 10**6 * m["per_item"]["llm_calls_per_item"]
    assert r.usd_uncached == pytest.approx(calls * (tok["prompt"] * 0.15 + tok["completion"] * 0.6) / 1e6)
    assert r.usd < 0.65 * r.usd_uncached  # most of each prompt is a cached prefix, billed at half price


@pytest.mark.parametrize("args, flag", [
    (["--price-in", "-3"], "--price-in"), (["--price-out", "nan"], "--price-out"), (["--items", "-5"], "--items"),
    (["--workers", "0"], "--workers"), (["--cached-price-factor", "1.5"], "--cached-price-factor"),
    (["--latency-s", "inf"], "--latency-s"), (["--rpm", "0"], "--rpm"),
])
def test_out_of_range_options_are_refused_with_one_line(tmp_path, args, flag):
    out = run(tmp_path, *args)
    assert out.returncode == 2 and out.stdout == ""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag} must be"), out.stderr


def test_unknown_prices_and_an_unused_model_are_warned_about(tmp_path):
    out = run(tmp_path, "--items", "1000", "--model", "gpt-4o-mini")
    assert out.returncode == 0
    assert "assign.assigner is 'embedding'" in out.stderr and "--set assign.assigner=llm" in out.stderr
    out = run(tmp_path, "--items", "1000", "--model", "gpt-4o-mini", *sets("assign.assigner=llm"))
    assert out.returncode == 0 and "no price known for 'gpt-4o-mini'" in out.stderr and "--price-in" in out.stderr
    out = run(tmp_path, "--items", "1000", "--model", "gpt-4o-mini", "--price-in", "0.15", "--price-out", "0.6",
              *sets("assign.assigner=llm"))
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
