"""Statistics over the runner's tidy results: D by perturbation length with bootstrap 95% CIs,
Pearson/Spearman correlations of D with L (pooled and per model / data set) and the
"context amnesia rate" (share of clips whose mean loss *drops* under noise).

Every table groups by the onset a perturbation actually ran at (``onset_s``) as well as by its
length: a clip too short for the configured onset runs earlier (docs/probe.md, "Clips of any
length"), and those rows are never pooled with the configured onset's. "Pooled" means pooled
over models and data sets at one onset. :func:`plan_summary` says which clips ran what."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

CI_LEVEL = 0.95


def bootstrap_ci(values: Sequence[float], *, seed: int = 0, n_resamples: int = 2000,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); NaNs dropped; (nan, nan)
    with fewer than 2 values; (v, v) when all values are equal."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=n_resamples,
                          method="percentile", rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(df: pd.DataFrame, by: Sequence[str], value: str, *, seed: int = 0) -> pd.DataFrame:
    """Per group: n, mean, std (ddof=1), sem, bootstrap 95% CI of the mean of ``value``."""
    rows = []
    by = list(by)
    for key, grp in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        x = grp[value].to_numpy(dtype=np.float64)
        x = x[np.isfinite(x)]
        lo, hi = bootstrap_ci(x, seed=seed)
        std = float(np.std(x, ddof=1)) if x.size > 1 else float("nan")
        rows.append({**dict(zip(by, key)), "n": int(x.size), "mean": float(x.mean()) if x.size else float("nan"),
                     "std": std, "sem": std / np.sqrt(x.size) if x.size > 1 else float("nan"),
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=by + ["n", "mean", "std", "sem", "ci_low", "ci_high"])


ONSET = "onset_s"  # the onset actually run (seconds); every perturbation statistic groups by it


def _grouping(df: pd.DataFrame, extra: Sequence[str] = (), *, onset: bool = True) -> list[str]:
    return [c for c in ("model", "dataset", *((ONSET,) if onset else ()), *extra) if c in df.columns]


def d_by_length(results: pd.DataFrame, *, kind: str = "noise", seed: int = 0) -> pd.DataFrame:
    """D (mean perturbed minus mean original loss) per model, data set, actual onset,
    colour/shuffle kind and length: n, mean, std, sem, bootstrap 95% CI."""
    sub = results[results["kind"] == kind]
    extra = ["colour"] if kind == "noise" else ["shuffle_kind"]
    by = _grouping(sub, [*extra, "length_frames"])
    return summarize(sub, by, "D", seed=seed)


def _corr_row(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    row = {"n": int(x.size), "pearson_r": np.nan, "pearson_p": np.nan, "spearman_r": np.nan, "spearman_p": np.nan}
    if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        pr = stats.pearsonr(x, y)
        sr = stats.spearmanr(x, y)
        row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue),
                   spearman_r=float(sr.statistic), spearman_p=float(sr.pvalue))
    return row


def d_length_correlations(results: pd.DataFrame, *, kind: str = "noise") -> pd.DataFrame:
    """Pearson and Spearman correlation of D with L (scipy.stats), with p-values, over
    (clip, perturbation) rows: pooled, per model, per data set and per model x data set, each
    at one actual onset (column ``onset_s``, when the results have it). Column ``scope`` says
    which; ``model``/``dataset`` are "*" where pooled over."""
    sub = results[results["kind"] == kind]
    onset = [ONSET] if ONSET in sub.columns else []
    rows = []
    scopes = [("pooled", []), ("model", ["model"]), ("dataset", ["dataset"]), ("model x dataset", ["model", "dataset"])]
    for scope, by in scopes:
        by = by + onset
        if not by:
            groups = [((), sub)]
        else:
            groups = [((k if isinstance(k, tuple) else (k,)), g) for k, g in sub.groupby(by, sort=True, dropna=False)]
        for key, grp in groups:
            labels = {"model": "*", "dataset": "*", **dict(zip(by, key))}
            rows.append({"scope": scope, **labels, **_corr_row(grp["length_frames"].to_numpy(float), grp["D"].to_numpy(float))})
    return pd.DataFrame(rows, columns=["scope", "model", "dataset", *onset, "n", "pearson_r", "pearson_p", "spearman_r",
                                       "spearman_p"])


def amnesia_rate(results: pd.DataFrame, *, kind: str = "noise", by_length: bool = True) -> pd.DataFrame:
    """Context amnesia rate: share of (clip, perturbation) rows with D < 0, i.e. the model finds
    the noisy clip *more* likely than the original. Per model, data set (and length), with
    a Wilson 95% CI (scipy.stats.binomtest)."""
    from scipy import stats

    sub = results[(results["kind"] == kind) & np.isfinite(results["D"])]
    by = _grouping(sub, ["length_frames"] if by_length else [])
    rows = []
    for key, grp in sub.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        n = int(len(grp))
        k = int((grp["D"] < 0).sum())
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=CI_LEVEL, method="wilson") if n else None
        rows.append({**dict(zip(by, key)), "n": n, "n_drop": k, "rate": k / n if n else np.nan,
                     "ci_low": ci.low if ci else np.nan, "ci_high": ci.high if ci else np.nan})
    return pd.DataFrame(rows, columns=by + ["n", "n_drop", "rate", "ci_low", "ci_high"])


def region_summary(results: pd.DataFrame, *, min_length: int = 50, seed: int = 0, rule: str = "paper") -> pd.DataFrame:
    """Mean d_t per region (the protocol's table), pooled over noise lengths >= ``min_length``:
    one row per model, data set, actual onset and region with n, mean, std and CI."""
    prefix = "" if rule == "paper" else "smooth_"
    sub = results[(results["kind"] == "noise") & (results["length_frames"] >= min_length)]
    long = pd.concat([
        sub.assign(region="peak", value=sub[prefix + "peak_mean"]),
        sub.assign(region="assimilation", value=sub[prefix + "assim_mean"]),
        sub.assign(region="recovery", value=sub["recovery_mean"]),
    ], ignore_index=True)
    if long.empty:
        return pd.DataFrame(columns=["model", "dataset", "region", "n", "mean", "std", "sem", "ci_low", "ci_high"])
    by = _grouping(long, ["region"])
    out = summarize(long, by, "value", seed=seed)
    order = {"peak": 0, "assimilation": 1, "recovery": 2}
    return out.sort_values(by, key=lambda s: s.map(order) if s.name == "region" else s).reset_index(drop=True)


def original_loss_summary(clips: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean loss of the original clips per model and data set (the protocol's first table)."""
    return summarize(clips, _grouping(clips, onset=False), "loss_orig", seed=seed)


def metadata_column(df: pd.DataFrame, field: str) -> pd.Series:
    """One field of the JSON ``metadata`` column (NaN where absent)."""
    import json

    def get(text):
        if not isinstance(text, str) or not text:
            return np.nan
        try:
            return json.loads(text).get(field, np.nan)
        except (json.JSONDecodeError, AttributeError):
            return np.nan

    if "metadata" not in df.columns:
        return pd.Series(np.nan, index=df.index)
    return df["metadata"].map(get)


def d_by_metadata(results: pd.DataFrame, field: str, *, kind: str = "noise", seed: int = 0) -> pd.DataFrame:
    """D per model, data set, metadata ``field`` value (e.g. the Generated set's ``top_k``) and
    length (and actual onset), over the rows whose manifest carried the field; empty if none did."""
    sub = results[results["kind"] == kind].copy()
    sub[field] = metadata_column(sub, field)
    sub = sub[sub[field].notna()]
    by = _grouping(sub, [field, "length_frames"])
    if sub.empty:
        return pd.DataFrame(columns=[*by, "n", "mean", "std", "sem", "ci_low", "ci_high"])
    return summarize(sub, by, "D", seed=seed)


def plan_summary(clips: pd.DataFrame) -> pd.DataFrame:
    """Which clips ran what: per model, data set and plan (the perturbations actually run,
    ``clips.plan``), the number of clips, their scored length range (s), whether the plan
    differs from the configured grid and the lengths it dropped. Empty for runs made before
    plans were recorded."""
    cols = ["model", "dataset", "plan", "adapted", "n_clips", "duration_min_s", "duration_max_s", "dropped"]
    if "plan" not in clips.columns or clips["plan"].isna().all():
        return pd.DataFrame(columns=cols)
    import json

    def dropped_text(values: pd.Series) -> str:
        seen = []
        for text in values.dropna():
            for d in json.loads(text) if text else []:
                item = f"{d['family']}@{d['grid_onset_s']:g}s {d['length_frames']}f"
                if item not in seen:
                    seen.append(item)
        return ", ".join(seen)

    rows = []
    for (model, dataset, plan), g in clips.groupby(["model", "dataset", "plan"], sort=True):
        rows.append({"model": model, "dataset": dataset, "plan": plan, "adapted": bool(g["adapted"].fillna(False).any()),
                     "n_clips": int(len(g)), "duration_min_s": float(g["duration_s"].min()),
                     "duration_max_s": float(g["duration_s"].max()), "dropped": dropped_text(g["dropped"])})
    return pd.DataFrame(rows, columns=cols)
