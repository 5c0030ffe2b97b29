"""Fault injection against the LLM build and assign: does a run ever lie?

The real CLI (`agentictagger build`, then `agentictagger assign`, in subprocesses) builds a
vocabulary with the LLM architect and annotator and assigns the catalog with the LLM assigner,
all pointed at the scripted OpenAI-compatible server of tests/fake_openai_server.py, which answers
deterministically (a hash of the item text picks the descriptor), so an interrupted run's outputs
can be compared with an uninterrupted one byte for byte. Scenarios: an uninterrupted baseline; a
429 storm with Retry-After; 500 bursts; hung requests (longer than the client timeout); malformed
answers; kill -9 at 5 seeded random points; a concurrent second run (stops at once) and a third
with --wait; a run folder whose disk fills up mid-build (a tmpfs in an unprivileged user+mount
namespace, `unshare -Urm`; skipped with the reason where that is not allowed).

For each scenario: items lost (catalog items without a path at the end), paid answers repeated
beyond those in flight at a kill (or at the moment the disk filled / a request timed out), usage
totals (usage.json + assign_usage.json) against the server's request count, every exit code, and
whether vocabulary, assignments and semantic IDs equal the baseline's.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/reliability.py

writes bench/results/reliability.json; run folders go to bench/runs/reliability/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fake_openai_server import FakeOpenAIServer, Reply  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

CLI = str(Path(sys.executable).with_name("agentictagger"))
CATALOG = ROOT / "src" / "agentictagger" / "data" / "sample_catalog.jsonl"
RUNS = ROOT / "bench" / "runs" / "reliability"
OUT = ROOT / "bench" / "results" / "reliability.json"
KILL_SEED = 9
N_KILLS = 5
KILL_SETTLE_S = 0.5  # the server holds new requests this long before the kill (answers already sent get stored)
TIMEOUT_S = 3.0  # client timeout; a hung request is held 2x as long
RETRY_AFTER_S = 1
STORM_S = 2.5

# -- the scripted LLM: deterministic answers for the sample catalog --------------------------------
ROOT_KINDS = {
    "Plumbing Fittings": ["Pipe Adapters", "Valves", "Hoses"],
    "Cleaning Supplies": ["Mops", "Detergents", "Trash Bags"],
    "Fasteners": ["Screws", "Nails", "Bolts"],
    "3D Printing Filament": ["PLA Filament", "Resin", "Nozzles"],
    "Measuring Instruments": ["Calipers", "Meters", "Gauges"],
    "Tapes and Adhesives": ["Duct Tape", "Glue", "Sealants"],
    "Electrical Components": ["Wires", "Switches", "Connectors"],
    "Lab Equipment": ["Beakers", "Pipettes", "Lab Gloves"],
}
FALLBACK_KINDS = ["Compact Units", "Large Units", "Spare Parts"]


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


def _first_user(req: dict) -> str:
    return next((str(m.get("content", "")) for m in req.get("messages", []) if m.get("role") == "user"), "")


def _schema(req: dict) -> dict:
    return ((req.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}


def _scope(user: str) -> str | None:
    """The parent descriptor's name from an architect prompt (None = the whole catalog)."""
    if "the whole catalog" in user.split("\n", 1)[0]:
        return None
    head = user.split("\n", 1)[0]
    if "the category '" in head:
        return head.split("the category '", 1)[1].split("'", 1)[0].split(" > ")[-1]
    return None


def sample_answer(req: dict) -> tuple[str, str]:
    """(role, answer) for a request of the build or the assignment."""
    system = str(req["messages"][0]["content"])
    user = _first_user(req)
    if "architect" in system:
        scope = _scope(user)
        names = list(ROOT_KINDS) if scope is None else ROOT_KINDS.get(scope, FALLBACK_KINDS)
        answer: dict[str, Any] = {
            "descriptors": [{"name": n, "definition": f"Items that are {n.lower()}."} for n in names]
        }
        if "Revise" in user:
            answer["needs_more_steps"] = False
        return "architect", json.dumps(answer)
    # The item is the last part of the first user message; the JSON-schema hint the client appends
    # to the last user message (the first one on a first try, the correction on a re-ask) follows
    # after a blank line, and item texts are flattened to one line.
    item = " ".join(user.rsplit("Item:", 1)[-1].strip().split("\n\n")[0].split())[:200]
    if system.startswith("You are an annotator"):
        names = [n for n in _schema(req)["properties"]["descriptor"]["enum"] if n != "none"]
        pick = names[_h(item + "|" + ",".join(names)) % len(names)]
        return "annotator", json.dumps({"descriptor": pick, "note": ""})
    choices = [c for c in _schema(req)["properties"]["choice"]["enum"] if c != "none of these"]
    pick = choices[_h(item + "|" + ",".join(choices)) % len(choices)]
    return "assigner", json.dumps({"choice": pick})


MALFORMED = [
    "Sure! The best fitting one is probably the first.",  # prose, no JSON
    '{"descriptor": "Fasten',  # cut off
    "",  # empty
    None,  # valid JSON naming something that is not offered
]


