"""Metrics against hand-computed values, tie policies, bootstrap CIs."""

import math

import numpy as np
import pytest

from musicjudge.bench import metrics as M

# 6 pairs: correct A, wrong (pred B, truth A), predicted tie on truth B, truth tie (pred A),
# truth tie (pred tie), correct B.
SA = [0.9, 0.1, 0.5, 0.7, 0.3, 0.2]
SB = [0.1, 0.9, 0.5, 0.2, 0.3, 0.8]
TRUTH = ["A", "A", "B", "tie", "both", "B"]


def test_pairwise_accuracy_tie_policies_hand_computed():
    # credits: 1, 0, (pred tie), 0.5, 0.5, 1
    assert M.pairwise_accuracy(SA, SB, TRUTH, "excluded") == pytest.approx(3 / 5)  # (1+0+.5+.5+1)/5
    assert M.pairwise_accuracy(SA, SB, TRUTH, "half") == pytest.approx(3.5 / 6)
    assert M.pairwise_accuracy(SA, SB, TRUTH, "as_b") == pytest.approx(4 / 6)  # tie sent to B, truth B
    credit = M.pairwise_correctness(SA, SB, TRUTH, "excluded")
    assert np.isnan(credit[2]) and credit[3] == 0.5 and credit[4] == 0.5


def test_ground_truth_tie_is_half_whatever_the_prediction():
    for a, b in [(1, 0), (0, 1), (0.5, 0.5)]:
        for policy in M.TIE_POLICIES:
            assert M.pairwise_accuracy([a], [b], ["neither"], policy) == 0.5


def test_missing_scores_do_not_count_and_bad_labels_raise():
    assert M.pairwise_accuracy([1, np.nan], [0, 1], ["A", "A"]) == 1.0
    with pytest.raises(ValueError):
        M.pairwise_accuracy([1], [0], ["C"])
    with pytest.raises(ValueError):
        M.pairwise_accuracy([1], [0], ["A"], "coin")


def test_correlations_hand_computed():
    pred = [1, 2, 3, 4, 5]
    truth = [2, 1, 4, 3, 5]
    # Spearman: d = [-1, 1, -1, 1, 0] -> 1 - 6*4/(5*24) = 0.8; Kendall: 8 concordant, 2 discordant -> 0.6
    assert M.correlation(pred, truth, "spearman") == pytest.approx(0.8)
    assert M.correlation(pred, truth, "kendall") == pytest.approx(0.6)
    # Pearson of x and y: cov = 8/5... r = 0.8 as well for this permutation
    assert M.correlation(pred, truth, "pearson") == pytest.approx(0.8)
    assert math.isnan(M.correlation([1, 1, 1], [1, 2, 3]))  # constant prediction: undefined


def test_system_level_correlation_uses_system_means():
    pred = [1, 3, 10, 12, 5, 7]
    truth = [1, 1, 3, 3, 2, 2]
    systems = ["x", "x", "z", "z", "y", "y"]
    mp, mt = M.system_means(pred, truth, systems)
    assert list(mp) == [2, 6, 11] and list(mt) == [1, 2, 3]
    est = M.correlation_estimate(pred, truth, "spearman", systems=systems, n_boot=50)
    assert est.value == pytest.approx(1.0) and est.n == 3


def test_bootstrap_ci_contains_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    truth = np.where(rng.random(300) < 0.7, "A", "B")
    a = M.accuracy_estimate(x, y, truth, n_boot=500, seed=3)
    assert a.ci_low <= a.value <= a.ci_high and a.ci_high - a.ci_low < 0.2
    assert a == M.accuracy_estimate(x, y, truth, n_boot=500, seed=3)
    assert a != M.accuracy_estimate(x, y, truth, n_boot=500, seed=4)
    for method in M.CORRELATIONS:
        c = M.correlation_estimate(x, y, method, n_boot=300, seed=0)
        assert c.ci_low <= c.value <= c.ci_high
        assert c == M.correlation_estimate(x, y, method, n_boot=300, seed=0)


def test_breakdown_buckets():
    assert M.length_bucket(10.0) == "<=10s" and M.length_bucket(10.5) == ">10s" and M.length_bucket(float("nan")) == "unknown"
    assert [M.confidence_bucket(c) for c in (1, 3, 4.5, None, float("nan"))] == ["<3", "=3", ">3", None, None]
