"""Tokenizers give one unique code per item; the semantic-ID table round-trips."""

import json

import numpy as np
import pytest

from agentictagger.recsys.sidtable import read_level1_descriptors, read_semantic_id_table
from agentictagger.structures.semantic_ids import SemanticId, SemanticIds
from agentictagger.recsys.tokenizers import N_SPECIAL, random_codes_like, rq_kmeans_codes, semantic_id_codes

ROWS = [
    SemanticId("i0", ("d1", "d1.1"), ("Skin", "Moisturiser"), 0),
    SemanticId("i1", ("d1", "d1.1"), ("Skin", "Moisturiser"), 1),
    SemanticId("i2", ("d1",), ("Skin",), 0),
    SemanticId("i3", ("d2", "d2.1", "d2.1.1"), ("Hair", "Shampoo", "Dry hair"), 0),
]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_semantic_id_table_round_trip(tmp_path, suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / f"sid{suffix}"
    recs = [{"item_id": r.item_id, "path": list(r.path), "path_names": list(r.path_names), "resolver": r.resolver}
            for r in ROWS]
    if suffix == ".parquet":  # written with pyarrow directly, as the assignment code does
        pq.write_table(pa.Table.from_pylist(recs), p)
    else:
        p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert read_semantic_id_table(p) == ROWS
    q = tmp_path / f"again{suffix}"
    getattr(SemanticIds(list(ROWS)), f"save_{suffix[1:]}")(q)
    assert read_semantic_id_table(q) == ROWS


def test_table_errors_name_the_items(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"item_id": "a", "path": ["d1"], "resolver": 0}) + "\n"
                 + json.dumps({"item_id": "b", "path": ["d1"], "resolver": 0}) + "\n")
    with pytest.raises(ValueError, match="items a and b share path"):
        read_semantic_id_table(p)


def test_semantic_id_codes():
    codes = semantic_id_codes(ROWS, ["i3", "i0", "i1", "i2"])
    assert len(set(codes.codes)) == 4
    assert [len(c) for c in codes.codes] == [4, 3, 3, 2]  # path + resolver
    # descriptor tokens are shared across items; resolver tokens are shared across paths
    assert codes.codes[1][:2] == codes.codes[2][:2] and codes.codes[1][2] != codes.codes[2][2]
    assert codes.codes[3][0] == codes.codes[1][0] and codes.codes[3][1] == codes.codes[1][2]
    assert (codes.n_base_tokens, codes.n_resolver_tokens) == (5, 2)
    assert codes.vocab_size == N_SPECIAL + 5 + 2
    assert codes.item_level1 == ["d2", "d1", "d1", "d1"]
    with pytest.raises(ValueError, match="lacks 1 of"):
        semantic_id_codes(ROWS, ["i0", "missing"])


def test_rq_kmeans_and_random_codes_unique():
    rng = np.random.default_rng(0)
    emb = np.repeat(rng.normal(size=(30, 8)), 3, axis=0)  # triplicates force collisions
    codes = rq_kmeans_codes(emb, (4, 4, 4), seed=0)
    assert len(codes.codes) == 90 and len(set(codes.codes)) == 90
    assert all(len(c) == 4 for c in codes.codes)
    assert codes.n_base_tokens == 12 and codes.n_resolver_tokens >= 3
    rnd = random_codes_like(codes, seed=1)
    assert len(set(rnd.codes)) == 90 and sorted(rnd.codes) == sorted(codes.codes)
    assert rnd.codes != codes.codes


def test_level1_reader(tmp_path):
    p = tmp_path / "vocabulary.json"
    p.write_text(json.dumps({"descriptors": [
        {"id": "d1", "name": "Skin", "definition": "skin care", "level": 1, "parent": "root", "item_count": 3},
        {"id": "d1.1", "name": "Moist", "definition": "", "level": 2, "parent": "d1", "item_count": 2}]}))
    (d,) = read_level1_descriptors(p)
    assert (d.id, d.text) == ("d1", "Skin: skin care")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_reads_tables_written_by_the_assignment_code(tmp_path, fmt):
    """The contract with agentictagger.structures.semantic_ids: its files load here unchanged."""
    sid = pytest.importorskip("agentictagger.structures.semantic_ids")
    table = sid.SemanticIds([sid.SemanticId(r.item_id, r.path, r.path_names, r.resolver) for r in ROWS])
    p = tmp_path / f"semantic_ids.{fmt}"
    getattr(table, f"save_{fmt}")(p)
    assert read_semantic_id_table(p) == ROWS