def malformed_answer(role: str, k: int) -> str:
    bad = MALFORMED[k % len(MALFORMED)]
    if bad is not None:
        return bad
    return {"architect": '{"items": []}', "annotator": '{"descriptor": "Spaceships", "note": ""}'}.get(
        role, '{"choice": "Spaceships"}'
    )


def body_key(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


# -- the fault script ------------------------------------------------------------------------------
class FaultScript:
    """The server's handler: the scripted answer, or the scenario's fault for this request.

    Requests are numbered in arrival order (1-based, over the whole scenario). ``hold_at``: from
    that request on, every request waits at a gate (until :meth:`release`), and ``held_due`` is set,
    so the bench can act (kill the client, start a second run, fill the disk)."""

    def __init__(
        self,
        *,
        storms_at: tuple[int, ...] = (),
        bursts_at: tuple[int, ...] = (),
        burst_len: int = 6,
        hangs_at: tuple[int, ...] = (),
        malformed_every: int = 0,
        hold_at: tuple[int, ...] = (),
        bad_share: float = 0.0,
        bad_from: int = 0,
    ):
        self.lock = threading.Lock()
        self.n = 0
        self.storms_at, self.bursts_at, self.burst_len = set(storms_at), bursts_at, burst_len
        self.hangs_at, self.malformed_every = set(hangs_at), malformed_every
        self.hold_at = set(hold_at)
        # From request ``bad_from`` on, this share of all requests (re-asks included) gets a
        # malformed answer, so some calls fail for good after every re-ask (at any level).
        self.bad_share, self.bad_from = bad_share, bad_from
        self.storm_until = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.held_due = threading.Event()
        self.held: list[int] = []
        self.counts: dict[str, int] = {}

    def release(self) -> None:
        self.held_due.clear()
        self.gate.set()

    def _count(self, tag: str) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def __call__(self, req: dict) -> Reply:
        now = time.monotonic()
        with self.lock:
            self.n += 1
            i = self.n
            if i in self.hold_at:
                self.gate.clear()
                self.held_due.set()
            if i in self.storms_at:
                self.storm_until = now + STORM_S
            storm = now < self.storm_until
        if not self.gate.is_set():
            with self.lock:
                self.held.append(i)
            self.gate.wait(600)
        role, answer = sample_answer(req)
        with self.lock:
            if storm:
                self._count("429")
                return Reply(status=429, content="Rate limit reached; retry later", headers={"Retry-After": str(RETRY_AFTER_S)}, tag="429")
            if any(b <= i < b + self.burst_len for b in self.bursts_at):
                self._count("500")
                return Reply(status=500, content="The server had an error while processing your request", tag="500")
            if i in self.hangs_at:
                self._count("hang")
                return Reply(content=answer, delay_s=2 * TIMEOUT_S, tag="hang")
            if self.bad_share and i > self.bad_from and _h(json.dumps(req, sort_keys=True) + f"#{i}") % 1000 < self.bad_share * 1000:
                self._count("malformed")
                return Reply(content=malformed_answer(role, i), tag="malformed")
            first_try = not any(m.get("role") == "assistant" for m in req.get("messages", []))
            if self.malformed_every and first_try and _h(json.dumps(req, sort_keys=True)) % self.malformed_every == 0:
                self._count("malformed")
                return Reply(content=malformed_answer(role, i), tag="malformed")
            self._count("ok")
        return Reply(content=answer, tag="ok")


# -- running the CLI -------------------------------------------------------------------------------
def settings(url: str, cache: Path) -> list[str]:
    s = {
        "build.architect.kind": "llm",
        "build.annotator.kind": "llm",
        "build.root_descriptors": 8,
        "build.child_descriptors": 3,
        "build.min_cluster_size": 30,
        "build.max_depth": 2,
        "build.n_representatives": 16,
        "assign.assigner": "llm",
        "assign.llm": "default",
        "llms.default.backend": "openai",
        "llms.default.base_url": url,
        "llms.default.model": "fake-model",
        "llms.default.api_key_env": "AGENTICTAGGER_BENCH_KEY_UNSET",
        "llms.default.timeout_s": TIMEOUT_S,
        "llms.default.max_retries": 6,
        "llms.default.backoff_base_s": 0.05,
        "llms.default.backoff_max_s": 2.0,
        "llms.default.max_concurrency": 4,
        "cache_dir": str(cache),
        "disk_reserve_mb": 1,
    }
    out: list[str] = []
    for k, v in s.items():
        out += ["--set", f"{k}={v}"]
    return out


def env() -> dict[str, str]:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "COLUMNS": "100"}
    e.pop("AGENTICTAGGER_BENCH_KEY_UNSET", None)
    return e


