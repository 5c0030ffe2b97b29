"""Trie-constrained beam search: only valid IDs, exact on small catalogues, critique constraint."""

import numpy as np
import torch

torch.set_num_threads(1)  # the cores are shared; more threads only spin

from agentictagger.recsys.critique import CallableSimulator, EmbeddingSimulator, allowed_matrix, group_index
from agentictagger.recsys.sidtable import Level1Descriptor
from agentictagger.structures.semantic_ids import SemanticId
from agentictagger.recsys.tiger import T5Config, TigerModel
from agentictagger.recsys.tokenizers import semantic_id_codes
from agentictagger.recsys.train import CodeBook, build_trie, recommend


def _catalogue(n_items=40, seed=0):
    """Variable-length paths, some a prefix of others, with collisions resolved by resolvers."""
    rng = np.random.default_rng(seed)
    rows, used = [], {}
    for i in range(n_items):
        l1 = f"d{rng.integers(1, 4)}"
        depth = int(rng.integers(1, 4))
        path = [l1] + [f"{l1}.{rng.integers(1, 3)}" if k == 1 else f"{l1}.1.{rng.integers(1, 3)}" for k in range(1, depth)]
        key = tuple(path)
        used[key] = used.get(key, -1) + 1
        rows.append(SemanticId(f"i{i}", key, key, used[key]))
    return semantic_id_codes(rows, [f"i{i}" for i in range(n_items)])


def _model(codes, seed=0):
    torch.manual_seed(seed)
    return TigerModel(T5Config(vocab_size=codes.vocab_size, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16))


def _histories(n_users, n_items, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_items, size=rng.integers(1, 8)) for _ in range(n_users)]


def test_beam_search_only_emits_valid_ids():
    codes = _catalogue(60)
    model, book, trie = _model(codes), CodeBook(codes), build_trie(codes)
    hists = _histories(200, codes.n_items)
    ranked = recommend(model, book, trie, hists, beam_size=20, batch_size=64)
    assert ranked.shape == (200, 20)
    assert ((ranked >= 0) & (ranked < codes.n_items)).all()  # every beam ends on a real item
    assert all(len(set(r)) == 20 for r in ranked.tolist())  # no duplicates within a user


def test_beam_search_matches_brute_force_when_exhaustive():
    codes = _catalogue(25, seed=3)
    model, book, trie = _model(codes, seed=2), CodeBook(codes), build_trie(codes)
    hists = _histories(6, codes.n_items, seed=4)
    ids = book.encoder_batch(hists)
    items, scores = model.beam_search(ids, trie, beam_size=codes.n_items)
    labels = book.label_batch(np.arange(codes.n_items))
    for u in range(len(hists)):
        ll = model.log_likelihood(ids[u : u + 1].repeat(codes.n_items, 1), labels)
        assert items[u].tolist() == torch.argsort(ll, descending=True).tolist()
        assert torch.allclose(scores[u], ll[items[u]], atol=1e-4)


def test_critique_constrained_decoding_only_returns_allowed_level1():
    codes = _catalogue(60, seed=5)
    descs = [Level1Descriptor(f"d{i}", f"name{i}", "") for i in (1, 2, 3)]
    groups, gids = group_index(codes.item_level1, descs)
    model, book = _model(codes), CodeBook(codes)
    trie = build_trie(codes, groups, len(gids))
    rng = np.random.default_rng(0)
    allowed = [[g for g in gids if rng.random() < 0.5] or [gids[0]] for _ in range(150)]
    am = allowed_matrix(allowed, gids)
    hists = _histories(150, codes.n_items, seed=6)
    ranked = recommend(model, book, trie, hists, beam_size=20, batch_size=64, allowed_groups=am)
    for u, row in enumerate(ranked):
        valid = [i for i in row if i >= 0]
        n_allowed = int(am[u][groups].sum())
        assert len(valid) == min(20, n_allowed)  # full beam unless fewer items are allowed
        assert all(am[u, groups[i]] for i in valid)
    # Exhaustive beams: the constrained ranking is the unconstrained ranking filtered to allowed items.
    ids = book.encoder_batch(hists[:3])
    full, _ = model.beam_search(ids, build_trie(codes), beam_size=codes.n_items)
    con, _ = model.beam_search(ids, trie, beam_size=codes.n_items, allowed_groups=torch.from_numpy(am[:3]))
    for u in range(3):
        expect = [i for i in full[u].tolist() if am[u, groups[i]]]
        assert [i for i in con[u].tolist() if i >= 0] == expect


def test_simulators():
    descs = [Level1Descriptor("d1", "lipstick", "lip colour"), Level1Descriptor("d2", "shampoo", "hair wash"),
             Level1Descriptor("d3", "nail polish", "nail lacquer")]
    vocab = sorted({w for d in descs for w in d.text.replace(":", "").split()} | {"red", "matte", "dry"})

    def encode(texts):  # bag of words: deterministic and enough to check the top-k logic
        return np.array([[t.replace(":", "").split().count(w) for w in vocab] for t in texts], dtype=np.float32)

    sim = EmbeddingSimulator(descs, encode, k=2)
    got = sim.allowed(["red matte lipstick lip colour", "nail lacquer nail polish"])
    assert got[0][0] == "d1" and got[1][0] == "d3" and all(len(g) == 2 for g in got)
    llm = CallableSimulator(descs, lambda text, ds: ["d2"] if "hair" in text else ["d1", "d3"])
    assert llm.allowed(["dry hair", "red"]) == [["d2"], ["d1", "d3"]]
    bad = CallableSimulator(descs, lambda text, ds: ["d9"])
    try:
        bad.allowed(["x"])
    except ValueError as exc:
        assert "d9" in str(exc)
    else:
        raise AssertionError("unknown id accepted")
