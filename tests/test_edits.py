"""Vocabulary edits: rename, move, merge and delete re-assign only the items
they touch (counted exactly on a hand-checked tree), keep every other item's semantic ID, keep
the tree valid, refuse edits that would break it, and on a run folder write every file again
together with a line in edits.jsonl; save/load, report, explore and `assign --add` work after."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from test_api import FIRST, NEW, SETTINGS, copy_run, id_rows, write
from test_run_state import OFFLINE, cli, error_line

from agentictagger import AgenticTagger
from agentictagger.structures.assignment import Assignment
from agentictagger.run.folder import COMMIT_READY, COMMIT_STAGING, RunLock, StaleStateError
from agentictagger.structures.semantic_ids import SemanticId, SemanticIds
from agentictagger.vocab import edits
from agentictagger.vocab.edits import EditError
from agentictagger.structures.vocabulary import Descriptor, Vocabulary

# -- a hand-checked tree ----------------------------------------------------------------------------
#   d1 Fruit      d1.1 Apples, d1.2 Pears
#   d2 Tools      d2.1 Hammers, d2.2 Saws
#   d3 Furniture
TREE = [
    ("d1", "Fruit", "root"), ("d1.1", "Apples", "d1"), ("d1.2", "Pears", "d1"),
    ("d2", "Tools", "root"), ("d2.1", "Hammers", "d2"), ("d2.2", "Saws", "d2"),
    ("d3", "Furniture", "root"),
]
#: item -> (path, resolver, text)
ITEMS = {
    "a1": (("d1", "d1.1"), 0, "red apple"),
    "a2": (("d1", "d1.1"), 1, "green apple"),
    "p1": (("d1", "d1.2"), 0, "ripe pear"),
    "f1": (("d1",), 0, "fruit basket"),
    "h1": (("d2", "d2.1"), 0, "claw hammer"),
    "s1": (("d2", "d2.2"), 0, "hand saw"),
    "t1": (("d2",), 0, "hammer and saw kit"),
    "c1": (("d3",), 0, "oak chair"),
    "c2": (("d3",), 1, "pine table"),
}


def small_vocab() -> Vocabulary:
    v = Vocabulary()
    for did, name, parent in TREE:
        v.add(Descriptor(did, name, f"{name} items", 1 if parent == "root" else 2, parent, exemplars=[did + "-x"]))
    return v


def small_table(vocab: Vocabulary) -> SemanticIds:
    return SemanticIds([SemanticId(i, p, tuple(vocab[d].name for d in p), r) for i, (p, r, _) in ITEMS.items()])


class Item:
    def __init__(self, item_id: str, text: str | None = None) -> None:
        self.item_id, self.text = item_id, text or (ITEMS[item_id][2] if item_id in ITEMS else item_id)


class KeywordAssigner:
    """Walks down while a child's name (less a final 's') is a word of the item text; records
    every item it is asked to place."""

    name = "keyword"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def assign(self, items, vocab):
        out = []
        for it in items:
            self.seen.append(it.item_id)
            path, node = [], "root"
            while True:
                hit = next((c for c in vocab.children(node) if c.name.lower().rstrip("s") in it.text.split()), None)
                if hit is None:
                    break
                path.append(hit.id)
                node = hit.id
            out.append(path)
        return out


def reassigner(assigner: KeywordAssigner):
    return lambda ids, vocab, node: edits.assign_within(assigner, [Item(i) for i in ids], vocab, node)


def ids_of(table: SemanticIds) -> dict[str, tuple]:
    return {r.item_id: (r.path, r.resolver) for r in table}


def check_valid(out: edits.EditOutcome) -> None:
    """The new tree is well formed and every item's path walks down it; IDs are unique."""
    v = out.vocabulary
    for d in v:
        assert d.level == (1 if d.parent == "root" else v[d.parent].level + 1)
        assert [c.id for c in v.children(d.id)] == d.children
    for r in out.table:
        assert v.is_valid_path(list(r.path)), (r.item_id, r.path)
        assert r.path_names == tuple(v[d].name for d in r.path)
    assert len({(r.path, r.resolver) for r in out.table}) == len(out.table)
    assert [r.item_id for r in out.table] == list(ITEMS)  # rows stay in place


