"""Statistics of ``musicjudge eval``: per-system means with bootstrap CIs, paired win rates with a
sign test, distribution distances (Fréchet distance, unbiased MMD with the KID kernel) and the
validity check of the profile score against the original loss.

Everything here is a pure function of arrays / DataFrames, so each number can be checked
against a hand or closed-form computation (tests/evaluation/test_stats.py)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from musicjudge.bench.metrics import DEFAULT_N_BOOT, bootstrap_ci


def _mean(x: np.ndarray, axis: int = -1):
    return np.mean(x, axis=axis)


def mean_with_ci(values: Sequence[float], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict[str, float]:
    """n, mean, std and percentile-bootstrap 95% CI of the mean over the finite values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    point, lo, hi = bootstrap_ci([x], _mean, n_boot=n_boot, seed=seed, vectorized=True)
    return {"n": int(x.size), "mean": point, "std": float(np.std(x, ddof=1)) if x.size > 1 else float("nan"),
            "ci_low": lo, "ci_high": hi}


def paired_win_rate(a: Sequence[float], b: Sequence[float], *, n_boot: int = DEFAULT_N_BOOT,
                    seed: int = 0) -> dict[str, float]:
    """Win rate of A over B on paired values (same prompt): (wins + ties / 2) / n over the pairs
    where both are finite; bootstrap 95% CI over prompts; two-sided exact sign test
    (scipy.stats.binomtest on wins vs losses, ties dropped as the sign test does)."""
    from scipy.stats import binomtest

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    wins, losses = int(np.sum(a > b)), int(np.sum(a < b))
    ties = int(a.size - wins - losses)
    row = {"n": int(a.size), "wins": wins, "losses": losses, "ties": ties, "win_rate": float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan"), "sign_test_p": float("nan"), "mean_diff": float("nan"),
           "diff_ci_low": float("nan"), "diff_ci_high": float("nan")}
    if a.size == 0:
        return row
    # paired difference of the means (bootstrap over prompts): the effect size next to the win rate
    row["mean_diff"], row["diff_ci_low"], row["diff_ci_high"] = bootstrap_ci([a - b], _mean, n_boot=n_boot, seed=seed,
                                                                             vectorized=True)
    credit = np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))
    point, lo, hi = bootstrap_ci([credit], _mean, n_boot=n_boot, seed=seed, vectorized=True)
    row.update(win_rate=point, ci_low=lo, ci_high=hi)
    if wins + losses > 0:
        row["sign_test_p"] = float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)
    else:  # all ties: no evidence either way
        row["sign_test_p"] = 1.0
    return row


def win_rate_table(clips: pd.DataFrame, metrics: Sequence[str], *, key: str = "prompt_id", system: str = "system",
                   n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Every ordered pair of systems (A != B) x metric on the prompts both answered (``key`` not
    null). A system with several clips for one prompt (several samples per prompt) enters with
    the mean of its clips there, so each prompt counts once."""
    rows = []
    matched = clips[clips[key].notna()]
    systems = list(dict.fromkeys(clips[system]))
    for metric in metrics:
        wide = (matched.groupby([key, system], sort=False)[metric].mean().unstack(system)
                if not matched.empty else pd.DataFrame())
        for sa in systems:
            for sb in systems:
                if sa == sb:
                    continue
                if sa in wide.columns and sb in wide.columns:
                    stats = paired_win_rate(wide[sa].to_numpy(float), wide[sb].to_numpy(float), n_boot=n_boot, seed=seed)
                else:
                    stats = paired_win_rate([], [], n_boot=n_boot, seed=seed)
                rows.append({"metric": metric, "system_a": sa, "system_b": sb, **stats})
    columns = ["metric", "system_a", "system_b", "n", "wins", "losses", "ties", "win_rate", "ci_low", "ci_high",
               "sign_test_p", "mean_diff", "diff_ci_low", "diff_ci_high"]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------------------------
# Distribution distances on embeddings
# ------------------------------------------------------------------------------------------
def frechet_distance(x: np.ndarray, y: np.ndarray, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``x`` and ``y``:
    ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)) (scipy.linalg.sqrtm). When the product
    is singular (fewer clips than dimensions), ``eps`` is added to both diagonals, as FID does."""
    from scipy import linalg

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"embeddings of shapes {x.shape} and {y.shape}: expected [n, d] with the same d")
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    import warnings

    with warnings.catch_warnings():  # a singular product is expected with few clips; handled below
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s_x @ s_y)
        if not np.isfinite(covmean).all():
            offset = np.eye(s_x.shape[0]) * eps
            covmean = linalg.sqrtm((s_x + offset) @ (s_y + offset))
    covmean = np.real(covmean)  # tiny imaginary parts are numerical error
    diff = mu_x - mu_y
    return float(diff @ diff + np.trace(s_x) + np.trace(s_y) - 2.0 * np.trace(covmean))


