"""The trainer on a tiny deterministic task: both models learn it; the budget is honoured."""

import numpy as np
import torch
import pytest

torch.set_num_threads(1)  # the cores are shared; more threads only spin

from agentictagger.recsys.data import SequenceData, leave_last_out
from agentictagger.recsys.sasrec import SASRecConfig, evaluate_sasrec, fit_sasrec
from agentictagger.recsys.tiger import T5Config
from agentictagger.recsys.tokenizers import rq_kmeans_codes
from agentictagger.recsys.train import TrainConfig, bucketed_batches, evaluate_generative, fit_generative, lr_factor


def _chain_data(n_items=30, n_users=200, seed=0):
    """Every user walks i, i+1, i+2, ... (mod n_items): the next item is fully determined."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_users):
        s, length = rng.integers(0, n_items), rng.integers(4, 9)
        seqs.append([f"i{(s + j) % n_items}" for j in range(length)])
    return SequenceData.from_id_sequences([f"u{u}" for u in range(n_users)], seqs)


def test_sasrec_learns_chain():
    data = _chain_data()
    split = leave_last_out(data)
    tc = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=64, max_epochs=40, patience=3, seed=0)
    run = fit_sasrec(split, data.n_items, SASRecConfig(n_items=data.n_items, d_model=32, dropout=0.1), tc)
    m = evaluate_sasrec(run, split.test)
    assert m["R@5"] > 0.9  # a random ranking would score 5/30
    assert run.fit.best_valid["N@10"] == max(h["N@10"] for h in run.fit.history)


def _tiny_generative_setup():
    data = _chain_data(n_items=24, n_users=150)
    split = leave_last_out(data)
    emb = np.random.default_rng(0).normal(size=(data.n_items, 8))
    codes = rq_kmeans_codes(emb, (4, 4, 4))
    cfg = T5Config(vocab_size=codes.vocab_size, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16)
    return data, split, codes, cfg


def test_generative_learns_chain():
    data, split, codes, cfg = _tiny_generative_setup()
    tc = TrainConfig(lr=0.01, batch_size=64, max_epochs=500, patience=500, beam_size=10, max_steps=150,
                     eval_every_steps=50)
    run = fit_generative(codes, split, cfg, tc)
    assert run.fit.stopped_by == "max_steps" and run.fit.steps == 150
    m, ranked = evaluate_generative(run, split.test)
    assert ((ranked >= 0) & (ranked < data.n_items)).all()
    assert m["R@10"] > 0.8  # a random list of 10 out of 24 would score 0.42


def test_generative_respects_time_budget():
    _, split, codes, cfg = _tiny_generative_setup()
    tc = TrainConfig(batch_size=64, max_epochs=10_000, patience=10_000, beam_size=10, budget_minutes=0.03)
    run = fit_generative(codes, split, cfg, tc)
    assert run.fit.stopped_by == "budget"
    assert run.fit.train_seconds < 0.03 * 60 + 5  # one last validation may run past the budget
    assert run.fit.history and run.fit.history[-1]["step"] == run.fit.steps


def test_bucketing_and_schedule():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=1000)
    batches = bucketed_batches(lengths, 100, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert max(np.ptp(lengths[b]) for b in batches) <= 6  # each batch holds similar lengths
    assert lr_factor(0.0, 0.1) == pytest.approx(1e-3) and lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(1.0, 0.1) == pytest.approx(0.0)


def test_generative_checkpoint_resumes_and_other_codes_never_share_it(tmp_path):
    """A finished generative fit with a checkpoint folder is returned again without training; a
    run on other codes (or settings) gets its own checkpoint."""
    from agentictagger.recsys import train as train_mod

    _, split, codes, cfg = _tiny_generative_setup()
    tc = TrainConfig(lr=0.01, batch_size=64, max_epochs=2, patience=2, beam_size=10)
    first = fit_generative(codes, split, cfg, tc, checkpoint_dir=tmp_path)
    ckpts = list(tmp_path.glob("*/checkpoint.pt"))
    assert len(ckpts) == 1 and ckpts[0].parent.name.startswith(f"{codes.name}-")
    real, calls = train_mod.evaluate_rankings, {"n": 0}

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    train_mod.evaluate_rankings = counted
    try:
        again = fit_generative(codes, split, cfg, tc, checkpoint_dir=tmp_path)
    finally:
        train_mod.evaluate_rankings = real
    assert calls["n"] == 0 and again.fit.history == first.fit.history and again.fit.steps == first.fit.steps
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    other = rq_kmeans_codes(np.random.default_rng(1).normal(size=(len(codes.codes), 8)), (4, 4, 4))
    fit_generative(other, split, cfg, tc, checkpoint_dir=tmp_path)
    fit_generative(codes, split, cfg, TrainConfig(lr=0.01, batch_size=64, max_epochs=1, patience=1, beam_size=10),
                   checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("*/checkpoint.pt"))) == 3