class Scenario:
    def __init__(self, name: str, script: FaultScript, catalog: Path, template_cache: Path | None):
        self.name = name
        self.dir = RUNS / name
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.catalog = catalog
        self.cache = self.dir / "cache"
        if template_cache is not None:
            shutil.copytree(template_cache, self.cache)
        self.run_dir = self.dir / "run"
        self.script = script
        self.server = FakeOpenAIServer(handler=script).start()
        self.invocations: list[dict[str, Any]] = []
        self.kills: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def command(self, stage: str, *extra: str, run_dir: Path | None = None) -> list[str]:
        return [CLI, stage, "--catalog", str(self.catalog), "--run-dir", str(run_dir or self.run_dir),
                *settings(self.server.url, self.cache), *extra]

    def run(self, stage: str, *extra: str, kill_on_hold: bool = False, label: str | None = None) -> int:
        """One CLI invocation; with ``kill_on_hold`` it is killed (SIGKILL) when the script holds."""
        k = len(self.invocations) + 1
        log = self.dir / f"{k:02d}_{label or stage}.log"
        before = self.server.request_count
        t0 = time.monotonic()
        with open(log, "w") as fh:
            p = subprocess.Popen(self.command(stage, *extra), env=env(), cwd=self.dir, stdout=fh, stderr=subprocess.STDOUT)
            while p.poll() is None:
                if kill_on_hold and self.script.held_due.is_set():
                    time.sleep(KILL_SETTLE_S)
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    at = time.monotonic()
                    self.kills.append({"stage": stage, "at_request": min(self.script.held) if self.script.held else None,
                                       "kill_time": at, "held": len(self.script.held)})
                    self.script.held.clear()
                    self.script.release()
                    break
                time.sleep(0.02)
        rc = p.wait()
        self.invocations.append({
            "command": f"{stage} {' '.join(extra)}".strip(), "label": label or stage, "exit_code": rc,
            "seconds": round(time.monotonic() - t0, 1), "server_requests": self.server.request_count - before,
            "log": str(log.relative_to(ROOT)), "last_line": _last_line(log),
        })
        return rc

    def run_until_done(self, stage: str, *, kill_on_hold: bool = False, tries: int = 8) -> int:
        rc = -1
        for _ in range(tries):
            rc = self.run(stage, kill_on_hold=kill_on_hold)
            if rc == 0 or (rc != -signal.SIGKILL and len([i for i in self.invocations if i["label"] == stage and i["exit_code"] not in (0, -9)]) >= 2):
                break
        return rc

    def stop(self) -> None:
        self.script.release()
        self.server.stop()


def _rel(text: str) -> str:
    """``text`` with this checkout's absolute path cut to a relative one."""
    return text.replace(str(ROOT) + os.sep, "")


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return _rel(lines[-1][:300]) if lines else ""


# -- measuring -------------------------------------------------------------------------------------
def outputs(run: Path) -> dict[str, Any] | None:
    """What an interrupted run must reproduce: descriptors, paths and semantic IDs (no timings)."""
    vocab, sids, assign = run / "vocabulary.json", run / "semantic_ids.jsonl", run / "assignments.jsonl"
    if not (vocab.exists() and sids.exists() and assign.exists()):
        return None
    rows = [json.loads(ln) for ln in assign.read_text().splitlines() if ln.strip()]
    return {
        "descriptors": json.loads(vocab.read_text())["descriptors"],
        "assignments": [r for r in rows if "meta" not in r],
        "semantic_ids": sids.read_text(),
    }


def items_lost(run: Path, ids: list[str]) -> int:
    sids = run / "semantic_ids.jsonl"
    if not sids.exists():
        return len(ids)
    got = {}
    for ln in sids.read_text().splitlines():
        if ln.strip():
            r = json.loads(ln)
            got[str(r.get("item_id"))] = r.get("path") or r.get("sid")
    return sum(1 for i in ids if not got.get(i))


