"""What a run may touch and what it may report, through the real CLI in subprocesses on small
data (LLM calls against the scripted server of tests/fake_openai_server.py):

- a run folder is ours only with our marker: a folder holding the user's files is refused before
  anything is written, ``--restart`` removes only the files a stage writes, and the resolved
  config never overwrites the input config;
- a run folder that cannot be created is one line naming it;
- numbers are finite and in range (``build.subsample`` a fraction in (0, 1] or a count of 2 ..
  the catalog); credentials in URLs and keys pasted as variable names are refused, never echoed;
- an LLM assignment whose calls failed at any level records those items as unfinished, counts
  them, and a rerun retries them until the output equals a clean run's; a finished assignment
  leaves no checkpoint;
- requests that never left are not counted as calls; after kill -9 during an LLM assignment the
  calls counted equal the requests the server received;
- ``edit`` on a run without IDs says what to run; after a kill past an edit's commit point,
  readers show the committed edit and rerunning it says it already landed;
- ``recsys`` refuses timestamps that are neither numbers nor dates (naming the line), tables
  without enough interactions, and an empty tokenizer list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer, Reply
from test_honest_build import write_catalog

CLI = str(Path(sys.executable).with_name("agentictagger"))
OFFLINE = ["--set", "build.min_cluster_size=5", "--set", "build.root_descriptors=3", "--set", "build.grouping.restarts=2"]
SECRET = "sk-proj-verysecret0123456789"


def cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    env.pop("AGENTICTAGGER_TEST_KEY_UNSET", None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def offline(cwd: Path, command: str, run: Path | str, *extra: str) -> subprocess.CompletedProcess:
    return cli(cwd, command, "--catalog", str(cwd / "items.jsonl"), "--run-dir", str(run),
               "--set", f"cache_dir={cwd / 'cache'}", *OFFLINE, *extra)


def one_error(out: subprocess.CompletedProcess, head: str = "error:") -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith(head)]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """An offline build and assignment of 40 items (copied by the tests that change it)."""
    base = tmp_path_factory.mktemp("boundaries")
    write_catalog(base / "items.jsonl")
    for stage in ("build", "assign"):
        out = offline(base, stage, base / "run")
        assert out.returncode == 0, out.stderr[-3000:]
    return base / "run"


def copy_run(built: Path, tmp_path: Path) -> Path:
    shutil.copy(built.parent / "items.jsonl", tmp_path / "items.jsonl")
    shutil.copytree(built.parent / "cache", tmp_path / "cache", ignore=shutil.ignore_patterns("llm"))
    return Path(shutil.copytree(built, tmp_path / "run"))


# -- rows 1, 2, 3: files that are not ours --------------------------------------------------------
def user_folder(folder: Path) -> dict[str, bytes]:
    (folder / "build_state").mkdir(parents=True)
    (folder / "build_state" / "mydata.txt").write_text("my data\n")
    (folder / "config.yaml").write_text("# my commented settings\nbuild:\n  root_descriptors: 3\n")
    (folder / "build_log.jsonl").write_text('{"my": "log"}\n')
    (folder / "todo.tmp").write_text("my notes\n")
    return tree(folder)


def test_a_folder_of_the_users_files_is_refused_and_left_as_it_was(built, tmp_path):
    shutil.copy(built.parent / "items.jsonl", tmp_path / "items.jsonl")
    mine = tmp_path / "mine"
    before = user_folder(mine)
    for extra in (["--restart"], []):
        out = offline(tmp_path, "build", mine, *extra)
        assert out.returncode == 2, out.stderr[-3000:]
        line = one_error(out)
        assert str(mine) in line and "not an agentictagger run folder" in line and "--run-dir" in line
        assert tree(mine) == before  # nothing deleted, overwritten or appended; no lock file either
    out = offline(tmp_path, "assign", mine)
    assert out.returncode == 2 and tree(mine) == before

    # --config config.yaml --run-dir . in the user's folder: refused, the commented config kept.
    shutil.copy(tmp_path / "items.jsonl", mine / "items.jsonl")
    before = tree(mine)
    out = cli(mine, "build", "--config", "config.yaml", "--run-dir", ".", "--catalog", "items.jsonl",
              "--set", f"cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 2 and "not an agentictagger run folder" in one_error(out)
    assert tree(mine) == before


def test_restart_removes_only_what_the_build_wrote_and_the_input_config_is_never_overwritten(built, tmp_path):
    run = copy_run(built, tmp_path)
    assert (run / "run_manifest.json").exists()
    (run / "build_state" / "mydata.txt").write_text("my data\n")
    (run / "notes.tmp").write_text("my notes\n")
    out = offline(tmp_path, "build", run, "--restart")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "build_state" / "mydata.txt").read_text() == "my data\n"
    assert (run / "notes.tmp").read_text() == "my notes\n"
    assert (run / "vocabulary.json").exists()

    # The run's config.yaml, commented by the user and given back as --config: never overwritten.
    commented = "# tuned by hand\n" + (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(commented)
    out = cli(tmp_path, "build", "--config", str(run / "config.yaml"), "--run-dir", str(run))
    assert out.returncode == 2, out.stderr[-3000:]
    line = one_error(out)
    assert "config.yaml" in line and "overwritten" in line
    assert (run / "config.yaml").read_text() == commented


# -- row 15 -------------------------------------------------------------------------------------
def test_a_run_folder_that_cannot_be_made_is_one_line_naming_it(built, tmp_path):
    shutil.copy(built.parent / "items.jsonl", tmp_path / "items.jsonl")
    for where, says in (("/proc/agentictagger-run", "cannot be created"), (str(tmp_path / "items.jsonl"), "is a file")):
        out = offline(tmp_path, "build", where)
        assert out.returncode == 2, out.stderr[-3000:]
        line = one_error(out)
        assert where in line and says in line and "--run-dir" in line
        assert "FileNotFoundError" not in out.stderr and "FileExistsError" not in out.stderr


# -- row 6 --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, says",
    [
        ("build.subsample=1.5", "build.subsample"),
        ("build.subsample=inf", "finite"),
        ("disk_reserve_mb=inf", "finite"),
        ("llms.default.price_per_million_input=inf", "finite"),
        ("llms.default.requests_per_minute=nan", "finite"),
        ("build.subsample=500", "at most all 40"),
        ("build.subsample=0.01", "at least 2"),
    ],
)
def test_numbers_are_finite_and_subsample_a_fraction_or_a_count_within_the_catalog(built, tmp_path, setting, says):
    shutil.copy(built.parent / "items.jsonl", tmp_path / "items.jsonl")
    out = offline(tmp_path, "build", tmp_path / "run", "--set", setting)
    assert out.returncode == 2, out.stderr[-3000:]
    head = "configuration error:" if "subsample=" not in setting or setting.endswith(("1.5", "inf")) else "error:"
    line = one_error(out, head)
    assert says in line and setting.split("=")[0] in line
    assert not (tmp_path / "run" / "vocabulary.json").exists()


# -- row 9 --------------------------------------------------------------------------------------
def test_credentials_in_urls_and_keys_pasted_as_variable_names_are_refused_unechoed(built, tmp_path):
    shutil.copy(built.parent / "items.jsonl", tmp_path / "items.jsonl")
    llm = ["--set", "build.naming.kind=llm", "--set", "llms.default.backend=openai", "--set", "llms.default.model=m"]
    for setting, name in ((f"llms.default.base_url=http://user:{SECRET}@127.0.0.1:9/v1", "base_url"),
                          (f"llms.default.base_url=https://example.com/v1?key={SECRET}", "base_url"),
                          (f"llms.default.api_key_env={SECRET}", "api_key_env")):
        out = offline(tmp_path, "build", tmp_path / "run", *llm, "--set", setting)
        assert out.returncode == 2, out.stderr[-3000:]
        line = one_error(out, "configuration error:")
        assert f"llms.default.{name}" in line
        assert SECRET not in out.stderr + out.stdout
        assert not (tmp_path / "run").exists() or SECRET not in "".join(
            p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file())


# -- rows 4 and 18: unfinished LLM paths --------------------------------------------------------
def offered(body: dict) -> list[str]:
    """The children an assigner request offers (without the stop choice)."""
    schema = body["response_format"]["json_schema"]["schema"]
    return [c for c in schema["properties"]["choice"]["enum"] if c != "none of these"]


def item_prompt(body: dict) -> str:
    """The item's prompt, without the format hint the client appends to the last user message."""
    return body["messages"][1]["content"].split("\n\nAnswer with a JSON object")[0]