def unchanged_except(before: SemanticIds, after: SemanticIds, changed: set[str]) -> None:
    old, new = ids_of(before), ids_of(after)
    assert {i for i in old if old[i] != new[i]} == changed
    assert {i: new[i] for i in old if i not in changed} == {i: old[i] for i in old if i not in changed}


# -- the pure edits ---------------------------------------------------------------------------------
def test_rename_changes_names_only():
    v = small_vocab()
    t = small_table(v)
    out = edits.rename(v, t, "d1", "Fresh Fruit", definition="Fruit sold fresh")
    check_valid(out)
    assert out.vocabulary["d1"].name == "Fresh Fruit" and out.vocabulary["d1"].definition == "Fruit sold fresh"
    assert out.reassigned == [] and out.repathed == [] and out.id_changes() == []
    assert sorted(out.renamed) == ["a1", "a2", "f1", "p1"]
    unchanged_except(t, out.table, set())
    assert out.table["a1"].path_names == ("Fresh Fruit", "Apples") and out.table["c1"].path_names == ("Furniture",)
    assert v["d1"].name == "Fruit"  # the input is not changed
    # The name is now the user's; a new definition alone keeps who wrote the name.
    assert out.vocabulary["d1"].named_by == "user" and out.vocabulary["d1"].naming_problems == []
    v2 = small_vocab()
    v2["d2"].named_by = "llm"
    again = edits.rename(v2, small_table(v2), "d2", v2["d2"].name, definition="Another definition")
    assert again.vocabulary["d2"].named_by == "llm"


def test_move_keeps_items_and_resolvers_with_a_new_prefix():
    v = small_vocab()
    t = small_table(v)
    out = edits.move(v, t, "d2.1", "d3")
    check_valid(out)
    assert out.vocabulary["d2.1"].parent == "d3" and [c.id for c in out.vocabulary.children("d2")] == ["d2.2"]
    assert out.reassigned == [] and out.repathed == ["h1"]
    unchanged_except(t, out.table, {"h1"})
    assert ids_of(out.table)["h1"] == (("d3", "d2.1"), 0)
    # A subtree to level 1: levels below follow; both apple items keep their resolvers.
    out = edits.move(v, t, "d1.1", "root")
    check_valid(out)
    assert out.vocabulary["d1.1"].level == 1
    unchanged_except(t, out.table, {"a1", "a2"})
    assert ids_of(out.table)["a1"] == (("d1.1",), 0) and ids_of(out.table)["a2"] == (("d1.1",), 1)
    # A level-1 subtree two levels down.
    out = edits.move(v, t, "d1", "d2.2")
    check_valid(out)
    assert out.vocabulary["d1.1"].level == 4
    assert ids_of(out.table)["a2"] == (("d2", "d2.2", "d1", "d1.1"), 1)
    unchanged_except(t, out.table, {"a1", "a2", "p1", "f1"})


def test_delete_reassigns_only_its_items_within_the_parent():
    v = small_vocab()
    t = small_table(v)
    kw = KeywordAssigner()
    out = edits.delete(v, t, "d1.2", reassign=reassigner(kw))
    check_valid(out)
    assert kw.seen == ["p1"] and out.reassigned == ["p1"]  # exactly the one item under Pears
    assert "d1.2" not in out.vocabulary and "d1.2" not in out.vocabulary.prototypes
    # "ripe pear" matches no child of Fruit: it stops at Fruit, after f1 (#0) -> #1.
    unchanged_except(t, out.table, {"p1"})
    assert ids_of(out.table)["p1"] == (("d1",), 1)
    # A level-1 descriptor: its 3 items are placed among the other level-1 descriptors.
    kw = KeywordAssigner()
    out = edits.delete(v, t, "d2", reassign=reassigner(kw))
    check_valid(out)
    assert sorted(kw.seen) == ["h1", "s1", "t1"] and len(out.reassigned) == 3
    assert {"d2", "d2.1", "d2.2"}.isdisjoint({d.id for d in out.vocabulary})
    assert out.descriptors["deleted"]["removed"] == ["d2", "d2.1", "d2.2"]
    unchanged_except(t, out.table, {"h1", "s1", "t1"})
    assert all(out.table[i].path == () for i in ("h1", "s1", "t1"))  # nothing else matches them


