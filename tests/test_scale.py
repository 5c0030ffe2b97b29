"""Large catalogs: sharded streaming assignment equals the in-memory one, resume by shard after
kill -9, Ray (2 local CPUs) gives identical outputs, survives a worker that dies, and pays each
LLM request once across workers; `agentictagger estimate` computes its table exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer, last_user_message
from test_assign import WordEncoder, make_vocab

from agentictagger.run import stages
from agentictagger.assign import Assignment, EmbeddingAssigner
from agentictagger.catalog import Catalog
from agentictagger.config import RunConfig
from agentictagger.structures.semantic_ids import SemanticIds
from agentictagger.run.shards import Manifest, assign_sharded, iter_item_batches
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary

REPO = Path(__file__).resolve().parents[1]
WORDS = ["hair", "shampoo", "wash", "dryer", "blow", "nail", "polish", "lacquer", "remover", "acetone", "skin", "lotion",
         "red", "pink", "soft", "travel", "mini", "pro", "gentle", "daily"]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    return [{"item_id": f"i{k:05d}", "title": " ".join(rng.choice(WORDS) for _ in range(4)) + f" {k}"} for k in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def config(tmp: Path, run: str, *extra: str) -> RunConfig:
    run_dir = tmp / run
    run_dir.mkdir(parents=True, exist_ok=True)
    make_vocab().save(run_dir / "vocabulary.json")
    return RunConfig.load(None, [f"run_dir={run_dir}", f"cache_dir={tmp / 'cache'}", "catalog.text_template='{title}'", *extra])


def table(run_dir: Path) -> list[dict]:
    return SemanticIds.read(run_dir / "semantic_ids.parquet").to_arrow().to_pylist()


def test_streaming_shards_equal_the_in_memory_assignment_and_resume_whole(tmp_path):
    rows = make_rows(1000)
    # A folder of shards in two formats, read in name order.
    src = tmp_path / "catalog"
    write_jsonl(src / "a.jsonl", rows[:640])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows[640:]), src / "b.parquet")
    # stop_quantile calibrates per chunk: shards must hold whole chunks for the outputs to match.
    common = ("assign.checkpoint_every=100", "assign.stop_quantile=0.3", "assign.max_empty_share=1", "scale.shard_size=250")
    ref_cfg = config(tmp_path, "ref", *common)
    whole = Catalog.from_records(rows, ref_cfg.catalog)
    ref = stages.assign(ref_cfg, whole, embedder=WordEncoder())

    cfg = config(tmp_path, "sharded", *common)
    out = assign_sharded(cfg, src, embedder=WordEncoder())
    assert out.shards == 4 and out.items == 1000 and out.merged  # 250 -> 300 (a multiple of 100): 300,300,300,100
    assert table(tmp_path / "sharded") == table(tmp_path / "ref")
    assert Assignment.load_jsonl(tmp_path / "sharded" / "assignments.jsonl").paths == ref.paths
    # The merged files are streamed shard by shard: the same lines as the in-memory writer's.
    assert (tmp_path / "sharded" / "semantic_ids.jsonl").read_bytes() == (tmp_path / "ref" / "semantic_ids.jsonl").read_bytes()
    lines = (tmp_path / "sharded" / "assignments.jsonl").read_text().splitlines()
    assert lines[1:] == (tmp_path / "ref" / "assignments.jsonl").read_text().splitlines()[1:] and "meta" in json.loads(lines[0])
    man = Manifest.load(tmp_path / "sharded" / "shards" / "semantic_ids")
    assert man.complete and [e["rows"] for _, e in sorted(man.shards.items())] == [300, 300, 300, 100]
    assert all(e["sha256"].startswith("sha256:") and e["input"] for e in man.shards.values())
    # The token report is the in-memory one.
    assert json.loads((tmp_path / "sharded" / "token_vocabulary.json").read_text()) == json.loads(
        (tmp_path / "ref" / "token_vocabulary.json").read_text()
    )
    again = assign_sharded(cfg, src, embedder=WordEncoder())
    assert all(not again.written[s] for s in again.written), again.written
    assert again.kept["assignments"] == [0, 1, 2, 3]
    # Batches stream in file order with the catalog's validation.
    assert [len(b) for b in iter_item_batches(src, cfg.catalog, 300)] == [300, 300, 300, 100]


_KILL_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from test_assign import WordEncoder
    from agentictagger.config import RunConfig
    from agentictagger.run.shards import assign_sharded

    class SlowEncoder(WordEncoder):
        def encode(self, texts):
            time.sleep(0.25)
            return super().encode(texts)

    cfg = RunConfig.load(None, {overrides!r})
    out = assign_sharded(cfg, {src!r}, embedder=SlowEncoder())
    print(json.dumps(out.to_dict()))
    """
)


