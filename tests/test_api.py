"""The Python API (`AgenticTagger`: fit, transform, save/load) and incremental tagging
(`agentictagger assign --add`): items added to a finished run get valid, unique semantic IDs in
its vocabulary, and no earlier item's ID changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_honest_build import ADJ, KINDS
from test_run_state import OFFLINE, cli, error_line

from agentictagger import AgenticTagger
from agentictagger.structures.assignment import Assignment
from agentictagger.structures.semantic_ids import SemanticId, SemanticIds
from agentictagger.structures.vocabulary import Descriptor, Vocabulary

SETTINGS = [s for s in OFFLINE if s != "--set"]


def rows(kinds_range: range) -> list[dict]:
    return [{"item_id": f"{k}-{i}", "title": f"{ADJ[i % len(ADJ)]} {k} number {i}"} for k in KINDS for i in kinds_range]


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


FIRST = rows(range(10))  # 40 items: what the tagger is fitted on
NEW = rows(range(10, 13))  # 12 items it has not seen
DUPES = FIRST[:2]  # ids the table already has


def tagger_for(base: Path, run: Path) -> AgenticTagger:
    return AgenticTagger(run_dir=run, overrides=[f"cache_dir={base / 'cache'}", *SETTINGS])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A run folder fitted on FIRST through the API (copied by each test that changes it)."""
    base = tmp_path_factory.mktemp("api")
    write(base / "first.jsonl", FIRST)
    write(base / "new.jsonl", NEW + DUPES)
    tagger = tagger_for(base, base / "run")
    assert tagger.fit(FIRST) is tagger
    return base / "run"


def copy_run(fitted: Path, tmp_path: Path) -> Path:
    for name in ("first.jsonl", "new.jsonl"):
        shutil.copy(fitted.parent / name, tmp_path / name)
    shutil.copytree(fitted.parent / "cache", tmp_path / "cache")
    return Path(shutil.copytree(fitted, tmp_path / "run"))


def id_rows(frame: pd.DataFrame) -> dict[str, tuple]:
    return {r.item_id: (tuple(r.path), tuple(r.path_names), int(r.resolver)) for r in frame.itertuples()}


def check_added(before: pd.DataFrame, after: pd.DataFrame, vocab: Vocabulary) -> None:
    """Every earlier row is unchanged; every new item has a non-empty path in the vocabulary;
    all IDs are unique; a new item's resolver comes after the earlier items' on its path."""
    old, now = id_rows(before), id_rows(after)
    assert {i: now[i] for i in old} == old
    assert list(after["item_id"][: len(before)]) == list(before["item_id"])  # earlier rows first, in order
    new_ids = [r["item_id"] for r in NEW]
    assert set(now) == set(old) | set(new_ids)
    for i in new_ids:
        path, names, resolver = now[i]
        assert path and vocab.is_valid_path(list(path)), (i, path)
        assert names == tuple(vocab[d].name for d in path)
        assert resolver >= sum(1 for p, _, _ in old.values() if p == path)
    keys = [(p, r) for p, _, r in now.values()]
    assert len(set(keys)) == len(keys)


def test_extend_keeps_rows_and_continues_resolvers():
    vocab = Vocabulary([Descriptor("d1", "A", "", 1, "root"), Descriptor("d2", "B", "", 1, "root")])
    table = SemanticIds([SemanticId("x", ("d1",), ("A",), 0), SemanticId("y", ("d1",), ("A",), 1)])
    out = table.extend(Assignment({"z": ["d1"], "w": ["d2"], "v": ["d1"]}), vocab)
    assert [(r.item_id, r.path, r.resolver) for r in out] == [
        ("x", ("d1",), 0), ("y", ("d1",), 1), ("z", ("d1",), 2), ("w", ("d2",), 0), ("v", ("d1",), 3)
    ]
    with pytest.raises(ValueError, match="already has a semantic ID"):
        table.extend(Assignment({"x": ["d2"]}), vocab)


def test_fit_then_transform_keeps_earlier_ids_and_tags_new_items(fitted, tmp_path):
    run = copy_run(fitted, tmp_path)
    tagger = AgenticTagger.load(run)
    before = tagger.semantic_ids
    assert list(before.columns) == ["item_id", "path", "path_names", "resolver"] and len(before) == len(FIRST)
    vocab = tagger.vocabulary

    out = tagger.transform(NEW + DUPES)
    assert list(out["item_id"]) == [r["item_id"] for r in NEW + DUPES]  # the rows asked for, in order
    assert tagger.last_add.skipped == [r["item_id"] for r in DUPES]
    after = tagger.semantic_ids
    check_added(before, after, vocab)
    assert id_rows(out) == {i: id_rows(after)[i] for i in out["item_id"]}
    assert tagger.assignments.paths == {i: list(p) for i, (p, _, _) in id_rows(after).items()}
    assert tagger.vocabulary.to_dict() == vocab.to_dict()  # the vocabulary is not touched
    assert tagger.diagnostics["items"] == len(FIRST) + len(NEW)
    # Only new items: nothing to add, nothing changes.
    again = tagger.transform(DUPES)
    assert len(tagger.last_add) == 0 and id_rows(tagger.semantic_ids) == id_rows(after) and len(again) == 2