def test_merge_moves_children_and_reassigns_items_that_stopped_at_the_source():
    v = small_vocab()
    t = small_table(v)
    kw = KeywordAssigner()
    out = edits.merge(v, t, "d2", "d1", reassign=reassigner(kw))
    check_valid(out)
    assert [c.id for c in out.vocabulary.children("d1")] == ["d1.1", "d1.2", "d2.1", "d2.2"]
    assert "d2" not in out.vocabulary
    assert kw.seen == ["t1"] and out.reassigned == ["t1"]  # only the item that stopped at Tools
    assert sorted(out.repathed) == ["h1", "s1"]  # Hammers and Saws came along with their items
    unchanged_except(t, out.table, {"h1", "s1", "t1"})
    assert ids_of(out.table)["h1"] == (("d1", "d2.1"), 0) and ids_of(out.table)["s1"] == (("d1", "d2.2"), 0)
    # "hammer and saw kit": Hammers comes first among d1's children; h1 holds #0 there -> #1.
    assert ids_of(out.table)["t1"] == (("d1", "d2.1"), 1)
    assert out.vocabulary["d1"].exemplars == ["d1-x", "d2-x"]
    assert len(out.id_changes()) == 3 and len(out.affected) == 3

    # A leaf into a leaf: p1 lands in Apples after a1, a2.
    kw = KeywordAssigner()
    out = edits.merge(v, t, "d1.2", "d1.1", reassign=reassigner(kw))
    check_valid(out)
    assert out.reassigned == ["p1"] and out.repathed == [] and kw.seen == []  # a leaf target: no choice to make
    unchanged_except(t, out.table, {"p1"})
    assert ids_of(out.table)["p1"] == (("d1", "d1.1"), 2)


def test_merge_takes_the_sources_matching_vectors():
    import numpy as np

    v = small_vocab()
    v.prototypes = {d.id: np.eye(4, dtype=np.float32)[[i % 4]] for i, d in enumerate(v)}
    out = edits.merge(v, small_table(v), "d1.2", "d1.1", reassign=reassigner(KeywordAssigner()))
    assert out.vocabulary.prototypes["d1.1"].shape == (2, 4) and "d1.2" not in out.vocabulary.prototypes
    assert set(out.vocabulary.prototypes) == {d.id for d in out.vocabulary} and out.vocabulary.name_weights == {}
    # Rows that blend their descriptor's name keep their weights, now blending the target's name.
    v.name_weights = {"d1.1": np.array([0.7], dtype=np.float32), "d1.2": np.array([0.5], dtype=np.float32)}
    out = edits.merge(v, small_table(v), "d1.2", "d1.1", reassign=reassigner(KeywordAssigner()))
    assert np.allclose(out.vocabulary.name_weights["d1.1"], [0.7, 0.5]) and "d1.2" not in out.vocabulary.name_weights


@pytest.mark.parametrize(
    "op, args, message",
    [
        ("rename", {"descriptor": "d9", "name": "X"}, "unknown descriptor 'd9'"),
        ("rename", {"descriptor": "d1.2", "name": " apples "}, "already has a child named 'Apples'"),
        ("rename", {"descriptor": "d1", "name": "Fruit"}, "nothing to change"),
        ("rename", {"descriptor": "d1", "name": "  "}, "empty"),
        ("move", {"descriptor": "d1", "parent": "d1.1"}, "inside its subtree"),
        ("move", {"descriptor": "d1", "parent": "d1"}, "inside its subtree"),
        ("move", {"descriptor": "d1.1", "parent": "d1"}, "nothing to change"),
        ("move", {"descriptor": "d1.1", "parent": "d7"}, "unknown parent 'd7'"),
        ("merge", {"source": "d1.1", "target": "d1"}, "into its ancestor d1"),
        ("merge", {"source": "d1", "target": "d1.2"}, "inside d1's subtree"),
        ("merge", {"source": "d1", "target": "d1"}, "into itself"),
        ("merge", {"source": "d1", "target": "x"}, "unknown target 'x'"),
        ("delete", {"descriptor": "nope"}, "unknown descriptor 'nope'"),
    ],
)
def test_invalid_edits_are_refused_with_one_line(op, args, message):
    v = small_vocab()
    t = small_table(v)
    before = json.dumps(v.to_dict())
    with pytest.raises(EditError, match=message) as err:
        edits.apply(op, v, t, args, reassign=reassigner(KeywordAssigner()))
    assert "\n" not in str(err.value)
    assert json.dumps(v.to_dict()) == before


