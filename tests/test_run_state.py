"""The run folder's state, through the real CLI in subprocesses:
checkpoints carry a fingerprint of the settings that shaped them (a change stops the stage,
naming the keys, and --restart starts it clean); one build/assign per run folder at a time (a
second stops at once or queues with --wait; a killed holder's lock is taken over); LLM usage is
logged per call so a killed run's totals equal what the server saw; a killed run's temporary
files are removed and its build log completed on the next run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from test_honest_build import CLI, build_command, write_catalog
from test_vocab_llm import scripted_llm

# A small offline build: 40 items, a few levels.
OFFLINE = ["--set", "build.min_cluster_size=5", "--set", "build.root_descriptors=3", "--set", "build.grouping.restarts=2"]


def cli(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "COLUMNS": "80"}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def offline(cwd: Path, command: str, run: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli(cwd, command, "--catalog", str(cwd / "items.jsonl"), "--run-dir", str(run),
               "--set", f"cache_dir={cwd / 'cache'}", *OFFLINE, *extra)


def error_line(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> Path:
    """A finished offline build and assignment of 40 items (copied by each test that changes it)."""
    base = tmp_path_factory.mktemp("offline")
    write_catalog(base / "items.jsonl")
    run = base / "run"
    out = offline(base, "build", run)
    assert out.returncode == 0, out.stderr[-3000:]
    out = offline(base, "assign", run)
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def copy_run(offline_run: Path, tmp_path: Path) -> Path:
    shutil.copy(offline_run.parent / "items.jsonl", tmp_path / "items.jsonl")
    shutil.copytree(offline_run.parent / "cache", tmp_path / "cache")
    return Path(shutil.copytree(offline_run, tmp_path / "run"))


def paths(run: Path) -> list[list[str]]:
    return [json.loads(ln)["path"] for ln in (run / "semantic_ids.jsonl").read_text().splitlines()]


# -- row 1 ----------------------------------------------------------------------------------------
def test_changed_settings_stop_the_stage_naming_them_and_restart_starts_it_clean(offline_run, tmp_path):
    run = copy_run(offline_run, tmp_path)
    assert max(map(len, paths(run))) >= 2
    table = (run / "semantic_ids.jsonl").read_bytes()

    # assign with another max_level: its checkpoint is not reused; one line names the key and the flag.
    out = offline(tmp_path, "assign", run, "--set", "assign.max_level=1")
    assert out.returncode == 2, out.stderr[-3000:]
    line = error_line(out)
    assert "assign.max_level null -> 1" in line and "--restart" in line
    assert (run / "semantic_ids.jsonl").read_bytes() == table

    # A setting that cannot change results (chunk size, here) resumes.
    out = offline(tmp_path, "assign", run, "--set", "assign.checkpoint_every=7")
    assert out.returncode == 0, out.stderr[-3000:]

    out = offline(tmp_path, "assign", run, "--set", "assign.max_level=1", "--restart")
    assert out.returncode == 0, out.stderr[-3000:]
    assert {len(p) for p in paths(run)} == {1}
    meta = json.loads((run / "assignments.jsonl").read_text().splitlines()[0])
    meta = meta.get("meta", meta)
    assert meta["config"]["max_level"] == 1 and meta["fingerprint"]["assign.max_level"] == 1

    # build with another root target: stops before any work; config.yaml and the vocabulary stay
    # those of the build that made them.
    config, vocab = (run / "config.yaml").read_text(), (run / "vocabulary.json").read_bytes()
    out = offline(tmp_path, "build", run, "--set", "build.root_descriptors=4")
    assert out.returncode == 2, out.stderr[-3000:]
    line = error_line(out)
    assert "build.root_descriptors 3 -> 4" in line and "--restart" in line
    assert (run / "config.yaml").read_text() == config and (run / "vocabulary.json").read_bytes() == vocab

    out = offline(tmp_path, "build", run, "--set", "build.root_descriptors=4", "--restart")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "root_descriptors: 4" in (run / "config.yaml").read_text()
    meta = json.loads((run / "vocabulary.json").read_text())["meta"]
    assert meta["fingerprint"]["build.root_descriptors"] == 4 and meta["architect"] == "offline"
    log = [json.loads(ln) for ln in (run / "build_log.jsonl").read_text().splitlines()]
    assert sum(1 for r in log if r.get("job") == "root" and r.get("step") == 0) == 1  # the old build's log went with it

    # The assignment was made over the old vocabulary: it stops too, naming it.
    out = offline(tmp_path, "assign", run, "--set", "assign.max_level=1")
    assert out.returncode == 2 and "vocabulary" in error_line(out) and "--restart" in error_line(out)


# -- rows 4 and 5: a contended, killed LLM build ---------------------------------------------------
# -- row 9 ----------------------------------------------------------------------------------------
def test_assigning_another_catalog_into_a_finished_run_stops_and_keeps_its_ids(offline_run, tmp_path):
    run = copy_run(offline_run, tmp_path)
    table = (run / "semantic_ids.jsonl").read_bytes()
    rows = (tmp_path / "items.jsonl").read_text().splitlines()
    (tmp_path / "items.jsonl").write_text("\n".join(rows[:20]) + "\n")
    out = offline(tmp_path, "assign", run)
    assert out.returncode == 2, out.stderr[-3000:]
    line = error_line(out)
    assert "catalog.items" in line and "--restart" in line
    assert (run / "semantic_ids.jsonl").read_bytes() == table


@pytest.fixture(scope="module")
def contended_llm_build(tmp_path_factory) -> dict:
    """Build A (LLM architect and annotator) is held by the server after 10 answers with its 2
    requests in flight; B starts on the same run folder; C starts with --wait; A is killed with
    SIGKILL; C takes over and finishes."""
    tmp = tmp_path_factory.mktemp("llm")
    run = tmp / "run"
    gate = threading.Event()
    held: list[int] = []
    lock = threading.Lock()
    answered = [0]

    def handler(r):
        with lock:
            hold = not gate.is_set() and answered[0] >= 10
            if hold:
                held.append(1)
            else:
                answered[0] += 1
        if hold:
            gate.wait(60)
        return scripted_llm(r)

    rec: dict = {"run": run}
    with FakeOpenAIServer(handler=handler) as server:
        extra = ("--set", "build.annotator.kind=llm", "--set", "llms.default.max_concurrency=2")
        cmd, env = build_command(tmp, server.url, run, *extra)
        a = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(held) < 2 and time.monotonic() < deadline and a.poll() is None:
                time.sleep(0.05)
            assert len(held) == 2, a.communicate()[1][-3000:] if a.poll() is not None else "A never got 2 requests in flight"
            before_b = server.request_count
            t0 = time.monotonic()
            rec["b"] = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
            rec["b_seconds"] = time.monotonic() - t0
            rec["b_requests"] = server.request_count - before_b

            c = subprocess.Popen([*cmd, "--wait"], env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            c_err: list[str] = []
            reader = threading.Thread(target=lambda: c_err.extend(c.stderr), daemon=True)
            reader.start()
            deadline = time.monotonic() + 60
            while not any("waiting" in ln for ln in c_err) and time.monotonic() < deadline and c.poll() is None:
                time.sleep(0.05)
            rec["c_waited"] = any("waiting" in ln for ln in c_err)
            rec["a_pid"] = a.pid

            a.send_signal(signal.SIGKILL)
            a.wait()
            rec["kill_time"] = time.time()
            rec["server_at_kill"] = server.request_count
            gate.set()
            c_out = c.stdout.read()
            c.wait(timeout=300)
            reader.join(timeout=10)
            rec["c"] = (c.returncode, c_out, "".join(c_err))
            rec["server_total"] = server.request_count
        finally:
            gate.set()
            for p in (a,):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    return rec


def test_a_second_run_stops_at_once_or_waits_and_a_killed_runs_lock_is_taken_over(contended_llm_build):
    rec = contended_llm_build
    b = rec["b"]
    assert b.returncode == 2, b.stderr[-3000:]
    line = error_line(b)
    assert "in use by `agentictagger build`" in line and f"pid {rec['a_pid']}" in line and "--wait" in line
    assert rec["b_requests"] == 0 and rec["b_seconds"] < 60
    rc, _, err = rec["c"]
    assert rec["c_waited"], err[-3000:]
    assert rc == 0, err[-3000:]
    assert f"took over the lock of `agentictagger build` (pid {rec['a_pid']}" in " ".join(err.split())
    assert (rec["run"] / "vocabulary.json").exists()
    assert not (rec["run"] / "run.lock.json").exists()  # released


def usage_log_totals(run: Path, before: float | None = None) -> dict[str, int]:
    totals = {"calls": 0, "cache_hits": 0, "answered": 0}
    for ln in (run / "usage.jsonl").read_text().splitlines():
        row = json.loads(ln)
        if before is None or row["t"] <= before:
            for k in totals:
                totals[k] += row.get(k, 0)
    return totals


def test_usage_after_a_kill_equals_what_the_server_saw(contended_llm_build):
    rec = contended_llm_build
    run = rec["run"]
    # The killed run's log counts every request it sent, the two in flight included.
    at_kill = usage_log_totals(run, before=rec["kill_time"])
    assert at_kill["calls"] == rec["server_at_kill"] == 12
    assert at_kill["answered"] == 10
    # After the resumed run: usage.json is the log's sum and equals the server's count; the
    # answers the killed run had received came from the cache, counted apart.
    usage = json.loads((run / "usage.json").read_text())
    total = usage["total"]
    assert total["calls"] == rec["server_total"] == usage_log_totals(run)["calls"]
    assert total["cache_hits"] == 10
    assert total["answered"] == rec["server_total"] - 2  # the two cut off by the kill were asked again
    assert usage["stages"]["annotator"]["calls"] + usage["stages"]["architect"]["calls"] == total["calls"]


# -- row 11 ---------------------------------------------------------------------------------------
def test_leftover_temporary_files_are_removed_and_the_build_log_is_completed(offline_run, tmp_path):
    run = copy_run(offline_run, tmp_path)
    # What a kill leaves: temporary files of atomic writes, and a step saved in its job's state
    # whose log record was never appended (plus a record cut short mid-line).
    leftovers = [
        run / "vocabulary.json.4321-140123.at.tmp",
        run / "vocabulary.prototypes.npz.4321-140123.at.tmp",
        run / "usage.json.12345-1.at.tmp",
        run / "build_state" / "jobs" / "root.json.4321-140124.at.tmp",
    ]
    for p in leftovers:
        p.write_text("partial")
    (run / "notes.tmp").write_text("a file of the user's")  # not a name the run writes: kept
    lines = (run / "build_log.jsonl").read_text().splitlines(keepends=True)
    lost = json.loads(lines[-1])
    kept = "".join(lines[:-1])
    (run / "build_log.jsonl").write_text(kept + '{"time": 1, "job": "d')

    out = offline(tmp_path, "build", run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [p for p in leftovers if p.exists()] == []
    assert "temporary file" in out.stderr
    assert (run / "notes.tmp").read_text() == "a file of the user's"
    text = (run / "build_log.jsonl").read_text()
    assert text.startswith(kept)  # append-only: what was there stays
    records = [json.loads(ln) for ln in text.splitlines()]
    steps = [(r["job"], r["step"]) for r in records if "step" in r]
    assert len(steps) == len(set(steps))
    states = [json.loads(p.read_text()) for p in (run / "build_state" / "jobs").glob("*.json")]
    assert set(steps) == {(j["job_id"], s["step"]) for j in states for s in j["steps"]}
    recovered = [r for r in records if r.get("recovered")]
    assert [(r["job"], r["step"], r["coverage"]) for r in recovered] == [(lost["job"], lost["step"], lost["coverage"])]
