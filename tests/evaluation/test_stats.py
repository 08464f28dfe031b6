"""Statistics of musicjudge eval against hand and closed-form computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from musicjudge.evaluation.stats import (
    frechet_distance,
    kid_kernel,
    loss_adjusted,
    mean_with_ci,
    mmd2_unbiased,
    mmd_permutation_p,
    paired_win_rate,
    validity_table,
    win_rate_table,
)


def test_paired_win_rate_by_hand():
    a = [3, 2, 1, 5, 5, np.nan]
    b = [1, 2, 4, 0, 3, 7]
    row = paired_win_rate(a, b, n_boot=200)
    # pairs: win, tie, loss, win, win (the NaN pair does not count)
    assert (row["n"], row["wins"], row["losses"], row["ties"]) == (5, 3, 1, 1)
    assert row["win_rate"] == pytest.approx(3.5 / 5)
    assert row["sign_test_p"] == pytest.approx(0.625)  # 2 * P(X >= 3), X ~ Bin(4, 1/2) = 2 * 5/16
    assert row["mean_diff"] == pytest.approx(np.mean([2, 0, -3, 5, 2]))
    assert -3 <= row["diff_ci_low"] <= row["mean_diff"] <= row["diff_ci_high"] <= 5
    assert 0 <= row["ci_low"] <= row["win_rate"] <= row["ci_high"] <= 1
    reverse = paired_win_rate(b, a, n_boot=200)
    assert reverse["win_rate"] == pytest.approx(1 - row["win_rate"])
    assert reverse["sign_test_p"] == pytest.approx(row["sign_test_p"])


def test_sign_test_matches_binomtest_and_all_ties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 1, 40), rng.normal(0, 1, 40)
    row = paired_win_rate(a, b, n_boot=100)
    assert row["sign_test_p"] == pytest.approx(binomtest(int((a > b).sum()), 40).pvalue)
    ties = paired_win_rate([1, 2], [1, 2], n_boot=100)
    assert (ties["win_rate"], ties["sign_test_p"], ties["ties"]) == (0.5, 1.0, 2)
    assert paired_win_rate([], [])["n"] == 0


def test_win_rate_table_pairs_on_prompts():
    clips = pd.DataFrame({
        "system": ["A", "A", "A", "B", "B", "B"],
        "prompt_id": ["p1", "p2", "p3", "p1", "p2", None],  # B's third clip answers no prompt
        "musicality": [1.0, 0.0, 9.0, 0.5, 2.0, -5.0],
    })
    table = win_rate_table(clips, ["musicality"], n_boot=100)
    ab = table[(table.system_a == "A") & (table.system_b == "B")].iloc[0]
    assert (ab["n"], ab["wins"], ab["losses"]) == (2, 1, 1)  # p1: A wins, p2: B wins; p3 unmatched
    assert len(table) == 2


def test_win_rate_table_averages_samples_per_prompt_and_covers_every_pair():
    clips = pd.DataFrame({
        "system": ["A", "A", "A", "B", "C", "C"],
        "prompt_id": ["p1", "p1", "p2", "p1", "p1", "p2"],
        "musicality": [0.0, 3.0, 1.0, 1.0, 2.0, 0.0],  # A's two samples of p1 average 1.5
    })
    table = win_rate_table(clips, ["musicality"], n_boot=50).set_index(["system_a", "system_b"])
    assert len(table) == 6  # every ordered pair of the three systems
    assert (table.loc[("A", "B"), "n"], table.loc[("A", "B"), "wins"]) == (1, 1)  # 1.5 > 1.0
    assert (table.loc[("A", "C"), "wins"], table.loc[("A", "C"), "losses"]) == (1, 1)  # p1 1.5 < 2, p2 1 > 0
    assert table.loc[("A", "C"), "mean_diff"] == pytest.approx(((1.5 - 2.0) + (1.0 - 0.0)) / 2)


def test_mean_with_ci():
    row = mean_with_ci([1.0, 2.0, 3.0, np.nan], n_boot=200)
    assert row["n"] == 3 and row["mean"] == pytest.approx(2.0) and row["std"] == pytest.approx(1.0)
    assert 1.0 <= row["ci_low"] <= 2.0 <= row["ci_high"] <= 3.0
    assert mean_with_ci([])["n"] == 0


def _with_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """Samples whose sample mean and (ddof=1) covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: sample cov = I
    return z @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_closed_form():
    mu1, mu2 = np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    # ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2 = 5 + (1 + 1 + 4)
    x, y = _with_moments(50, mu1, s1, 0), _with_moments(60, mu2, s2, 1)
    assert frechet_distance(x, y) == pytest.approx(11.0, rel=1e-6)
    # the same after one rotation of both (FD is rotation invariant), now with full covariances
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((3, 3)))
    assert frechet_distance(x @ q.T, y @ q.T) == pytest.approx(11.0, rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(frechet_distance(x[:1], y))


def test_frechet_distance_with_fewer_clips_than_dimensions_is_finite():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 20)), rng.standard_normal((5, 20)) + 1
    fd = frechet_distance(x, y)
    assert np.isfinite(fd) and fd > 0


def test_mmd_by_hand_with_a_linear_kernel():
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [4.0]])
    # k(x,x') off-diagonal: 0; k(y,y'): 8; mean k(x,y) = (0 + 0 + 2 + 4) / 4
    assert mmd2_unbiased(x, y, kernel=lambda a, b: a @ b.T) == pytest.approx(0 + 8 - 2 * 1.5)


def test_kid_kernel_and_mmd_of_same_vs_shifted_sets():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    assert kid_kernel(x, x)[0, 1] == pytest.approx((-2 / 2 + 1) ** 3)
    assert kid_kernel(x, x)[0, 0] == pytest.approx((5 / 2 + 1) ** 3)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((150, 4)), rng.standard_normal((150, 4))
    shifted = b + 1.0
    same, far = mmd2_unbiased(a, b), mmd2_unbiased(a, shifted)
    assert far > 0.5 and abs(same) < 0.05 * far
    assert mmd_permutation_p(a[:40], b[:40], n_permutations=100) > 0.05
    assert mmd_permutation_p(a[:40], shifted[:40], n_permutations=100) < 0.05


def test_loss_adjusted_residual_and_validity():
    loss = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    residual = np.array([1.0, -1.0, -1.0, 1.0])  # orthogonal to 1 and to loss
    score = np.append(2.0 + 3.0 * loss[:4] + residual, 5.0)
    adjusted, intercept, slope = loss_adjusted(score, loss)
    assert intercept == pytest.approx(2.0) and slope == pytest.approx(3.0)
    np.testing.assert_allclose(adjusted[:4], residual, atol=1e-9)
    assert np.isnan(adjusted[4])
    clips = pd.DataFrame({"system": ["A"] * 4 + ["B"] * 3, "profile_score": [4, 3, 2, 1, 1, 2, 3],
                          "orig_loss": [1, 2, 3, 4, 1, 2, 3]})
    table = validity_table(clips).set_index("system")
    assert table.loc["A", "spearman_r"] == pytest.approx(-1.0) and table.loc["B", "pearson_r"] == pytest.approx(1.0)
    assert table.loc["all", "n"] == 7
