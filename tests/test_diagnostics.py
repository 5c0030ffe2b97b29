"""Diagnostics on hand-made cases, checked by hand and against scikit-learn; the free-form baseline."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import normalized_mutual_info_score

from agentictagger.structures.assignment import Assignment
from agentictagger.run.report import compute_diagnostics, purity, render_tables, run_report, save_diagnostics, utilization
from agentictagger.vocab.freeform import compare, llm_keywords, normalise_keyword, tfidf_keywords
from agentictagger.llm.types import ChatResponse, JsonSchemaConstraint, LLMError
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary


def vocab() -> Vocabulary:
    v = Vocabulary()
    a, b, c = v.add_children(ROOT_ID, [("Hair", "h"), ("Nails", "n"), ("Unused", "u")])
    v.add_children(a.id, [("Shampoo", "s"), ("Dryer", "d")])
    v.add_children(b.id, [("Polish", "p")])
    return v


PATHS = {
    "1": ["d1", "d1.1"],
    "2": ["d1", "d1.1"],
    "3": ["d1", "d1.2"],
    "4": ["d2", "d2.1"],
    "5": ["d2", "d2.1"],
    "6": ["d2"],
}
LABELS = {"1": "hair > wash", "2": "hair > wash", "3": "nails > x", "4": "nails > paint", "5": "nails > paint", "6": None}


def test_coverage_cardinality_utilization_collisions_depth():
    d = compute_diagnostics(Assignment(dict(PATHS)), vocab())
    assert d["coverage_per_level"] == {1: 1.0, 2: 5 / 6}
    # Level 2: every item's level-1 node has children except none -> 6 could, 5 did.
    assert d["coverage_where_children_exist"][2] == pytest.approx(5 / 6)
    assert d["cardinality_per_level"] == {1: {"used": 2, "vocabulary": 3}, 2: {"used": 3, "vocabulary": 3}}
    u = d["utilization"]
    # Used by >1 item: d1 (3), d2 (3), d1.1 (2), d2.1 (2); d1.2 once; d3 never. 6 descriptors.
    assert u["used_by_more_than_one"] == 4 and u["unique_terms"] == 5
    assert u["over_vocabulary"] == pytest.approx(4 / 6) and u["over_used"] == pytest.approx(4 / 5)
    assert u["per_level"][1]["over_vocabulary"] == pytest.approx(2 / 3)
    c = d["collisions"]
    assert c["distinct_paths"] == 4 and c["collision_rate"] == pytest.approx(4 / 6)
    assert c["largest_bucket"] == 2 and c["largest_bucket_path"] in (["Hair", "Shampoo"], ["Nails", "Polish"])
    assert d["depth_distribution"] == {1: 1, 2: 5}
    assert "label_agreement" not in d


def test_nmi_and_purity_match_sklearn_and_hand_counts():
    d = compute_diagnostics(Assignment(dict(PATHS)), vocab(), LABELS)
    rows = {(r["level"], r["label_level"]): r for r in d["label_agreement"]}
    ids = ["1", "2", "3", "4", "5"]  # item 6 has no label
    ours1 = [PATHS[i][0] for i in ids]
    truth1 = ["hair", "hair", "nails", "nails", "nails"]
    r = rows[(1, 1)]
    assert r["items"] == 5 and r["nmi"] == pytest.approx(normalized_mutual_info_score(truth1, ours1))
    # d1 = {hair, hair, nails} -> 2; d2 = {nails, nails} -> 2: purity 4/5.
    assert r["purity"] == pytest.approx(4 / 5)
    r2 = rows[(2, 2)]
    assert r2["purity"] == 1.0 and r2["nmi"] == pytest.approx(1.0)
    assert purity(["a", "a", "b"], ["x", "y", "y"]) == pytest.approx(2 / 3)


def test_utilization_counts_a_term_once_per_item():
    u = utilization([["a", "a", "b"], ["b"], ["c"]])
    assert u == {"unique_terms": 3, "used_by_more_than_one": 1, "over_used": pytest.approx(1 / 3)}
    assert utilization([["a"], ["a"]], ["a", "b"])["over_vocabulary"] == 0.5


def test_report_files_and_table(tmp_path):
    v = vocab()
    v.save(tmp_path / "vocabulary.json")
    Assignment(dict(PATHS)).save_jsonl(tmp_path / "assignments.jsonl")

    class Item:
        def __init__(self, i):
            self.item_id, self.text, self.label = i, "t", LABELS[i]

    d = run_report(tmp_path, [Item(i) for i in PATHS])
    assert (tmp_path / "diagnostics.json").exists()
    assert d["token_vocabulary"]["vocab_size"] == "5+2"
    assert len(render_tables(d)) == 3
    save_diagnostics(d, tmp_path / "again.json")
    Assignment({"1": ["d3", "d1.1"]}).save_jsonl(tmp_path / "assignments.jsonl")
    with pytest.raises(ValueError, match="not a child"):
        run_report(tmp_path)


def test_tfidf_keywords_and_side_by_side():
    texts = ["red nail polish", "pink nail polish", "hair dryer ionic", "shampoo for dry hair"]
    kws = tfidf_keywords(texts, n=3)
    assert all(len(k) <= 3 for k in kws) and "dryer" in kws[2]
    assert tfidf_keywords(texts, 3) == kws  # deterministic
    cmp = compare([["d1"], ["d1"], ["d2"]], ["d1", "d2", "d3"], {"tfidf": kws})
    assert cmp["ours"]["over_used"] == 0.5 and cmp["ours"]["over_vocabulary"] == pytest.approx(1 / 3)
    assert cmp["tfidf"]["items"] == 4
    assert normalise_keyword("  Nail   Polish. ") == "nail polish"


def test_llm_keywords_with_a_scripted_client():
    class Client:
        def map(self, requests, stage, progress=None):
            assert all(isinstance(r.constraint, JsonSchemaConstraint) for r in requests)
            assert requests[0].constraint.schema["properties"]["keywords"]["maxItems"] == 3
            out = [ChatResponse(text="", parsed={"keywords": ["Nail Polish", "red", "Gloss!"]})]
            return out + [LLMError("down")]

    class It:
        def __init__(self, t):
            self.item_id, self.text = t, t

    kws, stats = llm_keywords([It("a"), It("b")], Client())
    assert kws == [["nail polish", "red", "gloss"], []]
    assert stats["failed_calls"] == 1 and not math.isnan(utilization(kws)["over_used"])