def test_resume_by_shard_after_kill_9(tmp_path):
    rows = make_rows(1000, seed=1)
    src = write_jsonl(tmp_path / "items.jsonl", rows)
    cfg = config(tmp_path, "run", "assign.checkpoint_every=100", "scale.shard_size=100")
    overrides = [f"run_dir={cfg.run_dir}", f"cache_dir={cfg.cache_dir}", "catalog.text_template='{title}'",
                 "assign.checkpoint_every=100", "scale.shard_size=100"]
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(REPO / "tests"), overrides=overrides, src=str(src)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log_path = tmp_path / "run" / "shards" / "log.jsonl"

    def logged(stage: str) -> list[int]:
        if not log_path.exists():
            return []
        return [r["shard"] for r in map(json.loads, log_path.read_text().splitlines()) if r["stage"] == stage]

    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(logged("embeddings")) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = logged("embeddings")
    assert 3 <= len(before) < 10, "the run was not killed mid-stage"
    assert not (tmp_path / "run" / "semantic_ids.parquet").exists()

    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(before) <= set(report["kept"]["embeddings"])  # finished shards were not redone
    assert sorted(report["written"]["embeddings"] + report["kept"]["embeddings"]) == list(range(10))
    all_logged = logged("embeddings")
    assert sorted(all_logged) == list(range(10)), "a finished shard was computed twice"
    # Same outputs as an uninterrupted run.
    ref = config(tmp_path, "ref", "assign.checkpoint_every=100")
    stages.assign(ref, Catalog.load(src, ref.catalog), embedder=WordEncoder())
    assert table(tmp_path / "run") == table(tmp_path / "ref")


# -- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'agentictagger[ray]'): Ray executor tests skipped")
    import ray.cloudpickle as cp

    # Role objects defined in the test modules travel to the workers by value.
    for name in ("test_assign", __name__):
        cp.register_pickle_by_value(sys.modules[name])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}})
    yield ray
    ray.shutdown()


def test_ray_assignment_of_2000_items_is_identical_to_local(tmp_path, ray_local):
    src = write_jsonl(tmp_path / "items.jsonl", make_rows(2000, seed=2))
    common = ("assign.checkpoint_every=250", "scale.shard_size=500")
    local = assign_sharded(config(tmp_path, "local", *common), src, embedder=WordEncoder())
    on_ray = assign_sharded(config(tmp_path, "ray", *common, "scale.executor=ray"), src, embedder=WordEncoder())
    assert local.shards == on_ray.shards == 4 and on_ray.executor == "ray"
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    pids = {e["pid"] for e in Manifest.load(tmp_path / "ray" / "shards" / "assignments").shards.values()}
    assert os.getpid() not in pids  # the shards ran in Ray workers


class CrashOnce:
    """An assigner whose worker dies (os._exit) the first time any shard reaches it."""

    name = "crash-once"

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.inner = EmbeddingAssigner(WordEncoder())
        self.stats: dict = {}

    def assign(self, items, vocab):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.inner.assign(items, vocab)


def test_ray_worker_killed_mid_task_is_retried_with_identical_outputs(tmp_path, ray_local):
    src = write_jsonl(tmp_path / "items.jsonl", make_rows(800, seed=3))
    common = ("assign.checkpoint_every=200", "scale.shard_size=200")
    done_before = tmp_path / "no-crash"
    done_before.write_text("")  # the local reference never crashes
    assign_sharded(config(tmp_path, "local", *common), src, assigner=CrashOnce(str(done_before)))
    marker = tmp_path / "crashed"
    out = assign_sharded(config(tmp_path, "ray", *common, "scale.executor=ray", "scale.max_retries=2"), src,
                         assigner=CrashOnce(str(marker)))
    assert marker.exists(), "no worker died: the test did not test a crash"
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    assert sorted(out.written["assignments"]) == [0, 1, 2, 3]
    logged = [r["shard"] for r in map(json.loads, (tmp_path / "ray" / "shards" / "log.jsonl").read_text().splitlines())
              if r["stage"] == "assignments"]
    assert sorted(logged) == [0, 1, 2, 3]  # each shard recorded once, the crashed one after its retry