def usage_calls(run: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("usage.json", "assign_usage.json"):
        p = run / name
        out[name] = json.loads(p.read_text())["total"] if p.exists() else None
    log_sum = 0
    for name in ("usage.jsonl", "assign_usage.jsonl"):
        p = run / name
        if p.exists():
            for ln in p.read_text().splitlines():
                try:
                    log_sum += json.loads(ln).get("calls", 0)
                except ValueError:
                    pass
    calls = sum((t or {}).get("calls", 0) for t in out.values())
    cache_hits = sum((t or {}).get("cache_hits", 0) for t in out.values())
    answered = sum((t or {}).get("answered", 0) for t in out.values())
    tokens = sum((t or {}).get("prompt_tokens", 0) + (t or {}).get("completion_tokens", 0) for t in out.values())
    return {"calls": calls, "calls_in_logs": log_sum, "cache_hits": cache_hits, "answered": answered, "tokens": tokens}


def _excused(r: Any, kills: list[dict[str, Any]], window: tuple[float, float] | None) -> bool:
    """Whether the client could not have kept this answer: in flight at a kill, a hung request the
    client had timed out, or finished while the disk was full (``window``)."""
    in_flight = any(r.received_at <= k["kill_time"] and (r.finished_at is None or r.finished_at >= k["kill_time"] - 0.05) for k in kills)
    full = window is not None and window[0] <= (r.finished_at or 0) <= window[1]
    # A malformed answer is paid but cannot be kept: the item is asked again (on a re-ask, or by a rerun).
    return in_flight or r.tag in ("hang", "malformed") or full


def _tokens(r: Any) -> int:
    u = r.usage or {}
    return int(u.get("prompt_tokens", 0)) + int(u.get("completion_tokens", 0))


def repeats(requests: list[Any], kills: list[dict[str, Any]], window: tuple[float, float] | None = None) -> dict[str, int]:
    """Paid answers (HTTP 200) to a request body that had already been paid for; excused when the
    earlier answer could not have been kept (:func:`_excused`). Also the tokens billed for paid
    answers, and those of answers the client never got."""
    first: dict[str, Any] = {}
    out = {"paid": 0, "repeated": 0, "repeated_excused": 0, "repeated_beyond_in_flight": 0,
           "tokens_billed": 0, "tokens_not_received": 0}
    for r in sorted(requests, key=lambda r: r.received_at):
        if r.status != 200:
            continue
        out["paid"] += 1
        out["tokens_billed"] += _tokens(r)
        if _excused(r, kills, window):
            out["tokens_not_received"] += _tokens(r)
        key = body_key(r.body)
        prev = first.get(key)
        if prev is None:
            first[key] = r
            continue
        out["repeated"] += 1
        if _excused(prev, kills, window):
            out["repeated_excused"] += 1
            first[key] = r
        else:
            out["repeated_beyond_in_flight"] += 1
    return out


def retry_after_gaps(requests: list[Any]) -> dict[str, Any]:
    """Seconds between each 429 and the next try of the same request."""
    last_429: dict[str, float] = {}
    gaps = []
    for r in sorted(requests, key=lambda r: r.received_at):
        key = body_key(r.body)
        if key in last_429:
            gaps.append(r.received_at - last_429.pop(key))
        if r.status == 429:
            last_429[key] = r.finished_at or r.received_at
    return {"retried_429s": len(gaps), "min_gap_s": round(min(gaps), 3) if gaps else None,
            "retry_after_s": RETRY_AFTER_S, "honoured": bool(gaps) and min(gaps) >= RETRY_AFTER_S - 0.05}


def measure(sc: Scenario, ids: list[str], baseline: dict[str, Any] | None, run: Path | None = None,
            window: tuple[float, float] | None = None) -> dict[str, Any]:
    run = run or sc.run_dir
    reqs = [r for r in sc.server.requests if r.path.endswith("/chat/completions")]
    usage = usage_calls(run)
    got = outputs(run)
    rep = repeats(reqs, sc.kills, window)
    statuses: dict[str, int] = {}
    for r in reqs:
        key = r.tag or str(r.status)
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "items": len(ids),
        "items_lost": items_lost(run, ids),
        "server_requests": len(reqs),
        "server_replies": statuses,
        "usage_calls": usage["calls"],
        "usage_calls_in_logs": usage["calls_in_logs"],
        "usage_matches_server": usage["calls"] == len(reqs) == usage["calls_in_logs"],
        "usage_tokens": usage["tokens"],
        "server_tokens_billed": rep["tokens_billed"],
        "server_tokens_not_received": rep["tokens_not_received"],  # billed for answers excused as in flight
        # Usage never counts more than the server billed, and counts less only by answers the client
        # could not have logged (in flight at a kill, timed out, or while the disk was full).
        "usage_tokens_match_server": 0 <= rep["tokens_billed"] - usage["tokens"] <= rep["tokens_not_received"],
        "usage_cache_hits": usage["cache_hits"],
        "usage_answered": usage["answered"],
        "paid_answers": rep["paid"],
        "paid_repeated": rep["repeated"],
        "paid_repeated_in_flight": rep["repeated_excused"],
        "paid_repeated_beyond_in_flight": rep["repeated_beyond_in_flight"],
        "exit_codes": [i["exit_code"] for i in sc.invocations],
        "final_exit_code": sc.invocations[-1]["exit_code"] if sc.invocations else None,
        "outputs_match_uninterrupted": None if baseline is None else (got is not None and got == baseline),
        "leftover_tmp_files": sorted(str(q.relative_to(run)) for q in run.rglob("*.tmp*")) if run.exists() else [],
        "invocations": sc.invocations,
        "kills": [{k: v for k, v in kill.items() if k != "kill_time"} for kill in sc.kills],
        "seconds": round(time.monotonic() - sc.t0, 1),
    }


# -- scenarios -------------------------------------------------------------------------------------
def plain(name: str, script: FaultScript, ctx: dict[str, Any]) -> tuple[Scenario, dict[str, Any]]:
    sc = Scenario(name, script, ctx["catalog"], ctx["cache"])
    try:
        sc.run_until_done("build")
        sc.run_until_done("assign")
        return sc, measure(sc, ctx["ids"], ctx["baseline"])
    finally:
        sc.stop()


