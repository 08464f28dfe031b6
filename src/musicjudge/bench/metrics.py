"""Benchmark metrics: pairwise accuracy (with an explicit tie policy), clip- and system-level
correlations, seeded bootstrap confidence intervals and breakdowns.

Tie policy (documented in docs/bench.md):

* ground-truth ties ("tie", i.e. the published "both"/"neither") score 0.5 whatever the model
  predicts, as the reference benchmark does;
* predicted ties (score_a == score_b) on a non-tie pair are reported three ways:
  ``excluded`` (dropped from the denominator), ``half`` (count 0.5) and ``as_b`` (counted as a
  vote for B, which is what the reference code does implicitly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

TIE_POLICIES = ("excluded", "half", "as_b")
CORRELATIONS = ("spearman", "kendall", "pearson")
DEFAULT_N_BOOT = 1000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap 95% interval and the sample size it rests on."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def _normalise_truth(label: str) -> str:
    lab = str(label).strip().lower()
    if lab in ("a", "model_a"):
        return "A"
    if lab in ("b", "model_b"):
        return "B"
    if lab in ("tie", "both", "neither", "draw"):
        return "tie"
    raise ValueError(f"unknown preference label {label!r}; expected A, B or tie")


def pairwise_correctness(
    score_a: Sequence[float], score_b: Sequence[float], truth: Sequence[str], tie_policy: str = "excluded"
) -> np.ndarray:
    """Per-pair credit in {0, 0.5, 1}, or NaN where the pair does not count (a predicted tie
    under ``excluded``, or a missing score)."""
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie_policy {tie_policy!r}; choose one of {', '.join(TIE_POLICIES)}")
    a = np.asarray(score_a, dtype=float)
    b = np.asarray(score_b, dtype=float)
    if not (len(a) == len(b) == len(truth)):
        raise ValueError("score_a, score_b and truth must have the same length")
    t = np.array([_normalise_truth(x) for x in truth], dtype=object)
    credit = np.full(len(a), np.nan)
    valid = np.isfinite(a) & np.isfinite(b)
    pred_a = a > b
    pred_b = a < b
    pred_tie = a == b
    gt_tie = t == "tie"
    credit[valid & gt_tie] = 0.5
    decided = valid & ~gt_tie
    credit[decided & pred_a] = (t[decided & pred_a] == "A").astype(float)
    credit[decided & pred_b] = (t[decided & pred_b] == "B").astype(float)
    tied = decided & pred_tie
    if tie_policy == "half":
        credit[tied] = 0.5
    elif tie_policy == "as_b":
        credit[tied] = (t[tied] == "B").astype(float)
    # "excluded": leave NaN
    return credit


def pairwise_accuracy(score_a, score_b, truth, tie_policy: str = "excluded") -> float:
    credit = pairwise_correctness(score_a, score_b, truth, tie_policy)
    if not np.isfinite(credit).any():
        return float("nan")
    return float(np.nanmean(credit))


def bootstrap_ci(
    data: Sequence[np.ndarray],
    statistic: Callable[..., float],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = 0.95,
    vectorized: bool = False,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of ``statistic(*data)``, resampling the
    rows of the (paired) arrays with replacement. Uses scipy.stats.bootstrap; seeded, so the
    same seed gives the same interval. Degenerate data (a constant statistic) gives a zero-width
    interval instead of scipy's NaN."""
    from scipy import stats

    arrays = [np.asarray(d) for d in data]
    point = float(statistic(*arrays))
    n = len(arrays[0])
    if n < 2 or not np.isfinite(point) or n_boot <= 0:
        return point, float("nan"), float("nan")
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                tuple(arrays),
                statistic,
                paired=True,
                vectorized=vectorized,
                n_resamples=n_boot,
                confidence_level=confidence,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        dist = np.asarray(res.bootstrap_distribution, dtype=float)
        dist = dist[np.isfinite(dist)]
        if dist.size == 0:
            return point, float("nan"), float("nan")
        lo, hi = (float(np.quantile(dist, q)) for q in ((1 - confidence) / 2, (1 + confidence) / 2))
    return point, lo, hi