def one_level_vocab() -> Vocabulary:
    v = Vocabulary()
    v.add_children(ROOT_ID, [("Hair", "hair care"), ("Nails", "nail care"), ("Skin", "skin care")])
    return v


def test_llm_assignment_through_ray_pays_each_request_once(tmp_path, ray_local):
    from fake_openai_server import Reply

    def answer(body: dict) -> Reply:
        item = last_user_message(body).rsplit("Item:\n", 1)[1].lower()
        choice = "Hair" if "hair" in item else "Nails" if "nail" in item else "Skin"
        return Reply(content=choice, delay_s=0.05)

    base = make_rows(60, seed=4)
    # 20 more items repeat texts of items in other shards: the same request, to be paid once.
    dupes = [{"item_id": f"dup{k}", "title": base[(k * 7) % 60]["title"]} for k in range(20)]
    rows = base[:30] + dupes[:10] + base[30:] + dupes[10:]
    src = write_jsonl(tmp_path / "items.jsonl", rows)
    with FakeOpenAIServer(handler=answer) as server:
        llm = [f"llms.default.{k}={v}" for k, v in dict(
            backend="openai", model="fake-model", base_url=server.url, api_key_env="AGENTICTAGGER_TEST_KEY_UNSET",
            structured_output="prompt", max_retries=2, backoff_base_s=0.001, max_concurrency=4).items()]
        cfg = config(tmp_path, "run", "assign.assigner=llm", "assign.checkpoint_every=20", "scale.shard_size=20",
                     "scale.executor=ray", *llm)
        one_level_vocab().save(Path(cfg.run_dir) / "vocabulary.json")
        out = assign_sharded(cfg, src)
        assert out.shards == 4 and out.empty_paths == 0
        assert server.request_count == 60  # one per distinct item text, across 2 workers
        usage = json.loads((Path(cfg.run_dir) / "assign_usage.json").read_text())["total"]
        assert usage["calls"] == 60 and usage["answered"] == 60 and usage["cache_hits"] == 20
        # Rerun: every shard finished, nothing asked again.
        again = assign_sharded(cfg, src)
        assert not again.written["assignments"] and server.request_count == 60
    paths = Assignment.load_jsonl(Path(cfg.run_dir) / "assignments.jsonl").paths
    v = one_level_vocab()
    by_text = {r["title"]: paths[r["item_id"]] for r in rows}
    assert all(paths[r["item_id"]] == by_text[r["title"]] for r in rows)
    assert {v[p[0]].name for p in paths.values()} <= {"Hair", "Nails", "Skin"}


# -- agentictagger estimate --------------------------------------------------------------------


MEASURED = {
    "per_item": {
        "embedding_texts_per_s_per_core": 100.0,
        "embedding_assigner_items_per_s": 1000.0,
        "llm_tokens_per_item": {
            "with_prefix_caching": {"prompt": 1000.0, "cached_prompt": 900.0, "completion": 50.0},
            "without_prefix_caching": {"prompt": 1000.0, "cached_prompt": 0.0, "completion": 50.0},
        },
        "llm_calls_per_item": 2.0,
    }
}


