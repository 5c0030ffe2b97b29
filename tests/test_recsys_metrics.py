"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pytest

from agentictagger.recsys.metrics import evaluate_rankings, ndcg_at_k, recall_at_k, topk_from_scores


def test_hand_computed_cases():
    ranked = np.array([
        [7, 3, 9, 1, 2, 4, 5, 6, 8, 0],   # target 7 at rank 0
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 0],   # target 6 at rank 5: outside top 5, inside top 10
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 0],   # target 11 absent
        [3, 5, -1, -1, -1, -1, -1, -1, -1, -1],  # short list (constrained beam), target 5 at rank 1
    ])
    targets = np.array([7, 6, 11, 5])
    assert recall_at_k(ranked, targets, 5) == pytest.approx(2 / 4)
    assert recall_at_k(ranked, targets, 10) == pytest.approx(3 / 4)
    assert recall_at_k(ranked, targets, 1) == pytest.approx(1 / 4)
    n5 = (1.0 + 1 / math.log2(3)) / 4
    n10 = (1.0 + 1 / math.log2(7) + 1 / math.log2(3)) / 4
    assert ndcg_at_k(ranked, targets, 5) == pytest.approx(n5)
    assert ndcg_at_k(ranked, targets, 10) == pytest.approx(n10)
    m = evaluate_rankings(ranked, targets)
    assert m == pytest.approx({"R@5": 0.5, "N@5": n5, "R@10": 0.75, "N@10": n10})


def test_padding_never_matches_and_shape_errors():
    ranked = np.full((2, 10), -1)
    assert recall_at_k(ranked, np.array([0, 1]), 10) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((3, 5), dtype=int), np.zeros(2, dtype=int), 5)


def test_topk_from_scores_orders_best_first():
    s = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 2.0, 1.0, 0.0]])
    assert topk_from_scores(s, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
