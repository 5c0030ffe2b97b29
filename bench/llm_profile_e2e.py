"""The local-LLM profile end to end: cost, a rerun that pays nothing, a kill -9 that loses nothing.

For each catalog (all items):
  1. ``build`` + ``assign`` with the local-LLM profile (Qwen2.5-Coder-1.5B names level 1) into a
     fresh run folder with a fresh response cache: wall time, LLM calls, tokens;
  2. the same build into another fresh run folder sharing that cache: must make 0 new calls (all
     answers come from the cache) and give the identical vocabulary;
  3. a third build with its own fresh cache, killed with SIGKILL once it has made ``--kill-after``
     LLM calls, then resumed with the same command: the resumed build must give the identical
     vocabulary; requests sent before the kill + after (the usage log, which counts every request
     once it has been sent) are compared with the uninterrupted run's, so a request sent twice
     (in flight at the kill, or re-sent on resume) shows as a difference.

  nice python bench/llm_profile_e2e.py [--catalogs scientific beauty]

writes bench/results/llm_profile_e2e.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command_line, write_result  # noqa: E402

PROFILE = [
    "build.naming.kind=llm",
    "build.naming.max_level=1",
    "llms.namer.backend=local",
    "llms.namer.model_path=qwen2.5-coder-1.5b-instruct",
    "llms.namer.n_threads=2",
]
EXE = str(REPO / ".venv" / "bin" / "agentictagger")
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def flags(run_dir: Path, cache: Path, catalog: str) -> list[str]:
    path = f"shared:{catalog}"  # the dataset loader: its fields and labels
    sets = [*PROFILE, f"cache_dir={cache}"]
    return ["--catalog", path, "--run-dir", str(run_dir), *[x for s in sets for x in ("--set", s)]]


def usage(run_dir: Path) -> dict:
    u = json.loads((run_dir / "usage.json").read_text())
    t = u.get("total", {})
    return {k: t.get(k, 0) for k in ("calls", "answered", "cache_hits", "reasks", "prompt_tokens", "completion_tokens")}


def namer_calls(cache: Path) -> int:
    """Answers stored in a response cache: each request was paid for once."""
    import sqlite3

    db = cache / "llm" / "llm_responses.sqlite3"
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # Answers only: not the kept "no valid answer" verdicts (llm/client.py).
        return int(con.execute("select count(*) from responses where key not like '%:no-valid-answer'").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0
    finally:
        con.close()


def vocab_signature(run_dir: Path) -> list:
    v = json.loads((run_dir / "vocabulary.json").read_text())
    return sorted((d["id"], d["name"], d["item_count"]) for d in v["descriptors"])


def fresh_cache(cache: Path) -> Path:
    """A response cache with no LLM answers, seeded with the shared embedding cache (item vectors
    are not what this bench measures)."""
    emb = REPO / ".cache" / "agentictagger" / "embeddings"
    if emb.exists() and not (cache / "embeddings").exists():
        shutil.copytree(emb, cache / "embeddings")
    return cache


def build(run_dir: Path, cache: Path, catalog: str) -> float:
    t0 = time.monotonic()
    subprocess.run([EXE, "build", *flags(run_dir, cache, catalog)], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def run_catalog(catalog: str, kill_after: int) -> dict:
    base = REPO / "bench" / "runs" / "e2e" / catalog
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    out: dict = {"catalog": catalog, "profile": PROFILE}
    # 1. uninterrupted, fresh cache
    a, cache_a = base / "a", fresh_cache(base / "cache_a")
    wall = build(a, cache_a, catalog)
    t0 = time.monotonic()
    subprocess.run([EXE, "assign", *flags(a, cache_a, catalog)], check=True, env=ENV, stdout=subprocess.DEVNULL)
    out["first_run"] = {"build_wall_s": round(wall, 1), "assign_wall_s": round(time.monotonic() - t0, 1), **usage(a)}
    vocab = json.loads((a / "vocabulary.json").read_text())
    out["first_run"]["names_by_level"] = vocab["meta"].get("names_by_level")
    out["first_run"]["level1"] = [d["name"] for d in vocab["descriptors"] if d["level"] == 1]
    # 2. rerun into a new folder with the same cache
    b = base / "b"
    wall_b = build(b, cache_a, catalog)
    ub = usage(b)
    out["rerun_same_cache"] = {
        "build_wall_s": round(wall_b, 1),
        **ub,
        "new_calls": ub["calls"],  # requests sent to the server (valid or not)
        "identical_vocabulary": vocab_signature(a) == vocab_signature(b),
    }
    # 3. kill -9 after some paid calls, then resume
    c, cache_c = base / "c", fresh_cache(base / "cache_c")
    proc = subprocess.Popen([EXE, "build", *flags(c, cache_c, catalog)], env=ENV, stdout=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    killed_at = None
    while proc.poll() is None:
        time.sleep(0.5)
        if namer_calls(cache_c) >= kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at = namer_calls(cache_c)
            break
    before = namer_calls(cache_c)
    wall_c = build(c, cache_c, catalog)
    after_total = namer_calls(cache_c)
    uc = usage(c)
    out["kill9_resume"] = {
        "killed": killed_at is not None,
        "answers_cached_at_kill": before,
        "seconds_before_kill": round(time.monotonic() - t0 - wall_c, 1),
        "resume_wall_s": round(wall_c, 1),
        "answers_cached_after_resume": after_total,
        "uninterrupted_calls": namer_calls(cache_a),
        "usage_after_resume": uc,
        "identical_vocabulary": vocab_signature(a) == vocab_signature(c),  # to the uninterrupted run
        **resume_accounting(out["first_run"], uc),
    }
    out["kill9_resume"].update(verify_resume(catalog, a))
    return out


def resume_accounting(uninterrupted: dict, resumed: dict) -> dict:
    """Requests paid across a kill and a resume, against an uninterrupted run.

    Counted from the usage log (every request the server got, answered or not, logged once it has
    been sent), not from the response cache, which holds one row per request key and so cannot
    show a request that was sent twice. Requests beyond the uninterrupted run's are requests
    repeated across the kill (in flight at it, or re-sent on resume)."""
    extra = int(resumed["calls"]) - int(uninterrupted["calls"])
    return {
        "requests_sent": int(resumed["calls"]),
        "uninterrupted_requests_sent": int(uninterrupted["calls"]),
        "requests_sent_beyond_uninterrupted": extra,
        "no_request_sent_twice": extra == 0,
    }


def verify_resume(catalog: str, a: Path) -> dict:
    """The resumed build against a rebuild from the very same answers (its cache, a fresh folder).

    llama.cpp's greedy answers to the same request can differ between server runs (prompt-cache
    and batch state), so the killed run's fresh answers may differ from the uninterrupted run's;
    what resume must guarantee is that the vocabulary is the one its answers determine.
    """
    base = a.parent
    c, d = base / "c", base / "d"
    if d.exists():
        shutil.rmtree(d)
    build(d, base / "cache_c", catalog)
    ud = usage(d)

    def answers(cache: Path) -> dict:
        import sqlite3

        con = sqlite3.connect(f"file:{cache / 'llm' / 'llm_responses.sqlite3'}?mode=ro", uri=True)
        try:
            return dict(con.execute("select key, parsed from responses"))
        finally:
            con.close()

    aa, cc = answers(base / "cache_a"), answers(base / "cache_c")
    return {
        "identical_to_rebuild_from_same_answers": vocab_signature(c) == vocab_signature(d),
        "rebuild_new_calls": ud["calls"],  # requests sent
        "same_requests_as_uninterrupted": sorted(aa) == sorted(cc),
        "answers_differing_from_uninterrupted_run": sum(1 for k in aa if k in cc and aa[k] != cc[k]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "beauty"])
    ap.add_argument("--kill-after", type=int, default=6, help="SIGKILL once this many answers are cached")
    ap.add_argument("--verify-only", action="store_true", help="redo only the checks on existing runs (and the rebuild from the killed run's answers)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "llm_profile_e2e.json"))
    args = ap.parse_args()
    res = {
        "command": command_line(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared: timings are noisy)",
        "catalogs": {},
    }
    if args.verify_only:
        res = json.loads(Path(args.out).read_text(encoding="utf-8"))
        for c in args.catalogs:
            r = res["catalogs"][c]
            base = REPO / "bench" / "runs" / "e2e" / c
            r["rerun_same_cache"]["new_calls"] = usage(base / "b")["calls"]
            r["kill9_resume"]["uninterrupted_calls"] = namer_calls(base / "cache_a")
            r["kill9_resume"]["answers_paid_equal_uninterrupted"] = (
                r["kill9_resume"]["answers_cached_after_resume"] == namer_calls(base / "cache_a")
            )
            r["kill9_resume"].update(verify_resume(c, base / "a"))
            print(c, r["rerun_same_cache"], r["kill9_resume"])
        res["verify_command"] = "python bench/llm_profile_e2e.py --verify-only " + " ".join(f"--catalogs {c}" for c in args.catalogs)
        write_result(args.out, res)
        return
    for c in args.catalogs:
        r = run_catalog(c, args.kill_after)
        res["catalogs"][c] = r
        f, b, k = r["first_run"], r["rerun_same_cache"], r["kill9_resume"]
        print(
            f"{c}: build {f['build_wall_s']} s, {f['calls']} LLM calls, {f['prompt_tokens']}+{f['completion_tokens']} tokens | "
            f"rerun: {b['new_calls']} new calls, identical={b['identical_vocabulary']} | kill -9 after {k['answers_cached_at_kill']} "
            f"answers, resumed: identical={k['identical_vocabulary']}, answers paid {k['answers_cached_after_resume']} vs "
            f"{k['uninterrupted_calls']} uninterrupted"
        )
    write_result(args.out, res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
