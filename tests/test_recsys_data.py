"""Leave-last-out split, sliding windows, the shared-format and generic-table loaders."""

import gzip

import numpy as np
import pandas as pd

from agentictagger.recsys.data import (SequenceData, from_interactions, leave_last_out,
                                       load_shared_sequences, sliding_windows)


def test_leave_last_out_and_sliding_windows():
    data = SequenceData.from_id_sequences(
        ["u1", "u2", "u3"],
        [["a", "b", "c", "d", "e"], ["c", "a", "b"], ["x", "y"]],
    )
    a, b, c, d, e = (data.item_index[i] for i in "abcde")
    split = leave_last_out(data, max_history=2)
    # test = last item, validation = second-last; history capped at 2, oldest first
    assert split.test.targets.tolist() == [e, b]
    assert [h.tolist() for h in split.test.histories] == [[c, d], [c, a]]
    assert split.valid.targets.tolist() == [d, a]
    assert [h.tolist() for h in split.valid.histories] == [[b, c], [c]]
    assert split.n_short_users == 1  # u3 has 2 items: no valid/test, but still trains
    # training windows never contain the validation or test target of their user
    got = sorted((split.train.users[i], tuple(h.tolist()), int(t))
                 for i, (h, t) in enumerate(zip(split.train.histories, split.train.targets)))
    x, y = data.item_index["x"], data.item_index["y"]
    assert got == sorted([(0, (a,), b), (0, (a, b), c), (2, (x,), y)])
    assert [s.tolist() for s in split.train_sequences] == [[a, b, c], [c], [x, y]]


def test_items_without_text_leave_the_sequences():
    data = SequenceData.from_id_sequences(["u1", "u2"], [["a", "b", "c", "b"], ["b"]])
    kept = data.without_items({"b"})
    assert kept.users == ["u1"] and kept.item_ids == ["a", "c"]  # u2 had only b
    assert [s.tolist() for s in kept.sequences] == [[0, 1]]


def test_sliding_windows_cap():
    h, t = sliding_windows(np.arange(6), max_history=3)
    assert t == [1, 2, 3, 4, 5]
    assert [x.tolist() for x in h] == [[0], [0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]


def test_shared_format_and_generic_table(tmp_path):
    p = tmp_path / "sequences.tsv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("user_idx\tuser_id\titem_ids\n1\tU1\tA B C\n2\tU2\tC A\n")
    data = load_shared_sequences(p)
    assert data.users == ["U1", "U2"] and data.item_ids == ["A", "B", "C"]
    assert [s.tolist() for s in data.sequences] == [[0, 1, 2], [2, 0]]
    df = pd.DataFrame({"user_id": ["u", "u", "v", "u"], "item_id": ["i2", "i1", "i3", "i3"],
                       "timestamp": [20, 10, 5, 30]})
    g = from_interactions(df)
    seqs = {u: [g.item_ids[i] for i in s] for u, s in zip(g.users, g.sequences)}
    assert seqs == {"u": ["i1", "i2", "i3"], "v": ["i3"]}