def kill9(ctx: dict[str, Any]) -> tuple[Scenario, dict[str, Any]]:
    total = ctx["build_requests"] + ctx["assign_requests"]
    rng = random.Random(KILL_SEED)
    points = sorted(rng.sample(range(2, total), N_KILLS))
    sc = Scenario("kill9", FaultScript(hold_at=tuple(points)), ctx["catalog"], ctx["cache"])
    try:
        sc.run_until_done("build", kill_on_hold=True)
        sc.run_until_done("assign", kill_on_hold=True)
        res = measure(sc, ctx["ids"], ctx["baseline"])
    finally:
        sc.stop()
    res["kill_points"] = {"seed": KILL_SEED, "requests": points, "of_uninterrupted_requests": total,
                          "settle_s": KILL_SETTLE_S}
    return sc, res


def concurrent(ctx: dict[str, Any]) -> tuple[Scenario, dict[str, Any]]:
    """Build A is held by the server after 40 requests; B (same command) must stop at once; C
    (--wait) must wait, then take over a finished run folder without paying again. Then an
    assignment is held the same way while a second assignment starts."""
    hold_build, hold_assign = 40, ctx["build_requests"] + 40
    script = FaultScript(hold_at=(hold_build, hold_assign))
    sc = Scenario("concurrent", script, ctx["catalog"], ctx["cache"])
    notes: dict[str, Any] = {}
    try:
        for stage in ("build", "assign"):
            log_a = open(sc.dir / f"{stage}_A.log", "w")
            a = subprocess.Popen(sc.command(stage), env=env(), cwd=sc.dir, stdout=log_a, stderr=subprocess.STDOUT)
            t0 = time.monotonic()
            while not script.held_due.is_set() and a.poll() is None:
                time.sleep(0.02)
            stable, last = time.monotonic(), -1
            while time.monotonic() - stable < 0.5:  # until A's other requests are held too
                if len(script.held) != last:
                    last, stable = len(script.held), time.monotonic()
                time.sleep(0.05)
            sc.run(stage, label=f"{stage}_B_second_run")
            c = None
            if stage == "build":
                log_c = open(sc.dir / "build_C_wait.log", "w")
                c = subprocess.Popen(sc.command(stage, "--wait"), env=env(), cwd=sc.dir, stdout=log_c, stderr=subprocess.STDOUT)
                deadline = time.monotonic() + 120
                while "waiting" not in (sc.dir / "build_C_wait.log").read_text() and time.monotonic() < deadline and c.poll() is None:
                    time.sleep(0.05)
                notes["build_C_waited"] = "waiting" in (sc.dir / "build_C_wait.log").read_text()
            script.held.clear()
            script.release()
            rc_a = a.wait()
            log_a.close()
            sc.invocations.append({"command": stage, "label": f"{stage}_A_first_run", "exit_code": rc_a,
                                   "seconds": round(time.monotonic() - t0, 1), "server_requests": None,
                                   "log": str((sc.dir / f"{stage}_A.log").relative_to(ROOT)),
                                   "last_line": _last_line(sc.dir / f"{stage}_A.log")})
            if c is not None:
                before = sc.server.request_count
                t1 = time.monotonic()
                rc_c = c.wait()
                log_c.close()
                sc.invocations.append({"command": "build --wait", "label": "build_C_wait", "exit_code": rc_c,
                                       "seconds": round(time.monotonic() - t1, 1),
                                       "server_requests_after_A_ended": sc.server.request_count - before,
                                       "log": str((sc.dir / "build_C_wait.log").relative_to(ROOT)),
                                       "last_line": _last_line(sc.dir / "build_C_wait.log")})
        res = measure(sc, ctx["ids"], ctx["baseline"])
    finally:
        sc.stop()
    second = [i for i in sc.invocations if "second_run" in i["label"]]
    res["second_runs_stopped_at_once"] = all(i["exit_code"] == 2 and i["server_requests"] == 0 for i in second)
    res.update(notes)
    # The runs that must succeed: A (both stages) and C.
    res["final_exit_code"] = max(abs(i["exit_code"]) for i in sc.invocations if "second_run" not in i["label"])
    return sc, res


N_ASSIGN_KILLS = 3
BAD_SHARE = 0.6


def kill9_assign(ctx: dict[str, Any]) -> tuple[Scenario, dict[str, Any]]:
    """kill -9 only while the LLM assignment runs (the build runs uninterrupted first), at
    seeded request numbers of the assignment; then the assignment is resumed until it ends."""
    b, a = ctx["build_requests"], ctx["assign_requests"]
    rng = random.Random(KILL_SEED + 1)
    points = sorted(b + k for k in rng.sample(range(2, a), N_ASSIGN_KILLS))
    sc = Scenario("kill9_assign", FaultScript(hold_at=tuple(points)), ctx["catalog"], ctx["cache"])
    try:
        sc.run_until_done("build")
        sc.run_until_done("assign", kill_on_hold=True)
        res = measure(sc, ctx["ids"], ctx["baseline"])
    finally:
        sc.stop()
    res["kill_points"] = {"seed": KILL_SEED + 1, "requests": points, "of_uninterrupted_requests": b + a,
                          "assign_requests_from": b + 1, "settle_s": KILL_SETTLE_S}
    return sc, res


