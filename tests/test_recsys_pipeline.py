"""Pipeline slices, training recipes and resumable ranker rows."""

import numpy as np

from agentictagger.recsys.data import SequenceData
from agentictagger.recsys.pipeline import (RECIPES, SHORT_HEAD_SHARE, Dataset, Pipeline, ranker_train_config,
                                           summarise)


def _dataset(max_history: int = 20) -> Dataset:
    """Ten items; item i appears in the training prefixes of i+1 users (i0 once, i9 ten times)."""
    seqs = []
    for u in range(10):
        train = [f"i{j}" for j in range(10) if j >= 9 - u]  # user u's prefix holds items 9-u .. 9
        seqs.append(train + [f"i{u % 10}", f"i{(u * 3) % 10}"])  # validation item, test item
    return Dataset("toy", SequenceData.from_id_sequences([f"u{u}" for u in range(10)], seqs), max_history=max_history)


def test_long_tail_and_cold_slices_follow_training_counts():
    ds = _dataset()
    counts = ds.train_counts()
    test = ds.split.test
    sl = Pipeline(ds, "item_id", "ranker").slices()
    n_head = round(SHORT_HEAD_SHARE * ds.data.n_items)
    head = set(np.argsort(-counts, kind="stable")[:n_head].tolist())
    assert len(head) == n_head and min(counts[list(head)]) >= max(np.delete(counts, list(head)))
    assert sl["long_tail"].tolist() == [k for k, t in enumerate(test.targets) if t not in head]
    assert sl["cold_items"].tolist() == [k for k, t in enumerate(test.targets) if counts[t] <= 5]
    assert 0 < len(sl["long_tail"]) < len(test) and sl["all"].tolist() == list(range(len(test)))


def test_strength_recipe_is_what_the_rows_record_and_a_finished_row_resumes(tmp_path):
    recipe = RECIPES["strength"]
    tc = ranker_train_config(**recipe.train)
    assert (tc.lr, tc.lr_schedule, tc.grad_clip, tc.patience, recipe.max_history) == (1e-3, "constant", 0.0, 10, 50)
    assert (recipe.ranker.num_heads, recipe.ranker.ff_mult, recipe.ranker.dropout) == (1, 1, 0.2)
    assert recipe.describe()["ranker"]["max_len"] == 50 == recipe.describe()["train"]["max_history"]

    rng = np.random.default_rng(0)
    seqs = [[f"i{j}" for j in rng.choice(40, 6, replace=False)] for _ in range(30)]
    ds = Dataset("toy", SequenceData.from_id_sequences([f"u{u}" for u in range(30)], seqs), max_history=recipe.max_history)
    p = Pipeline(ds, "item_id", "ranker", ranker=recipe.ranker, n_negatives=5,
                 train_overrides={**recipe.train, "max_epochs": 2}, checkpoint_dir=tmp_path / "ckpt")
    row = p.run(seed=0)
    assert row["config"]["max_len"] == 50 and row["train_config"]["lr"] == 1e-3 and row["train_config"]["patience"] == 10
    assert set(row["test"]) == {"all", "cold_items", "long_tail"}
    # no target repeats a seen item here, so removing seen items only removes wrong answers
    full, filt = row["test"]["all"]["full"], row["test"]["all"]["full_seen_removed"]
    assert all(filt[f"R@{k}"] >= full[f"R@{k}"] for k in (5, 10, 20)) and filt["R@20"] > full["R@20"]
    assert any((tmp_path / "ckpt").rglob("checkpoint.pt"))
    again = p.run(seed=0)  # the finished run is read back, not trained again
    assert again["test"] == row["test"] and again["epochs"] == row["epochs"]
    # rows from before a slice existed are summarised on the slices every row has
    old = {**row, "seed": 1, "test": {k: v for k, v in row["test"].items() if k != "long_tail"}}
    s = summarise([row, old])[0]
    assert "all/full/N@10" in s and not any(k.startswith("long_tail/") for k in s)