def _mean(x: np.ndarray, axis: int = -1):
    return np.mean(x, axis=axis)


def accuracy_estimate(
    score_a, score_b, truth, tie_policy: str = "excluded", *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> Estimate:
    """Pairwise accuracy with a bootstrap 95% CI over pairs."""
    credit = pairwise_correctness(score_a, score_b, truth, tie_policy)
    n = int(np.isfinite(credit).sum())
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    # Resample only the pairs that count; the excluded ones carry no credit either way.
    kept = credit[np.isfinite(credit)]
    point, lo, hi = bootstrap_ci([kept], _mean, n_boot=n_boot, seed=seed, vectorized=True)
    return Estimate(point, lo, hi, n)


def correlation(pred: Sequence[float], truth: Sequence[float], method: str = "spearman") -> float:
    """Spearman / Kendall (tau-b) / Pearson correlation via scipy.stats; NaN if undefined."""
    from scipy import stats

    p = np.asarray(pred, dtype=float)
    t = np.asarray(truth, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return float("nan")
    if method == "spearman":
        return float(stats.spearmanr(p, t).statistic)
    if method == "kendall":
        return float(stats.kendalltau(p, t).statistic)
    if method == "pearson":
        return float(stats.pearsonr(p, t).statistic)
    raise ValueError(f"correlation method {method!r}; choose one of {', '.join(CORRELATIONS)}")


def system_means(pred, truth, systems) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted and mean true score per generator system (clips with NaN dropped)."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(truth, dtype=float)
    s = np.asarray(systems)
    ok = np.isfinite(p) & np.isfinite(t)
    codes, inverse = np.unique(s[ok], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(codes))
    return (
        np.bincount(inverse, weights=p[ok], minlength=len(codes)) / counts,
        np.bincount(inverse, weights=t[ok], minlength=len(codes)) / counts,
    )


def correlation_estimate(
    pred, truth, method: str = "spearman", *, systems=None, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> Estimate:
    """Clip-level correlation (``systems=None``) or system-level correlation (correlation of the
    per-system means). The bootstrap resamples clips in both cases, so the system-level interval
    also reflects which clips each system happened to be judged on."""
    p = np.asarray(pred, dtype=float)
    t = np.asarray(truth, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    if systems is None:
        p, t = p[ok], t[ok]
        stat = lambda x, y: correlation(x, y, method)  # noqa: E731
        point, lo, hi = bootstrap_ci([p, t], stat, n_boot=n_boot, seed=seed)
        return Estimate(point, lo, hi, int(len(p)))
    s = np.asarray(systems, dtype=object).astype(str)[ok]
    p, t = p[ok], t[ok]
    codes, s_idx = np.unique(s, return_inverse=True)

    def stat(x, y, idx):
        mp, mt = system_means(x, y, idx)
        return correlation(mp, mt, method)

    point, lo, hi = bootstrap_ci([p, t, s_idx], stat, n_boot=n_boot, seed=seed)
    return Estimate(point, lo, hi, int(len(codes)))


def length_bucket(duration_s: float, split_s: float = 10.0) -> str:
    """Audio-length breakdown group: clips up to ``split_s`` seconds vs. longer ones."""
    if duration_s is None or not np.isfinite(duration_s):
        return "unknown"
    return f"<={split_s:g}s" if duration_s <= split_s else f">{split_s:g}s"


def confidence_bucket(conf: float | None) -> str | None:
    """Annotator-confidence breakdown group (<3, =3, >3 on the 1-5 scale); None if absent."""
    if conf is None:
        return None
    try:
        c = float(conf)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(c):
        return None
    return "<3" if c < 3 else ("=3" if c == 3 else ">3")