def test_collisions_when_moving_or_merging_and_the_last_level1_descriptor():
    v = small_vocab()
    t = small_table(v)
    renamed = edits.rename(v, t, "d2.1", "Apples")  # Tools > Apples: fine, another parent
    with pytest.raises(EditError, match="d1.*already has a child named 'Apples'"):
        edits.merge(renamed.vocabulary, renamed.table, "d2", "d1")
    with pytest.raises(EditError, match="already has a child named 'Apples'"):
        edits.move(renamed.vocabulary, renamed.table, "d2.1", "d1")
    one = Vocabulary([Descriptor("d1", "All", "", 1, "root"), Descriptor("d1.1", "Some", "", 2, "d1")])
    table = SemanticIds([SemanticId("x", ("d1", "d1.1"), ("All", "Some"), 0)])
    with pytest.raises(EditError, match="only level-1 descriptor"):
        edits.delete(one, table, "d1")
    out = edits.delete(one, table, "d1.1", reassign=reassigner(KeywordAssigner()))  # the child may go
    assert ids_of(out.table)["x"] == (("d1",), 0)


def test_retable_gives_colliding_rows_new_resolvers_and_keeps_the_rest():
    v = small_vocab()
    t = small_table(v)
    # c2 forced onto a1's ID: a1 (first) keeps #0, c2 gets the next free resolver on that path.
    out = edits.retable(t, v, {"c2": ("d1", "d1.1")})
    assert ids_of(out)["c2"] == (("d1", "d1.1"), 2) and ids_of(out)["a1"] == (("d1", "d1.1"), 0)
    with pytest.raises(ValueError, match="not valid"):
        edits.retable(t, v, {"c2": ("d2.1",)})


def test_assign_within_a_subtree_uses_its_descendants_only():
    v = small_vocab()
    kw = KeywordAssigner()
    got = edits.assign_within(kw, [Item("t1"), Item("a1")], v, "d2")
    assert got == {"t1": ["d2", "d2.1"], "a1": ["d2"]}  # an apple has no place under Tools: it stays at d2
    assert edits.assign_within(kw, [Item("a1")], v, "d3") == {"a1": ["d3"]}  # a leaf: no assigner call
    q = Item("q", "fruit apple")
    assert edits.assign_within(kw, [q], v, "root") == {"q": ["d1", "d1.1"]}
    assert edits.assign_within(kw, [q], v, "root", max_level=1) == {"q": ["d1"]}


# -- on a run folder: API and CLI ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A run folder fitted on the 40 items of test_api.FIRST (copied by each test)."""
    base = tmp_path_factory.mktemp("edits")
    write(base / "first.jsonl", FIRST)
    write(base / "new.jsonl", NEW)
    AgenticTagger(run_dir=base / "run", overrides=[f"cache_dir={base / 'cache'}", *SETTINGS]).fit(base / "first.jsonl")
    return base / "run"


RUN_FILES = ("vocabulary.json", "vocabulary.prototypes.npz", "assignments.jsonl", "semantic_ids.parquet",
             "semantic_ids.jsonl", "token_vocabulary.json", "diagnostics.json", "config.yaml")


def snapshot(run: Path) -> dict[str, bytes]:
    return {n: (run / n).read_bytes() for n in RUN_FILES if (run / n).exists()}


