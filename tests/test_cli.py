"""The CLI end to end with the real offline default (embedding agents) on the shipped real data."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from agentictagger.cli import app
from agentictagger.structures.vocabulary import Vocabulary

runner = CliRunner()


def test_demo_builds_assigns_and_reports(tmp_path):
    run = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--offline", "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    vocab = Vocabulary.load(run / "vocabulary.json")
    assert vocab.depth >= 2 and len(vocab.level(1)) >= 5
    table = pq.read_table(run / "semantic_ids.parquet").to_pylist()
    assert len(table) == 304
    assert len({(tuple(r["path"]), r["resolver"]) for r in table}) == 304
    assert all(vocab.is_valid_path(r["path"]) for r in table)
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["coverage_per_level"]["1"] == 1.0
    nmi = [a["nmi"] for a in diag["label_agreement"] if a["level"] == 1]
    assert nmi and nmi[0] > 0.3  # real structure, not noise, against the Amazon categories
    log = [json.loads(line) for line in (run / "build_log.jsonl").read_text().splitlines()]
    assert log and all(0.0 <= r["coverage"] <= 1.0 for r in log)
    # The demo writes the explorer page and prints its path; `report` prints the tree with counts.
    assert (run / "explorer.html").stat().st_size > 100_000 and "explorer.html" in res.output
    rep = runner.invoke(app, ["report", "--run-dir", str(run)], env={"COLUMNS": "200"})
    assert rep.exit_code == 0, rep.output
    assert all(f"{d.name} (" in rep.output for d in vocab.level(1)) and "Assignment diagnostics" in rep.output

    # A second build on the same run folder resumes: nothing left to do, same vocabulary.
    again = runner.invoke(app, ["demo", "--offline", "--run-dir", str(run)])
    assert again.exit_code == 0, again.output
    assert Vocabulary.load(run / "vocabulary.json").to_dict() == vocab.to_dict()


@pytest.mark.local
def test_demo_with_local_llm_names(tmp_path, monkeypatch):
    """The demo as `make demo` runs it on a fresh clone (empty embedding and LLM caches: the
    working folder is a new one): Qwen2.5-Coder-1.5B (assembled by `make local-llm`) names levels
    1-3, most groups of every one of them; deeper levels get key phrases."""
    from agentictagger.llm.models import ModelNotInstalledError, resolve_model
    from agentictagger.vocab.name_rules import name_problems, problem_rule

    try:
        resolve_model("qwen2.5-coder-1.5b-instruct")
    except ModelNotInstalledError as exc:
        pytest.skip(f"local model not installed (make local-llm): {exc}")
    from agentictagger.llm.backends import local

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "demo"
    try:
        res = runner.invoke(app, ["demo", "--run-dir", str(run), "--llm-levels", "3"])
    finally:
        local.shutdown_servers()  # the 1.1 GB model must not stay loaded for the other tests
    assert res.exit_code == 0, res.output
    vocab = Vocabulary.load(run / "vocabulary.json")
    assert len(vocab.level(1)) >= 5
    for level in (1, 2, 3):
        descs = vocab.level(level)
        by = vocab.meta["names_by_level"][str(level)]
        # The small model's names pass the rules most of the time at every LLM level; a fallback
        # is recorded, not hidden.
        assert by.get("llm", 0) * 2 >= len(descs), (level, by)
        assert sum(by.values()) == len(descs) and set(by) <= {"llm", "keyphrase-fallback"}, (level, by)
        assert f"level {level}: {by.get('llm', 0)} of {len(descs)} names by the LLM" in res.output
        for d in descs:
            if d.named_by == "llm":
                parents = [p.name for p in vocab.path_to(d.id)[:-1]]
                assert name_problems(d.name, parent_path=parents) == [] and d.definition.endswith("."), (d.name, d.definition)
            # A fallback says which rules the LLM's name broke, each one a known rule.
            rules = {problem_rule(p) for p in d.naming_problems}
            assert bool(rules) == (d.named_by == "keyphrase-fallback") and "other" not in rules, (d.name, d.naming_problems)
    assert all(d.named_by in ("keyphrase", "keyphrase-fallback") for d in vocab if d.level > 3)


def test_bad_catalog_is_a_clear_error_naming_the_lines(tmp_path):
    cat = tmp_path / "items.jsonl"
    cat.write_text('{"item_id": "a", "title": "drill"}\n{"item_id": "a", "title": "saw"}\nnot json\n')
    res = runner.invoke(app, ["build", "--catalog", str(cat), "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 2
    assert "line 2" in res.output and "line 3" in res.output
    assert not (tmp_path / "run" / "vocabulary.json").exists()


def test_assign_without_vocabulary_says_what_to_do(tmp_path):
    cat = tmp_path / "items.jsonl"
    cat.write_text('{"item_id": "a", "title": "drill"}\n')
    res = runner.invoke(app, ["assign", "--catalog", str(cat), "--run-dir", str(tmp_path / "run")])
    assert res.exit_code == 2 and "agentictagger build" in res.output


def test_version_and_an_example_in_every_command_help():
    from agentictagger import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"agentictagger {__version__}"
    for cmd in (["build"], ["assign"], ["report"], ["explore"], ["demo"], ["config-template"], ["models", "fetch"]):
        res = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "Example: agentictagger " + cmd[0] in res.output, (cmd, res.output)


def test_explore_without_a_run_says_what_to_do(tmp_path):
    res = runner.invoke(app, ["explore", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "agentictagger build" in res.output
