"""Failures, inputs and errors, driven through the real CLI in
a subprocess on tiny catalogs, against the scripted local OpenAI-compatible server
(tests/fake_openai_server.py) where LLM calls are involved.

- row 2: a failed stage writes no final output and exits non-zero; `assign` refuses an empty or
  unfinished vocabulary; too many empty paths fail the assignment;
- row 3: annotator calls that failed for good are counted and shown, above
  build.max_failed_call_share they fail the build, and a rerun retries them;
- row 6: every numeric setting is range-checked at load time (dotted name + allowed range);
- row 7: one-line errors, checked before expensive work; -v shows the traceback;
- row 8: the default item text is the values of text columns, never names or labels; a text with
  no letters or digits is a bad row;
- row 10: --set keeps text for text fields; optional template fields; --skip-bad-rows; nested
  label_field; each warning once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer, last_user_message
from test_honest_build import ADJ, KINDS, build_cli, is_architect
from test_vocab_llm import scripted_llm

from agentictagger.config import RunConfig

CLI = str(Path(sys.executable).with_name("agentictagger"))
GROUPS = {"apple": ["Food", "Fruit", "Apples"], "pear": ["Food", "Fruit", "Pears"],
          "hammer": ["Home", "Tools", "Hammers"], "chair": ["Home", "Furniture", "Chairs"]}


def cli(cwd: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
    env.pop("AGENTICTAGGER_TEST_KEY_UNSET", None)
    env.update(env_extra or {})
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def lines(out: subprocess.CompletedProcess) -> list[str]:
    """stderr's lines, less the build's progress line (a spinner, elapsed time, counters)."""
    return [ln for ln in out.stderr.splitlines() if ln.strip() and not "\u2800" <= ln.lstrip()[0] <= "\u28ff"]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rich_rows(per_kind: int = 10) -> list[dict]:
    """Items with a title, a description, a ground-truth 'category' column and a nested
    'categories' path (as Amazon metadata has them)."""
    return [
        {
            "item_id": f"{k}-{i}",
            "title": f"{ADJ[i % len(ADJ)]} {k} number {i}",
            "Description": f"a {k} for everyday use",
            "category": f"GOLD{k.upper()}",
            "categories": [GROUPS[k], ["Sale"]],
        }
        for k in KINDS
        for i in range(per_kind)
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One offline build and assignment (embedding agents) of a 40-item catalog, shared below."""
    root = tmp_path_factory.mktemp("built")
    cat = write_rows(root / "items.jsonl", rich_rows())
    out = cli(root, "build", "--catalog", str(cat), "--run-dir", "run", "--set", f"cache_dir={root / 'cache'}",
              "--set", "build.root_descriptors=4", "--set", "build.min_cluster_size=1000")
    assert out.returncode == 0, out.stderr[-3000:]
    out = cli(root, "assign", "--catalog", str(cat), "--run-dir", "run", "--set", f"cache_dir={root / 'cache'}")
    assert out.returncode == 0, out.stderr[-3000:]
    return root


def warm_embeddings(built: Path, tmp_path: Path) -> None:
    """The shared build's embedding cache (same item texts): no embedding model is loaded."""
    import shutil

    shutil.copytree(built / "cache" / "embeddings", tmp_path / "cache" / "embeddings")


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src / "run", dst / "run")
    return dst / "run"


# -- row 2 --------------------------------------------------------------------------------------