def check_run(run: Path) -> Vocabulary:
    """Every file of the run agrees with the others after an edit."""
    vocab = Vocabulary.load(run / "vocabulary.json")
    assignment = Assignment.load_jsonl(run / "assignments.jsonl")
    assignment.validate(vocab)
    table = SemanticIds.read(run / "semantic_ids.parquet")
    assert [(r.item_id, r.path, r.path_names, r.resolver) for r in SemanticIds.read(run / "semantic_ids.jsonl")] == \
           [(r.item_id, r.path, r.path_names, r.resolver) for r in table]
    assert {r.item_id: list(r.path) for r in table} == assignment.paths
    assert all(r.path_names == tuple(vocab[d].name for d in r.path) for r in table)
    assert json.loads((run / "token_vocabulary.json").read_text()) == json.loads(json.dumps(table.token_report(vocab)))
    assert set(vocab.prototypes) == {d.id for d in vocab}
    assert json.loads((run / "diagnostics.json").read_text())["vocabulary_descriptors"] == len(vocab)
    assert not (run / COMMIT_READY).exists() and not (run / COMMIT_STAGING).exists()
    assert not list(run.glob("*.tmp")) and not (run / "run.lock.json").exists()
    return vocab


def test_api_edits_on_a_run_folder(fitted, tmp_path):
    run = copy_run(fitted, tmp_path)
    tagger = AgenticTagger.load(run)
    vocab = tagger.vocabulary
    before = id_rows(tagger.semantic_ids)
    # The level-1 descriptor with the most children: its last child is deleted.
    parent = max(vocab.level(1), key=lambda d: len(d.children))
    assert len(parent.children) >= 2, vocab.render()
    gone = parent.children[-1]
    under = {i for i, (p, _, _) in before.items() if gone in p}
    assert under, "the deleted descriptor holds items"

    rec = tagger.delete(gone, catalog=tmp_path / "first.jsonl")
    after = id_rows(tagger.semantic_ids)
    assert rec["op"] == "delete" and rec["args"] == {"descriptor": gone}
    assert rec["reassigned_items"] == rec["affected_items"] == len(under)
    assert {i for i in before if before[i] != after[i]} == under  # only those items changed
    assert all(after[i][0][:1] == (parent.id,) for i in under)  # re-assigned within the parent
    assert {x["item_id"] for x in rec["items"]} == under
    assert all(x["before"] == list(before[x["item_id"]][0]) + [f"#{before[x['item_id']][2]}"] for x in rec["items"])
    new_vocab = check_run(run)
    assert gone not in new_vocab and new_vocab.meta["edits"] == 1

    # rename: no ID changes; the names follow.
    top = new_vocab.level(1)[0]
    rec = tagger.rename(top.id, "Renamed Top")
    assert rec["ids_changed"] == 0 and rec["renamed_items"] == sum(1 for p, _, _ in after.values() if top.id in p)
    assert {i: (p, r) for i, (p, _, r) in id_rows(tagger.semantic_ids).items()} == {i: (p, r) for i, (p, _, r) in after.items()}
    check_run(run)

    log = tagger.edit_log
    assert [r["op"] for r in log] == ["delete", "rename"] and [r["edit"] for r in log] == [1, 2]
    assert all({"time", "args", "affected_items", "items", "vocabulary_before", "vocabulary_after"} <= set(r) for r in log)

    # An invalid edit: refused, nothing written.
    snap = snapshot(run)
    with pytest.raises(EditError, match="inside its subtree"):
        tagger.move(top.id, new_vocab.children(top.id)[0].id if new_vocab.children(top.id) else top.id)
    assert snapshot(run) == snap and len(tagger.edit_log) == 2

    # save/load round-trips the edited run.
    back = AgenticTagger.load(tagger.save(tmp_path / "saved"))
    assert back.vocabulary.to_dict() == tagger.vocabulary.to_dict()
    pd.testing.assert_frame_equal(back.semantic_ids, tagger.semantic_ids)
    assert back.edit_log == tagger.edit_log
    assert back.diagnostics == tagger.diagnostics

    # New items still go in with --add semantics; the edited IDs stay.
    ids_now = id_rows(tagger.semantic_ids)
    tagger.transform(tmp_path / "new.jsonl")
    later = id_rows(tagger.semantic_ids)
    assert {i: later[i] for i in ids_now} == ids_now and len(later) == len(FIRST) + len(NEW)

    # Building or assigning again over the edits stops (it would discard them / renumber IDs).
    with pytest.raises(StaleStateError, match="edited"):
        tagger.assign(tmp_path / "first.jsonl")
    with pytest.raises(StaleStateError, match="edited"):
        tagger.build(tmp_path / "first.jsonl")

    # The explorer and the report still work on the edited run.
    from agentictagger.run.explorer import write_explorer

    assert write_explorer(run).exists()
    assert tagger.diagnostics["items"] == len(later)