def assign_rerun_after_failure(ctx: dict[str, Any]) -> tuple[Scenario, dict[str, Any]]:
    """The assignment's calls get a malformed answer 60 % of the time (re-asks included), so calls
    fail for good at every level and the assignment fails (exit 1); rerun with good answers, every
    item whose call failed at any level must be asked again: every path complete, outputs equal
    to the uninterrupted run."""
    script = FaultScript(bad_share=BAD_SHARE, bad_from=ctx["build_requests"])
    sc = Scenario("assign_rerun_after_failure", script, ctx["catalog"], ctx["cache"])
    try:
        sc.run_until_done("build")
        first = sc.run("assign", label="assign_with_malformed_answers")
        script.bad_share = 0.0
        sc.run("assign", label="assign_rerun")
        res = measure(sc, ctx["ids"], ctx["baseline"])
    finally:
        sc.stop()
    partial = sc.run_dir / "assignments.jsonl"
    meta = json.loads(partial.read_text().splitlines()[0]).get("meta", {}) if partial.exists() else {}
    base_paths = {r["item_id"]: r["path"] for r in (ctx["baseline"] or {}).get("assignments", [])}
    got = {r["item_id"]: r["path"] for r in (outputs(sc.run_dir) or {}).get("assignments", [])}
    res["first_assign_exit_code"] = first
    res["first_assign_last_line"] = sc.invocations[1]["last_line"] if len(sc.invocations) > 1 else ""
    res["unfinished_paths_after_rerun"] = meta.get("unfinished_paths")
    res["empty_paths_after_rerun"] = meta.get("empty_paths")
    res["paths_shorter_than_uninterrupted"] = sum(1 for i, p in base_paths.items() if len(got.get(i, [])) < len(p))
    res["how"] = (f"from the first assignment request on, {BAD_SHARE:.0%} of all requests (re-asks included) get a malformed "
                  "answer; the assignment fails, then is run again with good answers")
    return sc, res


DISKFULL_SH = r"""
set -u
mount -t tmpfs -o size=16m tmpfs "$MNT" || exit 97
( while [ ! -e "$TRIGGER" ]; do sleep 0.02; done
  dd if=/dev/zero of="$MNT/filler" bs=64k >/dev/null 2>&1
  touch "$FILLED" ) &
cd "$WORK"
"$@" build > 01_build_disk_full.log 2>&1; echo $? > rc1
df -k "$MNT" | tail -1 > df_full.txt
cp -a "$MNT/run" "$WORK/run_when_full" 2>/dev/null
rm -f "$MNT/filler"
"$@" build > 02_build_resume.log 2>&1; echo $? > rc2
"$@" assign > 03_assign.log 2>&1; echo $? > rc3
cp -a "$MNT/run" "$WORK/run"
"""