def choice_answer(body: dict) -> str:
    """The scripted assigner: a hash of the prompt picks one of the offered children."""
    choices = offered(body)
    return json.dumps({"choice": choices[int(hashlib.sha256(item_prompt(body).encode()).hexdigest(), 16) % len(choices)]})


def malformed_share(share: float):
    def handler(body: dict):
        key = int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8], 16) / 16**8
        return "Sure, probably the first one." if key < share else choice_answer(body)
    return handler


def failing_below_level1(run: Path, share: float):
    """Every call below level 1 fails for good (retries too: the key is the item's text) for about
    ``share`` of the items; level-1 calls are answered. So some paths are cut short whatever the tree."""
    level1 = {d["name"] for d in json.loads((run / "vocabulary.json").read_text())["descriptors"] if d["level"] == 1}

    def handler(body: dict) -> str:
        choices = set(offered(body))
        item = item_prompt(body).split("\n")[-1]
        key = int(hashlib.sha256(item.encode()).hexdigest()[:8], 16) / 16**8
        return "Sure, probably the first one." if key < share and not choices <= level1 else choice_answer(body)
    return handler


def llm_assign(tmp_path: Path, run: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return cli(tmp_path, "assign", "--catalog", str(tmp_path / "items.jsonl"), "--run-dir", str(run),
               "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "assign.assigner=llm",
               "--set", "llms.default.backend=openai", "--set", f"llms.default.base_url={url}",
               "--set", "llms.default.model=fake-model", "--set", "llms.default.api_key_env=AGENTICTAGGER_TEST_KEY_UNSET",
               "--set", "llms.default.max_retries=0", "--set", "llms.default.max_concurrency=2", *extra)


def sids(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "semantic_ids.jsonl").read_text().splitlines()]