def kid_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (sklearn polynomial_kernel)."""
    from sklearn.metrics.pairwise import polynomial_kernel

    return polynomial_kernel(x, y, degree=3, gamma=1.0 / x.shape[1], coef0=1.0)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, kernel=kid_kernel) -> float:
    """Unbiased estimate of the squared MMD (Gretton et al. 2012, eq. 3), the statistic of KID:
    mean k(x, x') over i != j + mean k(y, y') over i != j - 2 mean k(x, y). Its expectation is 0
    when both sets come from one distribution, so small-sample values can be slightly negative."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return float("nan")
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    term_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * k_xy.mean())


def mmd_permutation_p(x: np.ndarray, y: np.ndarray, *, n_permutations: int = 200, seed: int = 0,
                      kernel=kid_kernel) -> float:
    """Permutation p-value of "same distribution" for the unbiased MMD^2 (one kernel matrix,
    relabelled rows), with the +1 correction so it is never 0."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2 or n_permutations <= 0:
        return float("nan")
    pooled = np.concatenate([x, y])
    k = kernel(pooled, pooled)

    def stat(idx: np.ndarray) -> float:
        a, b = idx[:m], idx[m:]
        k_aa, k_bb = k[np.ix_(a, a)], k[np.ix_(b, b)]
        return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
                     - 2.0 * k[np.ix_(a, b)].mean())

    observed = stat(np.arange(m + n))
    rng = np.random.default_rng(seed)
    exceed = sum(stat(rng.permutation(m + n)) >= observed for _ in range(n_permutations))
    return float((exceed + 1) / (n_permutations + 1))


def distance_caveat(n_system: int, n_reference: int, dim: int) -> str:
    """The sample-size warning printed with and written next to every FD / MMD."""
    text = (f"FD and MMD rest on {n_system} system clips and {n_reference} reference clips in a {dim}-d "
            "embedding. FD is biased upwards at small n (its covariance estimates need many more clips than "
            "dimensions) and depends on n, so compare systems only at equal n; the unbiased MMD has no such "
            "bias but is noisy at small n (see mmd_p, a permutation test).")
    if min(n_system, n_reference) < dim:
        text += f" Here n < {dim}: treat the distances as indicative only."
    return text


# ------------------------------------------------------------------------------------------
# Validity of the profile score (issue 18, item 4)
# ------------------------------------------------------------------------------------------
def correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman r with p-values over the pairs where both are finite (NaN with < 3)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    row = {"n": int(x.size), "pearson_r": float("nan"), "pearson_p": float("nan"), "spearman_r": float("nan"),
           "spearman_p": float("nan")}
    if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        pr, sr = stats.pearsonr(x, y), stats.spearmanr(x, y)
        row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue), spearman_r=float(sr.statistic),
                   spearman_p=float(sr.pvalue))
    return row


def loss_adjusted(score: Sequence[float], loss: Sequence[float]) -> tuple[np.ndarray, float, float]:
    """Residual of ``score`` after an ordinary least-squares fit ``score ~ a + b * loss`` over the
    clips where both are finite (NaN elsewhere), with (a, b). One fit over all clips of all
    systems, so residuals are comparable across systems: a system's mean residual is how much
    more its clips react to brief noise than their familiarity to the model predicts."""
    s = np.asarray(score, dtype=np.float64)
    l_ = np.asarray(loss, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(l_)
    out = np.full(s.shape, np.nan)
    if ok.sum() < 3 or np.ptp(l_[ok]) == 0:
        return out, float("nan"), float("nan")
    slope, intercept = np.polyfit(l_[ok], s[ok], 1)
    out[ok] = s[ok] - (intercept + slope * l_[ok])
    return out, float(intercept), float(slope)


def validity_table(clips: pd.DataFrame, *, score: str = "profile_score", loss: str = "orig_loss",
                   system: str = "system") -> pd.DataFrame:
    """Correlation of the profile score with the original loss, per system and pooled ("all")."""
    rows = []
    for name, grp in clips.groupby(system, sort=False):
        rows.append({"system": name, **correlations(grp[score], grp[loss])})
    rows.append({"system": "all", **correlations(clips[score], clips[loss])})
    return pd.DataFrame(rows, columns=["system", "n", "pearson_r", "pearson_p", "spearman_r", "spearman_p"])