def test_move_and_merge_on_a_run_folder(fitted, tmp_path):
    run = copy_run(fitted, tmp_path)
    tagger = AgenticTagger.load(run)
    vocab = tagger.vocabulary
    before = id_rows(tagger.semantic_ids)
    a = next(d for d in vocab.level(1) if d.children)
    sub = vocab.children(a.id)[0]
    b = next(d for d in vocab.level(1) if d.id != a.id)
    if sub.name in {c.name for c in vocab.children(b.id)}:
        tagger.rename(sub.id, "Moved Kinds")  # a move onto a same-named sibling is refused (tested elsewhere)
        vocab = tagger.vocabulary
        sub = vocab[sub.id]
    moved = {i for i, (p, _, _) in before.items() if sub.id in p}
    rec = tagger.move(sub.id, b.id)
    after = id_rows(tagger.semantic_ids)
    assert rec["repathed_items"] == rec["ids_changed"] == len(moved) and rec["reassigned_items"] == 0
    assert {i for i in before if before[i] != after[i]} == moved
    for i in moved:  # the same descriptors from sub.id down, the same resolver, under b
        p, _, r = before[i]
        assert after[i][0] == (b.id, *p[p.index(sub.id):]) and after[i][2] == r
    check_run(run)

    # merge a into b: a's remaining children go to b; items that stopped at a are re-assigned.
    vocab = tagger.vocabulary
    taken = {c.name for c in vocab.children(b.id)}
    for k, c in enumerate(vocab.children(a.id)):
        if c.name in taken:  # a merge that would give b two same-named children is refused (tested elsewhere)
            tagger.rename(c.id, f"Merged Kinds {k}")
    vocab = tagger.vocabulary
    after = id_rows(tagger.semantic_ids)
    stopped = {i for i, (p, _, _) in after.items() if p and p[-1] == a.id}
    through = {i for i, (p, _, _) in after.items() if a.id in p}
    rec = tagger.merge(a.id, into=b.id, catalog=tmp_path / "first.jsonl")
    final = id_rows(tagger.semantic_ids)
    assert rec["reassigned_items"] == len(stopped) and rec["repathed_items"] == len(through - stopped)
    assert {i for i in after if after[i] != final[i]} <= through
    assert {i: final[i] for i in after if i not in through} == {i: after[i] for i in after if i not in through}
    assert all(final[i][0][0] == b.id for i in through)
    v = check_run(run)
    assert a.id not in v and {c.id for c in vocab.children(a.id)} <= {c.id for c in v.children(b.id)}