def test_items_whose_call_failed_at_any_level_are_unfinished_and_retried_until_the_output_is_clean(built, tmp_path):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = copy_run(built, clean_dir)
    with FakeOpenAIServer(handler=choice_answer) as server:
        out = llm_assign(clean_dir, clean, server.url, "--restart")
    assert out.returncode == 0, out.stderr[-3000:]
    assert max(len(r["path"]) for r in sids(clean)) >= 2
    assert not (clean / "assignments.partial.jsonl").exists()  # a finished stage keeps only its outputs

    run = copy_run(built, tmp_path)
    run2 = Path(shutil.copytree(built, tmp_path / "run2"))
    with FakeOpenAIServer(handler=malformed_share(0.6)) as server:  # one endpoint: its answers change
        out = llm_assign(tmp_path, run, server.url, "--restart")
        assert out.returncode == 1, out.stderr[-3000:]
        assert "unfinished path" in out.stderr and "assign.max_empty_share" in out.stderr
        rows = [json.loads(ln) for ln in (run / "assignments.partial.jsonl").read_text().splitlines()]
        assert any(r.get("unfinished") and r["path"] for r in rows), "a deeper level failed for some item"

        server.handler = choice_answer
        out = llm_assign(tmp_path, run, server.url)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "unfinished" not in out.stderr and "empty path" not in out.stderr
        assert sids(run) == sids(clean)
        meta = json.loads((run / "assignments.jsonl").read_text().splitlines()[0])["meta"]
        assert meta["unfinished_paths"] == 0 and meta["empty_paths"] == 0

        # Below the allowed share the failures are written, counted in the summary, and a rerun retries them.
        server.handler = failing_below_level1(run2, 0.3)
        out = llm_assign(tmp_path, run2, server.url, "--restart", "--set", "assign.max_empty_share=1",
                         "--set", f"cache_dir={tmp_path / 'cache2'}")
        assert out.returncode == 0 and "unfinished path(s)" in out.stderr, out.stderr[-3000:]
        server.handler = choice_answer
        out = llm_assign(tmp_path, run2, server.url, "--set", "assign.max_empty_share=1", "--set", f"cache_dir={tmp_path / 'cache2'}")
        assert out.returncode == 0 and "unfinished" not in out.stderr, out.stderr[-3000:]
    assert sids(run2) == sids(clean)


# -- row 10: usage counts what reached the server ----------------------------------------------
def test_requests_that_never_left_are_not_counted(built, tmp_path):
    run = copy_run(built, tmp_path)
    with FakeOpenAIServer() as server:
        url = server.url  # a port nobody listens on once the server is gone
    out = llm_assign(tmp_path, run, url, "--restart", "--set", "llms.default.max_retries=2",
                     "--set", "llms.default.backoff_base_s=0.001", "--set", "llms.default.backoff_max_s=0.01")
    assert out.returncode == 1, out.stderr[-3000:]
    total = json.loads((run / "assign_usage.json").read_text())["total"]
    assert total["calls"] == 0 and total["retries"] > 0 and total["failures"] > 0