def test_estimate_table_is_computed_from_the_benchmark_json(tmp_path):
    from agentictagger.run.estimate import estimate_table, render_estimate

    cfg = RunConfig.load(None, ["llms.default.price_per_million_input=0.15", "llms.default.price_per_million_output=0.6"])
    rows = estimate_table(cfg, {**MEASURED, "_path": "m.json"}, 250_000, workers=4)
    assert [r.items for r in rows] == [100_000, 250_000, 1_000_000, 10_000_000, 100_000_000]
    r = rows[1]  # embedding assigner, 250k items on 4 workers
    assert r.embed_h == pytest.approx(250_000 / 100 / 4 / 3600)  # 0.1736 h
    assert r.assign_h == pytest.approx(250_000 / 1000 / 4 / 3600)
    assert r.core_h == pytest.approx((2500 + 250) / 3600)
    assert r.usd == 0 and r.llm_calls == 0
    # The LLM assigner at 10^6 items, prefix caching on: 2 calls per item.
    llm = RunConfig.load(None, ["assign.assigner=llm", "llms.default.price_per_million_input=0.15",
                                "llms.default.price_per_million_output=0.6", "llms.default.requests_per_minute=10000",
                                "llms.default.max_concurrency=64"])
    r = estimate_table(llm, MEASURED, workers=4, sizes=(10**6,))[0]
    assert r.llm_calls == 2_000_000
    # uncached 100 + cached 900 x 0.5 = 550 input-price tokens, 50 completion tokens, per call
    assert r.usd == pytest.approx(2_000_000 * (100 * 0.15 + 900 * 0.15 * 0.5 + 50 * 0.6) / 1e6)  # $225.00
    assert r.llm_h == pytest.approx(2_000_000 / 10_000 / 60)  # the rate limit paces it: 3.33 h
    # 8 in flight per worker instead of 64: 4 x 8 requests of 1 s each pace it (17.4 h).
    slow = estimate_table(llm.model_copy(update={"llms": {"default": llm.llms["default"].model_copy(update={"max_concurrency": 8})}}),
                          MEASURED, workers=4, sizes=(10**6,))[0]
    assert slow.llm_h == pytest.approx(2_000_000 * 1.0 / (4 * 8) / 3600)
    off = estimate_table(llm, MEASURED, workers=4, sizes=(10**6,), prefix_caching=False)[0]
    assert off.usd == pytest.approx(2_000_000 * (1000 * 0.15 + 50 * 0.6) / 1e6)  # $360.00
    batch = estimate_table(llm, MEASURED, workers=4, sizes=(10**6,), batch=True)[0]
    assert batch.usd == pytest.approx(225.0 * 0.5) and batch.llm_h == 24.0
    text = render_estimate(estimate_table(llm, {**MEASURED, "_path": "m.json"}, workers=4, sizes=(10**6,)))
    assert "225.00" in text and "m.json: per_item.llm_tokens_per_item.with_prefix_caching" in text


def test_estimate_cli_prints_the_table(tmp_path):
    from typer.testing import CliRunner

    from agentictagger.cli import app

    m = tmp_path / "scale.json"
    m.write_text(json.dumps(MEASURED))
    out = CliRunner().invoke(app, ["estimate", "--items", "12101", "--workers", "2", "--measured", str(m)])
    assert out.exit_code == 0, out.output
    assert "12,101" in out.output and "100,000,000" in out.output and f"{m}: per_item.embedding_texts_per_s_per_core" in out.output


def test_estimate_cli_latency_paces_llm_calls(tmp_path):
    from typer.testing import CliRunner

    from agentictagger.cli import app

    m = tmp_path / "scale.json"
    m.write_text(json.dumps(MEASURED))
    args = ["estimate", "--items", "12101", "--workers", "2", "--measured", str(m), "--set", "assign.assigner=llm",
            "--set", "llms.default.max_concurrency=4", "--set", "llms.default.model=gpt-4o-mini"]
    slow = CliRunner().invoke(app, [*args, "--latency-s", "2"])
    fast = CliRunner().invoke(app, [*args, "--latency-s", "0.5"])
    assert slow.exit_code == 0 and fast.exit_code == 0, slow.output + fast.output
    assert "x 2 s per request" in slow.output and "x 0.5 s per request" in fast.output
    assert slow.output != fast.output


def test_estimate_says_when_a_hosted_model_has_no_price(tmp_path):
    from agentictagger.run.estimate import estimate_table, render_estimate

    base = ["assign.assigner=llm", "llms.default.backend=openai", "llms.default.model=gpt-4o-mini"]
    unpriced = render_estimate(estimate_table(RunConfig.load(None, base), MEASURED, 1000))
    priced = render_estimate(estimate_table(RunConfig.load(None, [*base, "llms.default.price_per_million_input=0.15",
                                                                  "llms.default.price_per_million_output=0.6"]), MEASURED, 1000))
    assert "NO PRICE SET" in unpriced and "NO PRICE SET" not in priced
