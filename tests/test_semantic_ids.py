"""Semantic-ID table: unique per item, deterministic resolvers, Parquet/JSONL round-trip, exact columns."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from agentictagger.structures.assignment import Assignment
from agentictagger.structures.semantic_ids import COLUMNS, SemanticId, SemanticIds
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary


def vocab() -> Vocabulary:
    v = Vocabulary()
    a, b = v.add_children(ROOT_ID, [("Hair", "h"), ("Nails", "n")])
    v.add_children(a.id, [("Shampoo", "s"), ("Dryer", "d")])
    return v


def assignment() -> Assignment:
    return Assignment(
        {
            "i1": ["d1", "d1.1"],
            "i2": ["d2"],
            "i3": ["d1", "d1.1"],
            "i4": ["d1", "d1.2"],
            "i5": ["d1", "d1.1"],
            "i6": ["d2"],
            "i7": ["d1"],  # a shorter path under a node that has children
        }
    )


def test_every_item_gets_a_unique_id_with_resolvers_in_catalog_order():
    s = SemanticIds.from_assignment(assignment(), vocab())
    ids = [r.path + (r.resolver,) for r in s]
    assert len(set(ids)) == len(ids) == 7
    assert [s[i].resolver for i in ("i1", "i3", "i5")] == [0, 1, 2]
    assert [s[i].resolver for i in ("i2", "i6")] == [0, 1]
    assert s["i4"].resolver == 0 and s["i7"].resolver == 0
    assert s["i4"].path_names == ("Hair", "Dryer")
    assert s["i7"].tokens == ("d1", "#0")
    # Deterministic: the same assignment gives the same table.
    assert list(SemanticIds.from_assignment(assignment(), vocab())) == list(s)


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="share the semantic ID"):
        SemanticIds([SemanticId("a", ("d1",), ("Hair",), 0), SemanticId("b", ("d1",), ("Hair",), 0)])
    with pytest.raises(ValueError, match="more than once"):
        SemanticIds([SemanticId("a", ("d1",), ("Hair",), 0), SemanticId("a", ("d1",), ("Hair",), 1)])


def test_parquet_and_jsonl_round_trip_with_exact_columns(tmp_path):
    s = SemanticIds.from_assignment(assignment(), vocab())
    s.save_parquet(tmp_path / "s.parquet")
    s.save_jsonl(tmp_path / "s.jsonl")
    assert list(SemanticIds.read(tmp_path / "s.parquet")) == list(s)
    assert list(SemanticIds.read(tmp_path / "s.jsonl")) == list(s)
    t = pq.read_table(tmp_path / "s.parquet")
    assert tuple(t.column_names) == COLUMNS
    assert [str(f.type) for f in t.schema] == ["string", "list<element: string>", "list<element: string>", "int64"]
    first = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    assert first == {"item_id": "i1", "path": ["d1", "d1.1"], "path_names": ["Hair", "Shampoo"], "resolver": 0}


def test_table_reads_in_the_recommender_reader(tmp_path):
    sidtable = pytest.importorskip("agentictagger.recsys.sidtable")
    s = SemanticIds.from_assignment(assignment(), vocab())
    s.save_parquet(tmp_path / "s.parquet")
    rows = sidtable.read_semantic_id_table(tmp_path / "s.parquet")
    assert [(r.item_id, r.path, r.resolver) for r in rows] == [(r.item_id, r.path, r.resolver) for r in s]


def test_token_report_base_tokens_plus_resolvers():
    rep = SemanticIds.from_assignment(assignment(), vocab()).token_report(vocab())
    # Used descriptors: d1, d2, d1.1, d1.2 (4); largest bucket (d1 > d1.1) has 3 items -> 3 resolvers.
    assert rep["base_tokens"] == 4 and rep["resolvers"] == 3 and rep["vocab_size"] == "4+3"
    assert rep["base_tokens_per_level"] == {1: 2, 2: 2}
    assert rep["vocabulary_descriptors"] == 4 and rep["max_id_length"] == 3