def test_kill_9_during_an_llm_assignment_counts_exactly_the_requests_the_server_got(built, tmp_path):
    run = copy_run(built, tmp_path)
    gate, held = threading.Event(), threading.Event()
    gate.set()
    n = [0]
    lock = threading.Lock()

    def handler(body: dict):
        with lock:
            n[0] += 1
            if n[0] == 25:
                gate.clear()
                held.set()
        if not gate.is_set():
            gate.wait(60)
        return Reply(content=choice_answer(body))

    with FakeOpenAIServer(handler=handler) as server:
        args = ["assign", "--catalog", str(tmp_path / "items.jsonl"), "--run-dir", str(run),
                "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "assign.assigner=llm", "--set", "assign.checkpoint_every=5",
                "--set", "llms.default.backend=openai", "--set", f"llms.default.base_url={server.url}",
                "--set", "llms.default.model=fake-model", "--set", "llms.default.api_key_env=AGENTICTAGGER_TEST_KEY_UNSET",
                "--set", "llms.default.max_concurrency=3"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        p = subprocess.Popen([CLI, *args, "--restart"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert held.wait(300), "the assignment never reached the hold point"
        time.sleep(0.5)
        p.send_signal(signal.SIGKILL)
        p.wait()
        gate.set()
        out = cli(tmp_path, *args)  # the same command without --restart: resumes
        assert out.returncode == 0, out.stderr[-3000:]
        received = len([r for r in server.requests if r.path.endswith("/chat/completions")])
    total = json.loads((run / "assign_usage.json").read_text())["total"]
    assert total["calls"] == received
    assert not list(run.glob("*.at.tmp"))


# -- rows 14 and 17: edits --------------------------------------------------------------------
def test_edit_without_semantic_ids_says_what_to_run(built, tmp_path):
    run = copy_run(built, tmp_path)
    for name in ("semantic_ids.parquet", "semantic_ids.jsonl", "assignments.jsonl"):
        (run / name).unlink()
    vocab = json.loads((run / "vocabulary.json").read_text())
    out = cli(tmp_path, "edit", str(run), "rename", vocab["descriptors"][0]["id"], "Other Name")
    assert out.returncode == 2, out.stderr[-3000:]
    line = one_error(out)
    assert "agentictagger assign" in line and "NotFittedError" not in out.stderr and "fit()" not in line
    (run / "vocabulary.json").unlink()  # as during `build --restart`
    out = cli(tmp_path, "edit", str(run), "delete", vocab["descriptors"][0]["id"])
    assert out.returncode == 2 and "agentictagger build" in one_error(out)


def test_readers_finish_a_committed_edit_and_rerunning_it_says_it_landed(built, tmp_path):
    from agentictagger.run.folder import COMMIT_READY

    run = copy_run(built, tmp_path)
    vocab = json.loads((run / "vocabulary.json").read_text())
    target = next(d for d in vocab["descriptors"] if d["level"] == 2)["id"]
    # The edit, killed (SIGKILL) just past its commit point: nothing moved into place yet.
    script = (
        "import os, sys\n"
        "from agentictagger.run import folder as runstate\n"
        "real = runstate.finish_commit\n"
        "runstate.finish_commit = lambda run: os.kill(os.getpid(), 9) if os.path.isdir(os.path.join(run, 'commit.ready')) else real(run)\n"
        "from agentictagger.cli import app\n"
        f"sys.argv = ['agentictagger', 'edit', {str(run)!r}, 'delete', {target!r}]\n"
        "app()\n"
    )
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert (run / COMMIT_READY).is_dir() and target in (run / "vocabulary.json").read_text()

    out = cli(tmp_path, "edit", str(run), "log")
    assert out.returncode == 0 and f"delete {target}" in out.stdout, out.stdout + out.stderr
    assert not (run / COMMIT_READY).exists()
    assert target not in [d["id"] for d in json.loads((run / "vocabulary.json").read_text())["descriptors"]]

    out = cli(tmp_path, "edit", str(run), "delete", target)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "already applied" in out.stderr and "unknown" not in out.stderr
    assert len((run / "edits.jsonl").read_text().splitlines()) == 1


def test_report_shows_a_committed_edit_left_by_a_killed_run(built, tmp_path):
    from agentictagger.run.folder import COMMIT_READY

    run = copy_run(built, tmp_path)
    vocab = json.loads((run / "vocabulary.json").read_text())
    top = next(d for d in vocab["descriptors"] if d["level"] == 1)["id"]
    script = (
        "import os, sys\n"
        "from agentictagger.run import folder as runstate\n"
        "real = runstate.finish_commit\n"
        "runstate.finish_commit = lambda run: os.kill(os.getpid(), 9) if os.path.isdir(os.path.join(run, 'commit.ready')) else real(run)\n"
        "from agentictagger.cli import app\n"
        f"sys.argv = ['agentictagger', 'edit', {str(run)!r}, 'rename', {top!r}, 'Renamed Group']\n"
        "app()\n"
    )
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert p.returncode == -signal.SIGKILL and (run / COMMIT_READY).is_dir(), p.stderr[-3000:]
    out = cli(tmp_path, "report", "--run-dir", str(run))
    assert out.returncode == 0 and "Renamed Group" in out.stderr + out.stdout, out.stderr[-3000:]


# -- rows 5 and 16: recsys inputs --------------------------------------------------------------
def interactions(path: Path, users: int = 60, per_user: int = 5, bad: str | None = None) -> Path:
    rows = ["user_id,item_id,timestamp"]
    for u in range(users):
        for k, t in enumerate([5, 10, 7, 12, 3][:per_user]):
            rows.append(f"u{u},it{(u * 7 + k) % 40},{t}")
    if bad is not None:
        rows[4] = rows[4].rsplit(",", 1)[0] + f",{bad}"
    path.write_text("\n".join(rows) + "\n")
    return path


def recsys(tmp_path: Path, table: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli(tmp_path, "recsys", "compare", str(table), "--model", "ranker", "--seeds", "0", "--max-epochs", "1",
               "--negatives", "5", "--out", str(tmp_path / "out.json"), *extra)


def test_recsys_refuses_unparsable_timestamps_naming_the_line(tmp_path):
    out = recsys(tmp_path, interactions(tmp_path / "t.csv", bad="unknown"), "--tokenizers", "item_id")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "line 5" in out.stderr and "unknown" in out.stderr and "timestamp" in out.stderr

    from agentictagger.recsys.data import from_interactions

    data = from_interactions(interactions(tmp_path / "ok.csv"))
    first = data.sequences[data.users.index("u0")]
    # Chronological by number: 3, 5, 7, 10, 12 (as text, "10" and "12" would come before "3").
    assert [data.item_ids[i] for i in first] == ["it4", "it0", "it2", "it1", "it3"]


@pytest.mark.parametrize("users, per_user, says", [(0, 0, "no interactions"), (30, 2, "3 or more")])
def test_recsys_refuses_tables_too_small_to_split(tmp_path, users, per_user, says):
    out = recsys(tmp_path, interactions(tmp_path / "t.csv", users, per_user), "--tokenizers", "item_id")
    assert out.returncode == 2 and says in out.stderr, out.stderr[-3000:]
    assert "Traceback" not in out.stderr


def test_recsys_refuses_an_empty_tokenizer_list(tmp_path):
    out = recsys(tmp_path, interactions(tmp_path / "t.csv"), "--tokenizers", "")
    assert out.returncode == 2 and "--tokenizers" in out.stderr, out.stderr[-3000:]


def test_sharded_llm_assign_redoes_shards_with_paths_cut_short_by_a_failed_call(built, tmp_path):
    """The sharded path keeps the same promise: a shard whose items ended at a non-leaf descriptor
    because a deeper call failed is not finished; a rerun redoes it and the output equals a clean run."""
    shard = ("--set", "scale.sharded=always", "--set", "scale.shard_size=20")
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = copy_run(built, clean_dir)
    with FakeOpenAIServer(handler=choice_answer) as server:
        out = llm_assign(clean_dir, clean, server.url, "--restart", *shard)
    assert out.returncode == 0, out.stderr[-3000:]

    run = copy_run(built, tmp_path)
    with FakeOpenAIServer(handler=failing_below_level1(run, 0.3)) as server:
        out = llm_assign(tmp_path, run, server.url, "--restart", "--set", "assign.max_empty_share=1", *shard)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "unfinished path(s)" in out.stdout + out.stderr
        man = json.loads((run / "shards" / "assignments" / "manifest.json").read_text())
        assert any(e.get("unfinished") for e in man["shards"].values() if e), man
        server.handler = choice_answer
        out = llm_assign(tmp_path, run, server.url, "--set", "assign.max_empty_share=1", *shard)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "unfinished" not in out.stdout + out.stderr
    assert sids(run) == sids(clean)