def test_save_load_round_trip_equals_the_original(fitted, tmp_path):
    tagger = AgenticTagger.load(copy_run(fitted, tmp_path))
    tagger.transform(NEW)
    saved = tagger.save(tmp_path / "saved")
    back = AgenticTagger.load(saved)
    assert back.run_dir == tmp_path / "saved" and not (saved / "run.lock.json").exists()
    assert back.config.model_dump(exclude={"run_dir"}) == tagger.config.model_dump(exclude={"run_dir"})
    assert back.vocabulary.to_dict() == tagger.vocabulary.to_dict()
    assert back.vocabulary.prototypes.keys() == tagger.vocabulary.prototypes.keys()
    assert back.assignments.paths == tagger.assignments.paths
    pd.testing.assert_frame_equal(back.semantic_ids, tagger.semantic_ids)
    assert back.diagnostics == tagger.diagnostics
    with pytest.raises(FileExistsError):
        tagger.save(tmp_path / "saved")  # not over another run


def test_cli_assign_add_appends_new_items_and_reports_duplicates(fitted, tmp_path):
    run = copy_run(fitted, tmp_path)
    before = AgenticTagger.load(run).semantic_ids
    common = ["--run-dir", str(run), "--set", f"cache_dir={tmp_path / 'cache'}", *OFFLINE]

    out = cli(tmp_path, "assign", "--catalog", str(tmp_path / "new.jsonl"), *common, "--add")
    assert out.returncode == 0, out.stderr[-3000:]
    skipped = [ln for ln in out.stderr.splitlines() if "already in the semantic-ID table" in ln]
    assert len(skipped) == 1 and skipped[0].startswith(f"skipped {len(DUPES)} item(s)"), out.stderr[-3000:]
    assert "added 12 new items (52 in all)" in out.stderr
    tagger = AgenticTagger.load(run)
    after = tagger.semantic_ids
    check_added(before, after, tagger.vocabulary)
    assert json.loads((run / "semantic_ids.jsonl").read_text().splitlines()[-1])["item_id"] == NEW[-1]["item_id"]

    # The API's transform of the same items gives the same table.
    (tmp_path / "api").mkdir()
    api = AgenticTagger.load(copy_run(fitted, tmp_path / "api"))
    api.transform(NEW + DUPES)
    pd.testing.assert_frame_equal(api.semantic_ids, after)

    # Other assignment settings than the table's: stops, naming them.
    out = cli(tmp_path, "assign", "--catalog", str(tmp_path / "new.jsonl"), *common, "--add", "--set", "assign.max_level=1")
    assert out.returncode == 2 and "assign.max_level" in error_line(out), out.stderr[-3000:]
    # Without --add, assigning the first catalog again would drop the added items: it stops.
    out = cli(tmp_path, "assign", "--catalog", str(tmp_path / "first.jsonl"), *common)
    assert out.returncode == 2 and "--add" in error_line(out) and "--restart" in error_line(out)
    # Another catalog without --add: the fingerprint error, as before.
    out = cli(tmp_path, "assign", "--catalog", str(tmp_path / "new.jsonl"), *common)
    assert out.returncode == 2 and "catalog.items" in error_line(out)
    out = cli(tmp_path, "assign", "--catalog", str(tmp_path / "new.jsonl"), *common, "--add", "--restart")
    assert out.returncode == 2 and "--add" in error_line(out)
    pd.testing.assert_frame_equal(AgenticTagger.load(run).semantic_ids, after)
    assert not list(run.glob("assignments.add.partial*")) and not (run / "run.lock.json").exists()


def test_every_default_setting_has_its_type_and_round_trips_through_json():
    """A field declared with a stray trailing comma (``x: int = Field(1),``) gets a tuple as its
    default, which only fails when a build hashes its settings; catch it here, for every field."""
    from pydantic import BaseModel

    from agentictagger.config import RunConfig

    cfg = RunConfig()

    def walk(model: BaseModel, where: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            assert not isinstance(value, tuple), f"{where}.{name} defaults to a tuple: {value!r}"
            if isinstance(value, BaseModel):
                walk(value, f"{where}.{name}")

    walk(cfg, "config")
    assert RunConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_build_summary_from_the_returned_result_is_the_one_its_files_give(tmp_path):
    from agentictagger.vocab.summary import build_summary

    tagger = tagger_for(tmp_path, tmp_path / "run")
    result = tagger.build(FIRST)
    from_files = build_summary(tmp_path / "run")
    assert from_files["vocabulary_size"] == len(result.vocabulary) > 0
    assert build_summary(tmp_path / "run", result) == from_files
