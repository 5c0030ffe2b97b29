"""Item-ID SASRec as a literature anchor: resumable training, the leave-last-out split, padding
trimming and the full-ranking protocol."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from agentictagger.recsys.data import SequenceData, leave_last_out
from agentictagger.recsys.ranking import (FeatureSASRec, ItemFeatures, RankerConfig, fit_ranker, rank_items,
                                          right_aligned, trim_padding)
from agentictagger.recsys.train import TrainConfig


def _walk_data(n_users: int = 40, n_items: int = 12, seed: int = 0) -> SequenceData:
    """Users walk the item ring i -> i + 1 (with noise), lengths 3..14."""
    rng = np.random.default_rng(seed)
    users, seqs = [], []
    for u in range(n_users):
        start, n = int(rng.integers(n_items)), int(rng.integers(3, 15))
        seq = [(start + j + int(rng.random() < 0.2)) % n_items for j in range(n)]
        users.append(f"u{u}")
        seqs.append([f"i{x}" for x in seq])
    return SequenceData.from_id_sequences(users, seqs)


def _fit(tmp_path, validate_hook=None, max_epochs: int = 5):
    data = _walk_data()
    split = leave_last_out(data, 8)
    cfg = RankerConfig(d_model=16, num_layers=1, num_heads=1, dropout=0.3, max_len=8, ff_mult=1)
    tc = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=16, max_epochs=max_epochs, patience=100,
                     warmup_steps=2, seed=3, max_history=8, lr_schedule="constant", grad_clip=0.0)
    if validate_hook is None:
        return fit_ranker(split, ItemFeatures.item_ids(data.n_items), cfg, tc, torch.device("cpu"), tmp_path)
    import agentictagger.recsys.ranking as ranking

    real = ranking.evaluate_rankings
    calls = {"n": 0}

    def hooked(*a, **k):
        calls["n"] += 1
        validate_hook(calls["n"])
        return real(*a, **k)

    ranking.evaluate_rankings = hooked
    try:
        return fit_ranker(split, ItemFeatures.item_ids(data.n_items), cfg, tc, torch.device("cpu"), tmp_path), calls
    finally:
        ranking.evaluate_rankings = real


def _curve(fit):
    drop = {"seconds", "steps_per_s", "validation_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in fit.history]


class _Killed(Exception):
    pass


def test_resume_after_a_kill_continues_the_uninterrupted_run(tmp_path):
    ref = _fit(tmp_path / "a")

    def die_in_epoch_3(n):
        if n == 3:  # epoch 3 trained, its checkpoint not yet written: the process dies
            raise _Killed

    with pytest.raises(_Killed):
        _fit(tmp_path / "b", die_in_epoch_3)
    ckpts = list((tmp_path / "b").glob("*/checkpoint.pt"))
    assert len(ckpts) == 1 and ckpts[0].parent.name.startswith("item_id-")
    assert torch.load(ckpts[0], weights_only=False)["state"]["epoch"] == 2
    resumed, calls = _fit(tmp_path / "b", lambda n: None)
    assert calls["n"] == 3  # epochs 3, 4, 5 only
    assert _curve(resumed.fit) == _curve(ref.fit)
    assert resumed.fit.best_step == ref.fit.best_step and resumed.fit.steps == ref.fit.steps
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    state = torch.load(ckpts[0], weights_only=False)["state"]
    assert state["finished"] and state["resumed_at_epochs"] == [2]
    # a finished run is returned as it is, without training or validating again
    again, calls = _fit(tmp_path / "b", lambda n: None)
    assert calls["n"] == 0 and _curve(again.fit) == _curve(ref.fit)
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


def test_other_settings_never_resume_a_foreign_run(tmp_path):
    _fit(tmp_path, max_epochs=2)
    _fit(tmp_path, max_epochs=3)
    assert len(list(tmp_path.glob("*/checkpoint.pt"))) == 2


def test_history_records_loss_and_throughput(tmp_path):
    fit = _fit(tmp_path, max_epochs=2).fit
    assert [r["epoch"] for r in fit.history] == [1.0, 2.0]
    for r in fit.history:
        assert r["train_loss"] > 0 and r["steps_per_s"] > 0 and {"N@10", "R@10"} <= set(r)


def test_trimming_leading_padding_keeps_the_hidden_states():
    torch.manual_seed(0)
    m = FeatureSASRec(RankerConfig(d_model=8, num_layers=2, num_heads=1, dropout=0.0, max_len=10),
                      ItemFeatures.item_ids(20)).eval()
    full = right_aligned([np.array([3, 4, 5]), np.array([1, 2, 3, 4, 5, 6]), np.array([7])], 10)
    short = trim_padding(full)
    assert short.shape == (3, 6)
    with torch.no_grad():
        a, b = m.hidden(full), m.hidden(short)
    assert torch.allclose(a[:, -6:], b, atol=1e-6)
    assert trim_padding(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 1)


def test_leave_last_out_targets_and_histories():
    data = _walk_data(n_users=30)
    L = 4
    split = leave_last_out(data, L)
    long_users = [u for u, s in enumerate(data.sequences) if len(s) >= 3]
    assert list(split.valid.users) == long_users == list(split.test.users)
    for j, u in enumerate(long_users):
        seq = data.sequences[u]
        assert split.valid.targets[j] == seq[-2] and split.test.targets[j] == seq[-1]
        assert list(split.valid.histories[j]) == list(seq[:-2][-L:])
        # the test input ends with the validation item
        assert list(split.test.histories[j]) == list(seq[:-1][-L:]) and split.test.histories[j][-1] == seq[-2]
        assert list(split.train_sequences[u]) == list(seq[:-2])  # neither target is trained on


def test_full_ranking_keeps_history_items_unless_asked():
    torch.manual_seed(0)
    m = FeatureSASRec(RankerConfig(d_model=8, num_layers=1, num_heads=1, dropout=0.0, max_len=5),
                      ItemFeatures.item_ids(6)).eval()
    hists = [np.array([0, 1, 2]), np.array([3])]
    kept = rank_items(m, hists, 6)
    assert sorted(kept[0].tolist()) == list(range(6))  # every item ranked, history included
    masked = rank_items(m, hists, 3, exclude_history=True)
    assert not set(masked[0].tolist()) & {0, 1, 2} and 3 not in masked[1].tolist()
    given = rank_items(m, hists, 5, exclude=[np.array([5]), np.array([], dtype=np.int64)])
    assert 5 not in given[0].tolist() and sorted(given[1].tolist() + [int(kept[1][-1])]) == list(range(6))


def test_original_sasrec_block_trains_and_keeps_every_column(tmp_path):
    data = _walk_data()
    split = leave_last_out(data, 8)
    cfg = RankerConfig(d_model=16, num_layers=2, num_heads=1, dropout=0.2, max_len=8, ff_mult=1, block="sasrec")
    seq = right_aligned([np.array([1, 2])], 8)
    assert trim_padding(seq, cfg).shape == (1, 8) and trim_padding(seq).shape == (1, 2)
    tc = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=16, max_epochs=3, patience=100, warmup_steps=0, seed=0,
                     max_history=8, lr_schedule="constant", grad_clip=0.0)
    run = fit_ranker(split, ItemFeatures.item_ids(data.n_items), cfg, tc, torch.device("cpu"), tmp_path)
    assert [r["epoch"] for r in run.fit.history] == [1.0, 2.0, 3.0]
    assert run.fit.history[-1]["train_loss"] < run.fit.history[0]["train_loss"]
    assert rank_items(run.model, split.test.histories, 5).shape == (len(split.test), 5)