def test_row2_failed_stage_writes_no_final_output_and_assign_refuses_bad_vocabularies(built, tmp_path):
    run = copy_run(built, tmp_path)
    for f in [*run.glob("assign*"), *run.glob("semantic_ids*"), run / "token_vocabulary.json"]:
        f.unlink()  # the build only
    outputs = ("assignments.jsonl", "assignments.partial.jsonl", "semantic_ids.parquet", "semantic_ids.jsonl", "token_vocabulary.json")
    cat = str(built / "items.jsonl")
    llm = ["--set", "assign.assigner=llm", "--set", "llms.default.backend=openai",
           "--set", "llms.default.model=fake-model", "--set", "llms.default.api_key_env=AGENTICTAGGER_TEST_KEY_UNSET",
           "--set", f"cache_dir={tmp_path / 'cache'}"]
    with FakeOpenAIServer(handler=lambda r: (401, "Incorrect API key provided")) as server:
        llm += ["--set", f"llms.default.base_url={server.url}"]
        # An LLM assignment whose every call answers 401: non-zero, one line, no final output.
        out = cli(tmp_path, "assign", "--catalog", cat, "--run-dir", str(run), *llm)
        assert out.returncode != 0, out.stderr[-3000:]
        err = [ln for ln in lines(out) if ln.startswith("assign failed:")]
        assert len(err) == 1 and "40 of 40 items got no descriptor" in err[0] and "assign.max_empty_share" in err[0], out.stderr
        assert "Traceback" not in out.stderr
        for name in outputs[:1] + outputs[2:]:
            assert not (run / name).exists(), name

        # The same failures under a share that allows them: written, and counted.
        out = cli(tmp_path, "assign", "--catalog", cat, "--run-dir", str(run), *llm, "--set", "assign.max_empty_share=1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "40 LLM call(s) failed for good" in out.stderr and "40 empty path(s)" in out.stderr

    # An unfinished build (a job not done): refused in one line, before any work.
    state = run / "build_state" / "jobs" / "root.json"
    job = json.loads(state.read_text())
    state.write_text(json.dumps({**job, "status": "failed"}))
    out = cli(tmp_path, "assign", "--catalog", cat, "--run-dir", str(run))
    assert out.returncode == 2 and len(lines(out)) == 1, out.stderr
    assert "unfinished" in out.stderr and "agentictagger build" in out.stderr
    state.write_text(json.dumps(job))

    # An empty vocabulary (a build that produced no descriptor): refused in one line.
    vocab = json.loads((run / "vocabulary.json").read_text())
    (run / "vocabulary.json").write_text(json.dumps({**vocab, "descriptors": []}))
    (run / "assignments.jsonl").unlink()
    out = cli(tmp_path, "assign", "--catalog", cat, "--run-dir", str(run))
    assert out.returncode == 2 and len(lines(out)) == 1, out.stderr
    assert "holds no descriptors" in out.stderr and not (run / "assignments.jsonl").exists()


# -- row 3 --------------------------------------------------------------------------------------


def test_row3_failed_annotator_calls_are_counted_fail_the_build_above_the_share_and_are_retried(built, tmp_path):
    failing = {"number 3", "number 7"}  # 8 of 40 items: 20 %

    def handler(r):
        text = last_user_message(r)
        if not is_architect(r) and any(f in text.rsplit("Item:", 1)[-1] for f in failing):
            return (500, "upstream exploded")
        return scripted_llm(r)

    def annotator_asks(server, marker: str) -> int:
        return sum(1 for b in server.chat_bodies() if not is_architect(b) and marker in last_user_message(b).rsplit("Item:", 1)[-1])

    write_rows(tmp_path / "items.jsonl", rich_rows())
    warm_embeddings(built, tmp_path)
    run = tmp_path / "run"
    extra = ("--set", "build.annotator.kind=llm", "--set", "build.min_failures=1", "--set", "llms.default.max_retries=1")
    with FakeOpenAIServer(handler=handler) as server:
        # 20 % failed for good > the default 5 %: the build fails, nothing final is written.
        out = build_cli(tmp_path, server.url, run, *extra)
        assert out.returncode == 1, out.stderr[-3000:]
        line = [ln for ln in lines(out) if ln.startswith("build failed:")]
        assert len(line) == 1 and "8 of 40 annotator calls failed for good" in line[0], out.stderr[-3000:]
        assert "build.max_failed_call_share" in line[0]
        assert not (run / "vocabulary.json").exists()

        # Only "number 3" still fails (4 items, 10 %), allowed by the share: the build succeeds,
        # the summary counts the failed calls, and the "number 7" items were asked again.
        failing.discard("number 7")
        before = annotator_asks(server, "number 7")
        out = build_cli(tmp_path, server.url, run, *extra, "--set", "build.max_failed_call_share=0.2")
        assert out.returncode == 0, out.stderr[-3000:]
        assert annotator_asks(server, "number 7") > before
        assert "failed LLM calls" in out.stderr and "annotator" in out.stderr, out.stderr[-3000:]
        assert "4 item(s) of the final steps have no annotator answer" in " ".join(out.stderr.split())
        root = json.loads((run / "build_state" / "jobs" / "root.json").read_text())
        assert root["steps"][-1]["n_errors"] == 4

        # The server heals: a rerun retries exactly the items whose calls failed.
        failing.clear()
        before = annotator_asks(server, "number 3")
        out = build_cli(tmp_path, server.url, run, *extra, "--set", "build.max_failed_call_share=0.2")
        assert out.returncode == 0, out.stderr[-3000:]
        assert annotator_asks(server, "number 3") > before
    root = json.loads((run / "build_state" / "jobs" / "root.json").read_text())
    assert root["steps"][-1]["n_errors"] == 0 and all(e == "" for e in root["errors"])
    members = sorted(i for d in root["final"] for i in d["members"])
    assert len(set(members)) == 40  # every item in a descriptor, the retried ones included
    summary_report = cli(tmp_path, "report", "--run-dir", str(run))  # no assignments: a clear exit 2
    assert summary_report.returncode == 2 and "agentictagger assign" in summary_report.stderr


# -- row 6 --------------------------------------------------------------------------------------


BAD_SETTINGS = {
    "build.root_descriptors": "-5", "build.min_cluster_size": "-1", "build.max_depth": "-2",
    "build.refine_steps": "-3", "build.max_parallel_jobs": "0", "build.subsample": "-3",
    "llms.default.timeout_s": "-1", "llms.default.max_concurrency": "0", "llms.default.max_retries": "-1",
    "embedding.batch_size": "0", "catalog.max_text_chars": "0", "assign.checkpoint_every": "0",
    "assign.max_empty_share": "2", "build.max_failed_call_share": "-0.1", "llms.default.temperature": "-1",
}


def test_row6_out_of_range_settings_are_refused_at_load_time_with_name_and_range(tmp_path):
    cat = write_rows(tmp_path / "items.jsonl", rich_rows(2))
    sets = [a for k, v in BAD_SETTINGS.items() for a in ("--set", f"{k}={v}")]
    out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", "run", *sets)
    assert out.returncode == 2, out.stderr[-3000:]
    errs = [ln for ln in lines(out) if ln.startswith("configuration error:")]
    assert len(errs) == len(BAD_SETTINGS) == len(lines(out)), out.stderr
    for key in BAD_SETTINGS:
        hit = [ln for ln in errs if ln.startswith(f"configuration error: {key}:")]
        assert len(hit) == 1 and "allowed range:" in hit[0], (key, out.stderr)
    assert "llms.default.timeout_s" in out.stderr and "0.0 < value <= 86400.0" in out.stderr
    assert "build.max_parallel_jobs" in out.stderr and "1 <= value <= 256" in out.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_row6_every_numeric_setting_has_a_range():
    from pydantic import BaseModel

    def walk(model: type[BaseModel], prefix: str):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from walk(ann, f"{prefix}{name}.")
            elif name == "llms":
                from agentictagger.config import LLMConfig

                yield from walk(LLMConfig, f"{prefix}llms.<name>.")
            elif ann in (int, float, int | None, float | None):
                yield f"{prefix}{name}", f

    unbounded = [n for n, f in walk(RunConfig, "") if not any(hasattr(m, a) for m in f.metadata for a in ("ge", "gt", "le", "lt"))]
    assert unbounded == []


# -- row 7 --------------------------------------------------------------------------------------


def test_row7_one_line_errors_before_expensive_work_and_traceback_with_v(built, tmp_path):
    cat = write_rows(tmp_path / "items.jsonl", rich_rows(2))
    hosted = ["--set", "build.architect.kind=llm", "--set", "llms.default.backend=openai",
              "--set", "llms.default.base_url=https://api.example.com/v1", "--set", "llms.default.api_key_env=AGENTICTAGGER_TEST_KEY_UNSET",
              "--set", f"cache_dir={tmp_path / 'cache'}"]
    # Missing API key: found before the catalog is embedded (no embedding cache written).
    out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", "run", *hosted)
    assert out.returncode == 2 and len(lines(out)) == 1, out.stderr[-3000:]
    assert "AGENTICTAGGER_TEST_KEY_UNSET is not set" in out.stderr and "export" in out.stderr
    assert not (tmp_path / "cache" / "embeddings").exists()
    # -v: the traceback instead of the one line.
    out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", "run", *hosted, "-v")
    assert out.returncode != 0 and "Traceback" in out.stderr

    # A run folder that cannot be written (here: below a file; a read-only folder is the same check).
    (tmp_path / "afile").write_text("x")
    out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", str(tmp_path / "afile" / "run"))
    assert out.returncode != 0 and len(lines(out)) == 1, out.stderr[-3000:]
    assert "cannot write to" in out.stderr and "--run-dir" in out.stderr

    # Not enough disk space for the run's estimate plus the reserve.
    out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", "run", "--set", "disk_reserve_mb=1e12")
    assert out.returncode == 2 and len(lines(out)) == 1, out.stderr[-3000:]
    assert "not enough disk space" in out.stderr and "MB free" in out.stderr

    # A directory where a .jsonl file is expected.
    (tmp_path / "x.jsonl").mkdir()
    out = cli(tmp_path, "build", "--catalog", str(tmp_path / "x.jsonl"), "--run-dir", "run")
    assert out.returncode == 2 and len(lines(out)) == 1, out.stderr[-3000:]
    assert "is a directory" in out.stderr

    # A run folder built from another catalog: one line, non-zero, no traceback.
    run = copy_run(built, tmp_path / "other")
    out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", str(run), "--set", f"cache_dir={built / 'cache'}")
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert len(lines(out)) == 1, out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_row7_read_only_run_folder(tmp_path):
    cat = write_rows(tmp_path / "items.jsonl", rich_rows(2))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        out = cli(tmp_path, "build", "--catalog", str(cat), "--run-dir", str(ro / "run"))
    finally:
        ro.chmod(0o755)
    assert out.returncode == 2 and len(lines(out)) == 1 and "cannot write to" in out.stderr, out.stderr


# -- row 8 --------------------------------------------------------------------------------------


def test_row8_default_text_is_values_without_names_or_labels_and_blank_text_is_a_bad_row(built, tmp_path):
    cat = write_rows(tmp_path / "items.jsonl", rich_rows())
    warm_embeddings(built, tmp_path)
    # What the items' texts are: the architect's prompt shows representatives (then a 401 ends it).
    with FakeOpenAIServer(handler=lambda r: (401, "Incorrect API key provided")) as server:
        out = build_cli(tmp_path, server.url, tmp_path / "run", "--set", "build.n_representatives=40")
        bodies = server.chat_bodies()
    assert out.returncode == 1 and bodies, out.stderr[-3000:]
    prompt = last_user_message(bodies[0])
    assert "a hammer for everyday use" in prompt and "red apple number 0" in prompt
    assert "Description" not in prompt and "title:" not in prompt  # no column names
    assert "GOLD" not in prompt and "Fruit" not in prompt  # no label-like column, set as label or not

    # A row whose text renders to "." is a bad row, named by its line.
    rows = rich_rows(1)
    rows[2]["title"] = "."
    bad = write_rows(tmp_path / "bad.jsonl", rows)
    out = cli(tmp_path, "build", "--catalog", str(bad), "--run-dir", "run2", "--set", "catalog.text_template={title}")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "line 3" in out.stderr and "no letters or digits" in out.stderr


# -- row 10 -------------------------------------------------------------------------------------


def test_row10_set_keeps_strings_optional_fields_skip_bad_rows_nested_labels_warnings_once(built, tmp_path):
    run = copy_run(built, tmp_path)
    rows = rich_rows()
    rows[0]["brand"] = None  # one null brand
    for r in rows[1:]:
        r["brand"] = "Acme"
    cat = write_rows(tmp_path / "items.jsonl", rows)

    def report(*args: str) -> subprocess.CompletedProcess:
        return cli(tmp_path, "report", "--catalog", str(cat), "--run-dir", str(run), *args)

    # --set keeps a text template a string ("{title}" is not read as a YAML mapping).
    out = report("--set", "catalog.text_template={title}")
    assert "configuration error" not in out.stderr, out.stderr[-3000:]
    assert "catalog error" not in out.stderr
    # ... where a non-text field given {...} hints at quoting.
    out = report("--set", "catalog.exclude_fields={title}")
    assert out.returncode == 2 and "quote the value" in out.stderr

    # A required field that is null in one row: the row is named, with the optional syntax as hint.
    out = report("--set", "catalog.text_template={title} by {brand}")
    assert out.returncode == 2 and "line 1" in out.stderr and "{brand|}" in out.stderr
    # Optional with a default: every row loads.
    out = report("--set", "catalog.text_template={title} by {brand|an unknown maker}")
    assert "catalog error" not in out.stderr, out.stderr[-3000:]

    # --skip-bad-rows: reported once, counted, skipped; off by default (above).
    out = report("--set", "catalog.text_template={title} by {brand}", "--skip-bad-rows",
                 "--set", "catalog.label_field=categories[0][1]")
    assert "catalog error" not in out.stderr, out.stderr[-3000:]
    assert " ".join(out.stderr.split()).count("skipped 1 bad row(s) of 40") == 1
    assert "39 items loaded, 1 bad row(s) skipped" in " ".join(out.stderr.split())

    # label_field selects inside the nested category paths: level 2 of the first path.
    assert out.returncode == 0, out.stderr[-3000:]
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["labelled_items"] == 39
    assert {r["classes"] for r in diag["label_agreement"] if r["label_level"] == 1} == {3}  # Fruit, Tools, Furniture

    # A label_field naming the nested lists themselves: one warning saying how to select.
    out = report("--set", "catalog.label_field=categories")
    flat = " ".join(out.stderr.split())
    assert flat.count("holds lists or objects") == 1 and "categories[0][1]" in flat