def test_cli_edit_commands_and_errors(fitted, tmp_path):
    run = copy_run(fitted, tmp_path)
    vocab = Vocabulary.load(run / "vocabulary.json")
    top = vocab.level(1)[0]
    out = cli(tmp_path, "edit", str(run), "rename", top.id, "Everything Else", "--definition", "The rest")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"rename {top.id} -> 'Everything Else'" in out.stderr and "0 semantic ID(s) changed" in out.stderr
    assert Vocabulary.load(run / "vocabulary.json")[top.id].definition == "The rest"

    leaf = next(d for d in vocab if not d.children and d.level >= 2)
    n = sum(1 for p in Assignment.load_jsonl(run / "assignments.jsonl").paths.values() if leaf.id in p)
    out = cli(tmp_path, "edit", str(run), "delete", leaf.id, "--catalog", str(tmp_path / "first.jsonl"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{n} item(s) re-assigned" in out.stderr
    check_run(run)
    out = cli(tmp_path, "edit", str(run), "log")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2 and f"delete {leaf.id}" in out.stdout
    out = cli(tmp_path, "report", "--run-dir", str(run))  # the tree shows the new name
    assert out.returncode == 0 and "Everything Else" in out.stderr, out.stderr[-3000:]

    snap = snapshot(run)
    for args, message in [
        (("move", top.id, top.id), "inside its subtree"),
        (("merge", top.id, "d99"), "unknown target 'd99'"),
        (("delete", "zzz"), "unknown descriptor 'zzz'"),
    ]:
        out = cli(tmp_path, "edit", str(run), *args)
        assert out.returncode == 2 and message in error_line(out), out.stderr[-3000:]
    assert snapshot(run) == snap
    # Items that are in no catalog cannot be re-assigned: said in one line, nothing changes.
    (tmp_path / "other.jsonl").write_text(json.dumps({"item_id": "zz", "title": "unrelated"}) + "\n")
    out = cli(tmp_path, "edit", str(run), "delete", vocab.level(1)[1].id, "--catalog", str(tmp_path / "other.jsonl"))
    assert out.returncode == 2 and "have no text in" in error_line(out) and "--catalog" in error_line(out)
    assert snapshot(run) == snap
    # A plain assign over the edited table stops, naming the way out.
    out = cli(tmp_path, "assign", "--catalog", str(tmp_path / "first.jsonl"), "--run-dir", str(run),
              "--set", f"cache_dir={tmp_path / 'cache'}", *OFFLINE)
    assert out.returncode == 2 and "edited" in error_line(out) and "--add" in error_line(out)
    out = cli(tmp_path, "edit", str(tmp_path / "nowhere"), "delete", "d1")
    assert out.returncode == 2 and "config.yaml" in error_line(out)


def test_an_edit_killed_mid_commit_is_finished_or_discarded(fitted, tmp_path, monkeypatch):
    run = copy_run(fitted, tmp_path)
    tagger = AgenticTagger.load(run)
    vocab = tagger.vocabulary
    old = snapshot(run)
    top = vocab.level(1)[0]

    # Killed while staging (before the commit point): the old files stay, the staging goes.
    import agentictagger.assign.driver as assign_driver

    def crash(*a, **k):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(assign_driver, "write_outputs", crash)
    with pytest.raises(KeyboardInterrupt):
        tagger.rename(top.id, "Crashed")
    monkeypatch.undo()
    assert snapshot(run) == old and not (run / COMMIT_STAGING).exists() and not (run / "edits.jsonl").exists()
    (run / COMMIT_STAGING).mkdir()  # as a kill -9 would leave it
    (run / COMMIT_STAGING / "vocabulary.json").write_text("half")
    with RunLock(run, "test") as lock:
        assert any("did not commit" in n for n in lock.notes)
    assert snapshot(run) == old and not (run / COMMIT_STAGING).exists()

    # Killed after the commit point, with one file moved: the next locked command finishes it.
    real_replace = os.replace
    moved: list[str] = []

    def replace_once(src, dst):
        if Path(src).parent.name == COMMIT_READY and moved:
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)
        if Path(src).parent.name == COMMIT_READY:
            moved.append(Path(dst).name)

    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(KeyboardInterrupt):
        tagger.rename(top.id, "Half Done")
    monkeypatch.undo()
    assert len(moved) == 1 and (run / COMMIT_READY).is_dir()
    with RunLock(run, "test") as lock:
        assert any("committed change" in n for n in lock.notes)
    assert tagger.vocabulary[top.id].name == "Half Done"
    assert [r["op"] for r in tagger.edit_log] == ["rename"]
    from agentictagger.run.report import run_report

    run_report(run)  # diagnostics.json was removed with the commit; written again by any report
    check_run(run)
