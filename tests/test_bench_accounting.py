"""The local-LLM profile bench counts what was paid from the usage log, not from the response cache.

A response cache holds one row per request key, so a request sent twice (in flight at a kill, or
re-sent on resume) leaves the same number of rows as an uninterrupted run; only the count of
requests sent shows it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "llm_profile_e2e.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("llm_profile_e2e", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_requests_sent_twice_show_even_when_the_cache_rows_match():
    bench = load_bench()
    uninterrupted = {"calls": 17, "answered": 17}
    # 17 distinct answers in the cache either way; the resumed run sent 25 requests.
    out = bench.resume_accounting(uninterrupted, {"calls": 25, "answered": 17})
    assert out["requests_sent_beyond_uninterrupted"] == 8
    assert out["no_request_sent_twice"] is False
    same = bench.resume_accounting(uninterrupted, {"calls": 17, "answered": 17})
    assert same["no_request_sent_twice"] is True and same["requests_sent_beyond_uninterrupted"] == 0