def disk_full(ctx: dict[str, Any]) -> tuple[Scenario | None, dict[str, Any]]:
    if shutil.which("unshare") is None:
        return None, {"skipped": "no `unshare` on this machine: a full disk needs a small filesystem (tmpfs) to fill"}
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, {"skipped": "unprivileged user+mount namespaces are not allowed here (`unshare -Urm`: "
                      f"{probe.stderr.strip()[:200]}); filling a real disk or mounting a small one needs root"}
    trigger_at = 200  # mid root annotation
    sc = Scenario("disk_full", FaultScript(hold_at=(trigger_at,)), ctx["catalog"], ctx["cache"])
    mnt = sc.dir / "mnt"
    mnt.mkdir()
    trigger, filled = sc.dir / "fill_now", sc.dir / "filled"
    (sc.dir / "diskfull.sh").write_text(DISKFULL_SH)
    base = sc.command("build", run_dir=mnt / "run")
    # "$@" build ... : the command with its stage word replaced per call.
    cli_and_rest = [base[0]]
    tail = base[2:]
    wrapper = sc.dir / "cli.sh"
    wrapper.write_text("#!/bin/sh\nstage=$1; shift\nexec " + " ".join(_q(x) for x in cli_and_rest) + ' "$stage" ' + " ".join(_q(x) for x in tail) + "\n")
    wrapper.chmod(0o755)
    e = {**env(), "MNT": str(mnt), "TRIGGER": str(trigger), "FILLED": str(filled), "WORK": str(sc.dir)}
    fill_time: list[float] = []

    def filler_sync() -> None:  # hold the server while the disk is filled, then answer again
        while sc.server._httpd is not None:
            if sc.script.held_due.is_set():
                trigger.touch()
                deadline = time.monotonic() + 60
                while not filled.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                fill_time.append(time.monotonic())
                sc.script.held.clear()
                sc.script.release()
                while not (sc.dir / "rc1").exists() and time.monotonic() < deadline + 600:
                    time.sleep(0.02)
                fill_time.append(time.monotonic())  # the failed run has ended
                return
            time.sleep(0.02)

    th = threading.Thread(target=filler_sync, daemon=True)
    th.start()
    t0 = time.monotonic()
    try:
        p = subprocess.run(["unshare", "-Urm", "bash", str(sc.dir / "diskfull.sh"), str(wrapper)], env=e, cwd=sc.dir,
                           capture_output=True, text=True, timeout=900)
        logs = ["01_build_disk_full.log", "02_build_resume.log", "03_assign.log"]
        for k, name in enumerate(logs, 1):
            rc_file = sc.dir / f"rc{k}"
            rc = int(rc_file.read_text()) if rc_file.exists() else None
            sc.invocations.append({"command": ["build (disk fills)", "build (space freed)", "assign"][k - 1], "label": name[3:-4],
                                   "exit_code": rc, "log": str((sc.dir / name).relative_to(ROOT)) if (sc.dir / name).exists() else None,
                                   "last_line": _last_line(sc.dir / name) if (sc.dir / name).exists() else ""})
        res = measure(sc, ctx["ids"], ctx["baseline"], run=sc.dir / "run", window=(fill_time[0], fill_time[1]) if len(fill_time) == 2 else None)
        res["namespace_exit"] = p.returncode
        if p.returncode:
            res["namespace_stderr"] = p.stderr[-1000:]
        full = sc.dir / "run_when_full"
        res["when_full"] = {
            "df_kb_size_used_avail": _rel((sc.dir / "df_full.txt").read_text()).split()[1:4] if (sc.dir / "df_full.txt").exists() else None,
            "vocabulary_written": (full / "vocabulary.json").exists(),
            "usage_json_bytes": (full / "usage.json").stat().st_size if (full / "usage.json").exists() else None,
            "tmp_files": sorted(str(q.relative_to(full)) for q in full.rglob("*tmp*")) if full.exists() else None,
        }
        res["seconds"] = round(time.monotonic() - t0, 1)
    finally:
        sc.stop()
    res["how"] = ("run folder on a 16 MB tmpfs in an unprivileged user+mount namespace (`unshare -Urm`); at request "
                  f"{trigger_at} the server holds new requests while the tmpfs is filled with a file, then answers "
                  "again; after the failed run the file is removed and the build resumed, then assign runs")
    return sc, res


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=0, help="first N items of the sample catalog (0 = all 304)")
    ap.add_argument("--only", nargs="*", help="scenarios to run (baseline always runs)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    started = time.monotonic()
    RUNS.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(ln) for ln in CATALOG.read_text().splitlines() if ln.strip()]
    if args.items:
        rows = rows[: args.items]
    catalog = RUNS / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ids = [str(r["item_id"]) for r in rows]
    ctx: dict[str, Any] = {"catalog": catalog, "ids": ids, "baseline": None, "cache": None}

    results: dict[str, Any] = {}
    sc, res = plain("baseline", FaultScript(), ctx)
    base_out = outputs(sc.run_dir)
    res["outputs_match_uninterrupted"] = True if base_out is not None else False
    results["baseline"] = res
    ctx["baseline"] = base_out
    ctx["build_requests"] = sc.invocations[0]["server_requests"]
    ctx["assign_requests"] = sc.invocations[1]["server_requests"]
    template = RUNS / "_embedding_cache"
    if template.exists():
        shutil.rmtree(template)
    shutil.copytree(sc.cache, template, ignore=shutil.ignore_patterns("llm"))
    ctx["cache"] = template
    b = ctx["build_requests"]
    plan = {
        "429_storm": lambda: plain("429_storm", FaultScript(storms_at=(60, b + 60)), ctx),
        "500_bursts": lambda: plain("500_bursts", FaultScript(bursts_at=(30, b // 2, b + 100)), ctx),
        "hangs": lambda: plain("hangs", FaultScript(hangs_at=(20, b // 2, b + 50, b + 300)), ctx),
        "malformed": lambda: plain("malformed", FaultScript(malformed_every=4), ctx),
        "kill9": lambda: kill9(ctx),
        "concurrent": lambda: concurrent(ctx),
        "disk_full": lambda: disk_full(ctx),
        "kill9_assign": lambda: kill9_assign(ctx),
        "assign_rerun_after_failure": lambda: assign_rerun_after_failure(ctx),
    }
    for name, fn in plan.items():
        if args.only and name not in args.only:
            continue
        print(f"-- {name}", flush=True)
        sc2, res = fn()
        if name == "429_storm" and sc2 is not None:
            res["retry_after"] = retry_after_gaps([r for r in sc2.server.requests if r.path.endswith("/chat/completions")])
        results[name] = res

    checks = {}
    for name, r in results.items():
        if "skipped" in r:
            continue
        checks[name] = {
            "items_lost_0": r["items_lost"] == 0,
            "no_paid_repeats_beyond_in_flight": r["paid_repeated_beyond_in_flight"] == 0,
            "usage_matches_server": r["usage_matches_server"],
            "usage_tokens_match_server": r["usage_tokens_match_server"],
            "final_exit_0": r["final_exit_code"] == 0,
            "outputs_match": r["outputs_match_uninterrupted"] is True,
            "no_leftover_tmp_files": not r["leftover_tmp_files"],
        }
        if "retry_after" in r:
            checks[name]["retry_after_honoured"] = r["retry_after"]["honoured"]
        if name == "concurrent":
            checks[name]["second_runs_stopped_at_once"] = r["second_runs_stopped_at_once"]
            checks[name]["wait_queued"] = r.get("build_C_waited") is True
        if name == "disk_full":
            first = r["invocations"][0]
            checks[name]["full_disk_fails_with_one_line"] = first["exit_code"] not in (0, None) and first["last_line"].startswith("build failed: the disk is full")
        if name == "kill9":
            checks[name]["five_kills_landed"] = len(r["kills"]) == N_KILLS
        if name == "kill9_assign":
            checks[name]["kills_landed_during_assign"] = len(r["kills"]) == N_ASSIGN_KILLS and all(k["stage"] == "assign" for k in r["kills"])
        if name == "assign_rerun_after_failure":
            checks[name]["first_assign_failed"] = r["first_assign_exit_code"] == 1
            checks[name]["every_path_complete"] = (r["unfinished_paths_after_rerun"] == 0 and r["empty_paths_after_rerun"] == 0
                                                   and r["paths_shorter_than_uninterrupted"] == 0)
    report = {
        "command": "OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/reliability.py"
        + (f" --items {args.items}" if args.items else "") + (f" --only {' '.join(args.only)}" if args.only else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "catalog": f"src/agentictagger/data/sample_catalog.jsonl ({len(ids)} items)",
        "server": "tests/fake_openai_server.py, scripted by FaultScript in this file",
        "settings": "LLM architect + annotator (build), LLM assigner (assign); root_descriptors=8, child_descriptors=3, "
        f"min_cluster_size=30, max_depth=2; max_concurrency=4, timeout_s={TIMEOUT_S}, max_retries=6, backoff_max_s=2",
        "uninterrupted_requests": {"build": ctx["build_requests"], "assign": ctx["assign_requests"]},
        "kill_seed": KILL_SEED,
        "scenarios": results,
        "checks": checks,
        "all_pass": all(all(c.values()) for c in checks.values()),
        "total_seconds": round(time.monotonic() - started, 1),
        "caveats": [
            "The server answers deterministically (a hash of the item text and the offered names picks the "
            "descriptor; the architect proposes fixed names), so 'outputs match' compares byte-identical "
            "descriptors, assignments and semantic IDs with the uninterrupted baseline. The answers are not "
            "meaningful categories: this measures run bookkeeping, not quality.",
            "Paid = an HTTP 200 from the server (what a provider bills, delivered or not). A repeat is excused "
            "when the earlier answer was in flight at a kill, belonged to a hung request the client had timed "
            "out, arrived after the disk filled (the answer could not be logged, so it was not kept), or was "
            "malformed (paid but invalid: the item is asked again by design).",
            f"Kill points are request numbers drawn with random.Random({KILL_SEED}) from the uninterrupted run's "
            f"request count; the server holds new requests for {KILL_SETTLE_S}s before the SIGKILL, so answers "
            "already sent had time to be stored; kills therefore land during LLM calls, not during embedding "
            "or file writes.",
            "usage_matches_server: usage.json + assign_usage.json 'calls' == requests the server received == "
            "the sum of the calls in usage.jsonl + assign_usage.jsonl. Tokens: a provider bills answers the "
            "client never read (in flight at a kill, timed out, or arriving when the disk was full), so the "
            "check is 0 <= server-billed tokens - usage tokens <= tokens of those answers.",
        ],
    }
    write_result(args.out, report)
    print_table(report)


def table_lines(report: dict[str, Any]) -> list[str]:
    """The summary table (markdown), as printed and as in bench/RESULTS.md."""
    out = ["| scenario | items lost | server requests | usage calls | usage = server (calls, tokens) | paid answers repeated | beyond in flight | exit codes | outputs = uninterrupted |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["scenarios"].items():
        if "skipped" in r:
            out.append(f"| {name} | skipped: {r['skipped']} | | | | | | | |")
            continue
        out.append(f"| {name} | {r['items_lost']} | {r['server_requests']} | {r['usage_calls']} | "
                   f"{r['usage_matches_server']}, {r['usage_tokens_match_server']} | {r['paid_repeated']} | "
                   f"{r['paid_repeated_beyond_in_flight']} | {' '.join(str(c) for c in r['exit_codes'])} | "
                   f"{r['outputs_match_uninterrupted']} |")
    return out


def print_table(report: dict[str, Any]) -> None:
    print("\n".join(table_lines(report)))
    failed = [f"{n}.{k}" for n, c in report["checks"].items() for k, v in c.items() if not v]
    print(f"all pass: {report['all_pass']}{' (failed: ' + ', '.join(failed) + ')' if failed else ''}  ({report['total_seconds']} s)")


if __name__ == "__main__":
    main()
