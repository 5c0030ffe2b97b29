"""The feature-aware ranker (§5.2): item representations, the sampled-negative protocol, RQ-VAE."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

from agentictagger.recsys.data import SequenceData, leave_last_out
from agentictagger.recsys.metrics import evaluate_sampled, sample_negatives
from agentictagger.recsys.ranking import (FeatureSASRec, ItemFeatures, RankerConfig, evaluate_ranker, fit_ranker,
                                          softmax_cross_entropy)
from agentictagger.structures.semantic_ids import SemanticId
from agentictagger.recsys.tokenizers import RQVAEConfig, rq_vae_codes, semantic_id_codes
from agentictagger.recsys.train import TrainConfig


def _three_items():
    """Items x, y (same path a/b, resolvers 0 and 1) and z (path a/c)."""
    rows = [SemanticId("x", ("a", "a.b"), ("A", "B"), 0), SemanticId("y", ("a", "a.b"), ("A", "B"), 1),
            SemanticId("z", ("a", "a.c"), ("A", "C"), 0)]
    return semantic_id_codes(rows, ["x", "y", "z"])


def _model_with_rows(feats: ItemFeatures) -> FeatureSASRec:
    """Embedding row r holds the value r in every dimension, so a sum of rows reads as the sum of ids."""
    m = FeatureSASRec(RankerConfig(d_model=4, num_layers=1, num_heads=1, dropout=0.0, max_len=3), feats)
    with torch.no_grad():
        m.tok.weight.copy_(torch.arange(feats.n_tokens, dtype=torch.float32)[:, None].expand(-1, 4))
    return m


def test_item_representations_are_the_right_embedding_sums():
    codes = _three_items()
    # token ids: <pad>=0 <eos>=1, a=2, a.b=3, a.c=4, then resolvers <r0>=5, <r1>=6
    assert codes.codes == [(2, 3, 5), (2, 3, 6), (2, 4, 5)]
    # (a) one-hot item ID: item i is row i + 1 -> values 1, 2, 3
    a = _model_with_rows(ItemFeatures.item_ids(3)).item_table()[:, 0]
    assert a.tolist() == [1.0, 2.0, 3.0]
    # (b)/(c) descriptor path + resolver: x = a + a.b + r0 = 2 + 3 + 5, y = 2 + 3 + 6, z = 2 + 4 + 5
    desc = ItemFeatures.from_codes(codes)
    b = _model_with_rows(desc).item_table()[:, 0]
    assert b.tolist() == [10.0, 11.0, 11.0]
    # (d) item ID + descriptors: the descriptor rows are shifted past the item-ID table (3 rows + pad)
    both = ItemFeatures.item_ids(3) + desc
    assert both.tokens == [(1, 5, 6, 8), (2, 5, 6, 9), (3, 5, 7, 8)] and both.n_tokens == 4 + 7 - 1
    d = _model_with_rows(both).item_table()[:, 0]
    assert d.tolist() == [1 + 5 + 6 + 8.0, 2 + 5 + 6 + 9.0, 3 + 5 + 7 + 8.0]
    # shared descriptors get one gradient from every item under them; item-ID rows only from their item
    m = FeatureSASRec(RankerConfig(d_model=4, num_layers=1, num_heads=1, dropout=0.0, max_len=3), both)
    m.item_table()[0].sum().backward()  # only item x
    touched = set(torch.nonzero(m.tok.weight.grad.abs().sum(1)).flatten().tolist())
    assert touched == {1, 5, 6, 8}


def test_rare_items_share_one_id_row_beside_their_descriptors():
    desc = ItemFeatures.from_codes(_three_items())
    warm = ItemFeatures.warm_item_ids(np.array([9, 2, 6]), min_count=6)  # y is rare
    assert warm.tokens == [(1,), (4,), (3,)] and warm.n_tokens == 5
    assert warm.meta["items_sharing_the_rare_id"] == 1
    both = warm + desc
    assert both.tokens == [(1, 6, 7, 9), (4, 6, 7, 10), (3, 6, 8, 9)]  # descriptors shifted past 4 ID rows + pad
    d = _model_with_rows(both).item_table()[:, 0]
    assert d.tolist() == [1 + 6 + 7 + 9.0, 4 + 6 + 7 + 10.0, 3 + 6 + 8 + 9.0]


def test_item_id_dropout_and_cold_items_without_their_id():
    desc = ItemFeatures.from_codes(_three_items())
    both = ItemFeatures.item_ids(3) + desc
    assert both.id_first and not desc.id_first
    m = FeatureSASRec(RankerConfig(d_model=4, num_layers=1, num_heads=1, dropout=0.0, max_len=3, id_dropout=0.5,
                                   id_min_count=6), both)
    with torch.no_grad():
        m.tok.weight.copy_(torch.arange(both.n_tokens, dtype=torch.float32)[:, None].expand(-1, 4))
    m.keep_ids_of(np.array([9, 2, 6]))  # y is cold
    m.eval()
    assert m.item_table()[:, 0].tolist() == [1 + 5 + 6 + 8.0, 5 + 6 + 9.0, 3 + 5 + 7 + 8.0]
    m.train()
    torch.manual_seed(0)
    seen = {tuple(m.item_table()[:, 0].tolist()) for _ in range(20)}
    assert (5 + 6 + 8.0, 5 + 6 + 9.0, 5 + 7 + 8.0) in seen and (20.0, 22.0, 23.0) in seen  # IDs dropped and kept
    with pytest.raises(ValueError, match="first token is the item ID"):
        FeatureSASRec(RankerConfig(d_model=4, num_heads=1, id_dropout=0.5), desc)


def test_chunked_cross_entropy_equals_the_reference():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 16, generator=g, requires_grad=True)
    W = torch.randn(97, 16, generator=g, requires_grad=True)
    t = torch.randint(0, 97, (300,), generator=g)
    ref = F.cross_entropy(h @ W.t(), t)
    gh, gW = torch.autograd.grad(ref, (h, W))
    got = softmax_cross_entropy(h, W, t, chunk=64)
    ch, cW = torch.autograd.grad(got, (h, W))
    assert torch.allclose(ref, got, atol=1e-5)
    assert torch.allclose(gh, ch, atol=1e-6) and torch.allclose(gW, cW, atol=1e-6)


def test_sampled_negatives_never_hit_the_positive_or_history():
    rng = np.random.default_rng(3)
    n_items = 150
    seqs = [rng.choice(n_items, size=rng.integers(5, 45), replace=False) for _ in range(200)]
    neg = sample_negatives(n_items, seqs, n_neg=100, seed=7)
    assert neg.shape == (200, 100)
    for s, row in zip(seqs, neg):
        assert not set(row.tolist()) & set(s.tolist())  # neither history nor target
        assert len(set(row.tolist())) == 100  # without replacement
    assert (sample_negatives(n_items, seqs, 100, seed=7) == neg).all()  # the same draw for every model
    with pytest.raises(ValueError, match="cannot draw 100 negatives"):
        sample_negatives(120, [np.arange(30)], 100)


def test_sampled_metrics_by_hand():
    # positive in column 0: rank 0, rank 2, and a tie (counted against the positive: rank 1)
    scores = np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.3], [0.4, 0.4, 0.0]])
    m = evaluate_sampled(scores, ks=(1, 2))
    assert m["R@1"] == pytest.approx(1 / 3) and m["R@2"] == pytest.approx(2 / 3)
    assert m["N@2"] == pytest.approx((1 + 1 / np.log2(3)) / 3)


def test_rq_vae_codes_are_unique_after_the_dedup_digit():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 12))
    emb = np.concatenate([c + 0.01 * rng.normal(size=(40, 12)) for c in centres])  # 240 items, heavy collisions
    codes = rq_vae_codes(emb, RQVAEConfig(hidden=(32,), latent_dim=4, codebook_sizes=(8, 8), epochs=5, batch_size=64))
    assert len(set(codes.codes)) == len(codes.codes) == 240
    base = [c[:-1] for c in codes.codes]
    assert len(set(base)) < 240  # the dedup digit did real work
    assert codes.meta["distinct_codes_before_dedup"] == len(set(base))
    assert codes.meta["collision_rate"] > 0


def test_descriptor_features_learn_a_category_walk():
    """Users alternate between two descriptor groups; items are seen once each in training, so only
    shared descriptor embeddings can carry the pattern to items whose IDs never appear as targets."""
    rng = np.random.default_rng(0)
    n_per = 40
    rows = [SemanticId(f"i{i}", ("g0" if i < n_per else "g1",), ("G0" if i < n_per else "G1",), i % n_per)
            for i in range(2 * n_per)]
    seqs = []
    for u in range(300):
        start = rng.integers(0, 2)
        seqs.append([f"i{(rng.integers(0, n_per)) + n_per * ((start + j) % 2)}" for j in range(6)])
    data = SequenceData.from_id_sequences([f"u{u}" for u in range(300)], seqs)
    split = leave_last_out(data)
    codes = semantic_id_codes(rows, data.item_ids)
    tc = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=64, max_epochs=15, patience=15, seed=0)
    cfg = RankerConfig(d_model=16, num_layers=1, num_heads=1, dropout=0.0, max_len=5)
    neg = sample_negatives(data.n_items, [data.sequences[u] for u in split.test.users], 30, seed=0)
    res = {}
    for name, feats in {"item_id": ItemFeatures.item_ids(data.n_items),
                        "descriptors": ItemFeatures.from_codes(codes)}.items():
        run = fit_ranker(split, feats, cfg, tc)
        res[name] = evaluate_ranker(run, split.test, neg, ks=(10,))
    # the next item is in the other group: half the candidates are right, so a model that learned
    # the groups ranks the positive above most negatives
    assert res["descriptors"]["sampled"]["N@10"] > res["item_id"]["sampled"]["N@10"]
    assert res["descriptors"]["sampled"]["R@10"] > 0.5
