"""Honest builds: an LLM architect that cannot be reached fails the build (no vocabulary.json);
invalid answers fall back to the offline architect only when build.architect.fallback says so,
and every step records which architect wrote it. Driven through the real CLI in a subprocess
against a real local OpenAI-compatible server (tests/fake_openai_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_openai_server import FakeOpenAIServer
from test_vocab_llm import llm_config, scripted_llm

from agentictagger.catalog import Catalog
from agentictagger.config import RunConfig
from agentictagger.run.build import build_vocabulary
from agentictagger.vocab.builder import StepRecord, architect_meta

CLI = str(Path(sys.executable).with_name("agentictagger"))
KINDS = ["apple", "pear", "hammer", "chair"]
ADJ = ["red", "green", "small", "large", "old", "shiny", "cheap", "fancy", "heavy", "light"]


def write_catalog(path: Path, per_kind: int = 10) -> Path:
    rows = [
        {"item_id": f"{k}-{i}", "title": f"{ADJ[i % len(ADJ)]} {k} number {i}"}
        for k in KINDS
        for i in range(per_kind)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def is_architect(request_json: dict) -> bool:
    return "architect" in request_json["messages"][0]["content"]


def build_cli(tmp_path: Path, base_url: str, run: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd, env = build_command(tmp_path, base_url, run, *extra)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def build_command(tmp_path: Path, base_url: str, run: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    """The `agentictagger build` command line and environment :func:`build_cli` runs."""
    cat = tmp_path / "items.jsonl"
    if not cat.exists():
        write_catalog(cat)
    cmd = [
        CLI, "build", "--catalog", str(cat), "--run-dir", str(run),
        "--set", "build.architect.kind=llm",
        "--set", "llms.default.backend=openai",
        "--set", f"llms.default.base_url={base_url}",
        "--set", "llms.default.model=fake-model",
        "--set", "llms.default.api_key_env=AGENTICTAGGER_TEST_KEY_UNSET",
        "--set", "llms.default.max_retries=3",
        "--set", "llms.default.backoff_base_s=0.001",
        "--set", "llms.default.backoff_max_s=0.01",
        "--set", f"cache_dir={tmp_path / 'cache'}",
        "--set", "build.root_descriptors=4",
        "--set", "build.min_cluster_size=1000",
        "--set", "build.refine_steps=1",
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "COLUMNS": "80"}
    env.pop("AGENTICTAGGER_TEST_KEY_UNSET", None)
    return cmd, env


def failure_line(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("build failed:")]
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


def test_auth_error_fails_the_build_at_once_and_writes_no_vocabulary(tmp_path):
    with FakeOpenAIServer(handler=lambda r: (401, "Incorrect API key provided")) as server:
        # Even with the offline fallback allowed: an auth error is not an invalid answer.
        out = build_cli(tmp_path, server.url, tmp_path / "run", "--set", "build.architect.fallback=offline")
        hits = server.request_count
    assert out.returncode == 1, out.stdout + out.stderr
    line = failure_line(out)
    assert "HTTP 401" in line and "Incorrect API key provided" in line and "not retried" in line
    assert "vocabulary.json not written" in line and "run the build again to resume" in line
    assert hits == 1  # no retry, no re-ask
    assert not (tmp_path / "run" / "vocabulary.json").exists()
    state = json.loads((tmp_path / "run" / "build_state" / "jobs" / "root.json").read_text())
    assert state["status"] == "failed" and "HTTP 401" in state["error"] and state["steps"] == []


def test_unreachable_server_fails_the_build(tmp_path):
    server = FakeOpenAIServer().start()
    url = server.url
    server.stop()  # a port nobody listens on: connection refused, retried, then a failed build
    out = build_cli(tmp_path, url, tmp_path / "run", "--set", "llms.default.max_retries=1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "connection failed" in failure_line(out)
    assert not (tmp_path / "run" / "vocabulary.json").exists()


def test_invalid_answers_fail_without_fallback_and_fall_back_when_allowed(tmp_path):
    def handler(r):
        # JSON of the right shape, but catch-all names: rejected by the architect's own checks.
        answer = {"descriptors": [{"name": "Misc", "definition": "anything"}, {"name": "Other", "definition": "the rest"}]}
        if is_architect(r):
            if "Revise" in r["messages"][1]["content"]:
                answer["needs_more_steps"] = False
            return json.dumps(answer)
        return scripted_llm(r)

    run = tmp_path / "run"
    with FakeOpenAIServer(handler=handler) as server:
        out = build_cli(tmp_path, server.url, run, "--set", "build.min_failures=1")
        assert out.returncode == 1, out.stdout + out.stderr
        line = failure_line(out)
        assert "ArchitectGaveUp" in line and "stayed invalid after 3 tries" in line and "catch-all" in line
        assert not (run / "vocabulary.json").exists()
        first_hits = server.request_count
        # The proposal and a re-ask quoting the reasons; the 2nd re-ask is the same request, so
        # the response cache answers it (temperature 0: the server would say the same).
        assert first_hits == 2

        # Same run folder, fallback allowed: resumes, the proposal's answers come from the cache,
        # the offline architect writes every step, and the records say so.
        out = build_cli(tmp_path, server.url, run, "--set", "build.min_failures=1", "--set", "build.architect.fallback=offline")
        assert out.returncode == 0, out.stdout + out.stderr
        architect_hits = sum(1 for b in server.chat_bodies() if is_architect(b))
    vocab = json.loads((run / "vocabulary.json").read_text())
    meta = vocab["meta"]
    steps = json.loads((run / "build_state" / "jobs" / "root.json").read_text())["steps"]
    n = len(steps)
    assert n >= 1 and [s["architect"] for s in steps] == ["offline-fallback"] * n
    assert all("ArchitectGaveUp" in s["fallback_reason"] and s["fallback"] for s in steps)
    assert architect_hits == first_hits + 2 * (n - 1)  # only refinements (if any) ask again
    assert "stood in for the LLM architect" in out.stderr
    assert meta["architect"] == f"offline-fallback({n} steps)"
    assert meta["architect_steps_by_kind"] == {"offline-fallback": n}
    assert meta["fallbacks"] == n and [f["step"] for f in meta["fallback_steps"]] == list(range(n))
    log = [json.loads(x) for x in (run / "build_log.jsonl").read_text().splitlines()]
    assert [r["architect"] for r in log] == ["offline-fallback"] * n
    assert len(vocab["descriptors"]) >= 1


def test_meta_names_a_partial_fallback(tmp_path):
    """LLM proposal accepted, its refinement invalid: 'llm+offline-fallback(1 steps)'."""
    cat_path = write_catalog(tmp_path / "catalog.jsonl", per_kind=15)

    def handler(r):
        if is_architect(r) and "Revise" in r["messages"][1]["content"]:
            return json.dumps({"descriptors": [{"name": "Other", "definition": "x"}], "needs_more_steps": False})
        return scripted_llm(r)

    with FakeOpenAIServer(handler=handler) as server:
        raw = llm_config(tmp_path, server, architect={"kind": "llm", "fallback": "offline"}, refine_steps=1)
        raw["catalog"]["path"] = str(cat_path)
        res = build_vocabulary(Catalog.load(cat_path), RunConfig.model_validate(raw))
    steps = res.jobs[0].steps
    assert [s.architect for s in steps] == ["llm", "offline-fallback"]
    assert steps[0].fallback_reason == "" and "stayed invalid" in steps[1].fallback_reason
    meta = res.vocabulary.meta
    assert meta["architect"] == "llm+offline-fallback(1 steps)"
    assert meta["architect_steps_by_kind"] == {"llm": 1, "offline-fallback": 1} and meta["fallbacks"] == 1


def test_meta_of_an_all_llm_build_and_of_old_state():
    class Job:
        def __init__(self, job_id, steps):
            self.job_id, self.steps = job_id, steps

    def step(i, **kw):
        return StepRecord(i, [["A", "a"]], 1.0, 1, 0, 0, "", **kw)

    jobs = [Job("root", [step(0, architect="llm"), step(1, architect="llm")]), Job("d1", [step(0, architect="llm")])]
    meta = architect_meta(jobs, "llm")
    assert meta["architect"] == "llm" and meta["architect_steps_by_kind"] == {"llm": 3} and meta["fallbacks"] == 0
    # State written before steps recorded their architect: read from the old bool flag.
    old = [Job("root", [step(0), step(1, fallback=True)])]
    assert architect_meta(old, "llm")["architect"] == "llm+offline-fallback(1 steps)"
    assert architect_meta([Job("root", [step(0)])], "embedding")["architect"] == "offline"
    assert StepRecord(**{**step(0).__dict__, "fallback": True}).fallback is True


def test_a_local_model_that_is_not_there_is_a_one_line_error(tmp_path):
    cat = write_catalog(tmp_path / "items.jsonl")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AGENTICTAGGER_MODELS": str(tmp_path / "models")}
    out = subprocess.run(
        [CLI, "build", "--catalog", str(cat), "--run-dir", str(tmp_path / "run"),
         "--set", "build.architect.kind=llm", "--set", "llms.default.backend=local",
         "--set", f"llms.default.model_path={tmp_path / 'nope.gguf'}", "--set", f"cache_dir={tmp_path / 'cache'}"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    line = failure_line(out)
    assert "nope.gguf" in line or "xllamacpp" in line
    assert "Traceback" not in out.stderr and not (tmp_path / "run" / "vocabulary.json").exists()
