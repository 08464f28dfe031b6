"""Loss-profile analysis: split a per-frame loss-difference curve d_t around a noise injection
into Peak / Assimilation / Recovery, measure each region, and turn the measurements into a
per-clip *profile score*.

Frames are codec frames (50/s for MusicGen). An injection covers frames [onset, end); with a
codec look-ahead of ``la`` frames, tokens from ``onset - la`` on may already change, so the
regions are placed on the token axis as follows:

* baseline: d_t over [0, onset - la - lead) (identical tokens, so ~0 for an exact causal
  scorer). ``lead`` is the delay pattern's largest delay (3 for MusicGen's 4 codebooks): code
  (k, t) is predicted at position t + k, so a change at frame t already alters the prediction
  of codebook 3 at frame t - 3 and with it the frame-mean d_t;
* Peak: from ``onset - la - lead`` until d_t is back at the baseline for ``consecutive`` (5) frames;
* Assimilation: from the end of the Peak to ``end + la`` (the end of the noise plus look-ahead);
* Recovery: from ``end + la`` to the end of the clip.

Two rules find the end of the Peak:

* ``"paper"`` (the protocol's rule): the raw d_t must be <= baseline for 5 consecutive frames;
  the search starts at the onset.
* ``"smooth"`` (more robust): d_t is smoothed with a centred moving average (default 9 frames),
  the search starts at the curve's maximum (so a dip right at the onset does not end the Peak),
  "back at baseline" allows a tolerance of ``tol_frac`` x the clip's own loss variability
  (std of the original per-frame loss); the crossing is then refined to the sharpest drop of the
  raw curve within one window before it (smoothing shifts the crossing by up to half a window). On synthetic curves with a 20-frame Peak followed by a zero-mean
  noisy plateau, the raw paper rule overshoots by a median of ~40 frames; this rule hits the
  end within 3 frames in most cases (tests/probe/test_profile.py).

Profile score (per clip and model, documented in docs/probe.md): the mean, over onsets, seeds
and *short* injections (L <= 10 frames by default), of the smoothed-rule Peak height divided
by the clip's loss variability. It measures how strongly the model reacts to a brief
disruption compared with the loss's ordinary ups and downs: a model that tracks the music
should be surprised by 0.1-0.2 s of noise; one that does not will barely react.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from musicjudge.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

RULES = ("paper", "smooth")
# Region metrics that depend on the Peak rule (stored once per rule; "smooth_" prefix for the
# smoothed rule) and those that do not (stored once).
RULE_METRICS = ("peak_end", "peak_mean", "peak_height", "peak_area", "peak_duration", "assim_mean", "assim_depth")
SHARED_METRICS = (
    "peak_start", "assim_end", "baseline", "recovery_mean", "recovery_time", "recovered",
    "recovery_var", "offset_spike",
)


@dataclass(frozen=True)
class Regions:
    """Frame indices of the three regions on a curve of ``n_frames`` (ends exclusive)."""

    peak_start: int
    peak_end: int
    assim_end: int
    n_frames: int
    baseline: float
    tolerance: float
    rule: str

    @property
    def peak(self) -> slice:
        return slice(self.peak_start, self.peak_end)

    @property
    def assimilation(self) -> slice:
        return slice(self.peak_end, self.assim_end)

    @property
    def recovery(self) -> slice:
        return slice(self.assim_end, self.n_frames)


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average that keeps the length (edges average over the frames available)."""
    x = np.asarray(x, dtype=np.float64)
    if window <= 1 or x.size == 0:
        return x.copy()
    from scipy.ndimage import uniform_filter1d

    # 'nearest' edges would invent frames; averaging only real frames keeps the edges honest.
    kernel_sum = uniform_filter1d(x, size=window, mode="constant", cval=0.0)
    counts = uniform_filter1d(np.ones_like(x), size=window, mode="constant", cval=0.0)
    return kernel_sum / counts


def _first_run(mask: np.ndarray, start: int, stop: int, run: int) -> int | None:
    """First index i in [start, stop) with mask[i:i+run] all True (the run may pass ``stop``)."""
    n = mask.size
    count = 0
    for i in range(start, n):
        if mask[i]:
            count += 1
            if count == run:
                first = i - run + 1
                return first if first < stop else None
        else:
            count = 0
            if i + 1 >= stop:  # every later run would start at or after stop
                return None
    return None


def _refine_drop(d: np.ndarray, lo: int, hi: int, window: int) -> int:
    """The frame in [lo, hi] where the raw curve drops most (mean of the ``k`` frames before
    minus mean of the ``k`` after, k = window // 2): the smoothed curve crosses the baseline
    up to half a window away from the actual drop, late or early depending on what follows."""
    k = max(2, window // 2)
    best, best_contrast = hi, -np.inf
    for t in range(max(lo, 1), hi + 1):
        before = d[max(0, t - k) : t]
        after = d[t : t + k]
        if not before.size or not after.size:
            continue
        contrast = float(before.mean() - after.mean())
        if contrast > best_contrast:
            best, best_contrast = t, contrast
    return best


def detect_regions(
    d: np.ndarray,
    onset: int,
    end: int,
    *,
    lookahead: int = 0,
    lead: int = 0,
    rule: str = "paper",
    consecutive: int = 5,
    smooth_window: int = 9,
    loss_scale: float | None = None,
    tol_frac: float = 0.1,
) -> Regions:
    """Find Peak / Assimilation / Recovery on the per-frame difference curve ``d``.

    ``onset``/``end``: first and one-past-last frame of the injected noise; ``lookahead``: the
    codec's look-ahead in frames; ``lead``: further frames before that the curve may change
    (delay pattern); ``loss_scale``: the clip's loss variability (std of the
    original per-frame loss) that sets the smoothed rule's tolerance (``tol_frac`` x scale;
    the std of ``d`` if not given)."""
    if rule not in RULES:
        raise ConfigError(f"region rule {rule!r}: unknown; use one of {', '.join(RULES)}")
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if not 0 <= onset < end:
        raise ConfigError(f"injection frames [{onset}, {end}): onset must be >= 0 and before the end")
    if onset >= n:
        raise ConfigError(f"injection onset frame {onset} is past the clip's {n} frames; use a later-ending clip or an earlier onset")
    peak_start = max(0, onset - lookahead - lead)
    assim_end = min(n, end + lookahead)
    pre = d[:peak_start]
    finite_pre = pre[np.isfinite(pre)]
    if rule == "paper":
        baseline = float(finite_pre.mean()) if finite_pre.size else 0.0
        tolerance = 0.0
        curve = d
        search_from = peak_start
    else:
        baseline = float(np.median(finite_pre)) if finite_pre.size else 0.0
        scale = loss_scale if loss_scale is not None and math.isfinite(loss_scale) else float(np.nanstd(d))
        tolerance = tol_frac * max(scale, 1e-6)
        curve = moving_average(np.nan_to_num(d, nan=baseline), smooth_window)
        window = curve[peak_start:assim_end]
        search_from = peak_start + int(np.argmax(window)) if window.size else peak_start
    at_baseline = curve <= baseline + tolerance
    found = _first_run(at_baseline, search_from, assim_end, consecutive)
    if found is not None and rule == "smooth":
        found = _refine_drop(np.nan_to_num(d, nan=baseline), max(search_from, found - smooth_window), found, smooth_window)
    peak_end = assim_end if found is None else max(found, peak_start)
    return Regions(peak_start, peak_end, assim_end, n, baseline, tolerance, rule)


def _mean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if x.size and np.isfinite(x).any() else float("nan")


def region_metrics(
    d: np.ndarray,
    onset: int,
    end: int,
    *,
    lookahead: int = 0,
    lead: int = 0,
    consecutive: int = 5,
    smooth_window: int = 9,
    loss_scale: float | None = None,
    tol_frac: float = 0.1,
    offset_window: int = 5,
) -> dict[str, float]:
    """All region measurements of one curve, for both rules (smoothed ones prefixed ``smooth_``).

    Per rule: ``peak_end``; ``peak_mean`` / ``assim_mean`` (mean d_t in the region, NaN if
    empty); ``peak_height`` (max d_t in the Peak minus baseline; 0 if the Peak is empty);
    ``peak_area`` (sum of d_t - baseline over the Peak, nats x frames); ``peak_duration``
    (frames); ``assim_depth`` (-assim_mean: how far the loss drops below the original while the
    noise continues; positive = lower loss).
    Shared: ``peak_start``, ``assim_end``, ``baseline`` (paper rule), ``recovery_mean``;
    ``recovery_time`` (frames after ``assim_end`` until the smoothed d_t stays within the
    tolerance of the baseline for ``consecutive`` frames; NaN if never) and ``recovered``;
    ``recovery_var`` (variance of d_t over Recovery); ``offset_spike`` (max d_t in
    [end, end + lookahead + offset_window) minus baseline: the second spike at the noise offset).
    """
    d = np.asarray(d, dtype=np.float64)
    out: dict[str, float] = {}
    paper = detect_regions(d, onset, end, lookahead=lookahead, lead=lead, rule="paper", consecutive=consecutive)
    smooth = detect_regions(
        d, onset, end, lookahead=lookahead, lead=lead, rule="smooth", consecutive=consecutive,
        smooth_window=smooth_window, loss_scale=loss_scale, tol_frac=tol_frac,
    )
    for prefix, reg in (("", paper), ("smooth_", smooth)):
        peak = d[reg.peak]
        assim = d[reg.assimilation]
        out[prefix + "peak_end"] = reg.peak_end
        out[prefix + "peak_mean"] = _mean(peak)
        out[prefix + "peak_height"] = float(np.nanmax(peak) - reg.baseline) if peak.size and np.isfinite(peak).any() else 0.0
        out[prefix + "peak_area"] = float(np.nansum(peak - reg.baseline)) if peak.size else 0.0
        out[prefix + "peak_duration"] = reg.peak_end - reg.peak_start
        out[prefix + "assim_mean"] = _mean(assim)
        out[prefix + "assim_depth"] = -out[prefix + "assim_mean"]
    out["peak_start"] = paper.peak_start
    out["assim_end"] = paper.assim_end
    out["baseline"] = paper.baseline
    recovery = d[paper.recovery]
    out["recovery_mean"] = _mean(recovery)
    out["recovery_var"] = float(np.nanvar(recovery)) if recovery.size and np.isfinite(recovery).any() else float("nan")
    smoothed = moving_average(np.nan_to_num(d, nan=smooth.baseline), smooth_window)
    near = np.abs(smoothed - smooth.baseline) <= smooth.tolerance
    first = _first_run(near, paper.assim_end, paper.n_frames, consecutive) if recovery.size else None
    out["recovered"] = first is not None
    out["recovery_time"] = float(first - paper.assim_end) if first is not None else float("nan")
    lo, hi = min(end, d.size), min(d.size, end + lookahead + offset_window)
    out["offset_spike"] = float(np.nanmax(d[lo:hi]) - paper.baseline) if hi > lo else float("nan")
    return out


# --------------------------------------------------------------------------------------------
# Per-clip profile score
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileScoreSpec:
    """Which injections count as "short" and how the score is normalised."""

    short_max_frames: int = 10
    long_min_frames: int = 50
    min_scale: float = 1e-3  # floor of the clip's loss std, so near-constant clips do not explode

    def to_dict(self) -> dict:
        return asdict(self)


def clip_profiles(results: "pd.DataFrame", spec: ProfileScoreSpec | None = None) -> "pd.DataFrame":
    """Per (model, dataset, clip_id): the profile score and its parts, from the runner's tidy
    results (noise rows only; needs ``length_frames``, ``smooth_peak_height``,
    ``orig_loss_std``, ``assim_depth``, ``recovery_time``, ``offset_spike``).

    Columns: ``profile_score`` (mean over short injections of smooth_peak_height / scale),
    ``n_short`` (injections it averages), ``assim_depth_norm`` (mean over long injections of
    assim_depth / scale), ``recovery_time_mean`` (frames, long injections),
    ``offset_spike_norm`` (long injections), ``orig_loss_mean``, ``orig_loss_std``, ``onsets_s``
    (the onsets the clip's injections actually ran at, e.g. ``"3,5,7"``; a short clip runs
    earlier ones, docs/probe.md), so scores from different plans are not pooled unawares."""
    import pandas as pd

    spec = spec or ProfileScoreSpec()
    keys = ["model", "dataset", "clip_id"]
    noise = results[results["kind"] == "noise"].copy()
    if noise.empty:
        return pd.DataFrame(columns=keys + ["profile_score", "n_short", "assim_depth_norm", "recovery_time_mean",
                                            "offset_spike_norm", "orig_loss_mean", "orig_loss_std", "onsets_s"])
    scale = noise["orig_loss_std"].clip(lower=spec.min_scale)
    noise["_peak_norm"] = noise["smooth_peak_height"] / scale
    noise["_assim_norm"] = noise["assim_depth"] / scale
    noise["_offset_norm"] = noise["offset_spike"] / scale
    short = noise["length_frames"] <= spec.short_max_frames
    long_ = noise["length_frames"] >= spec.long_min_frames
    g_short = noise[short].groupby(keys, sort=True)
    g_long = noise[long_].groupby(keys, sort=True)
    base = noise.groupby(keys, sort=True).agg(orig_loss_mean=("loss_orig", "first"), orig_loss_std=("orig_loss_std", "first"))
    out = base.join(g_short["_peak_norm"].agg(profile_score="mean", n_short="count"))
    out = out.join(g_long.agg(assim_depth_norm=("_assim_norm", "mean"), recovery_time_mean=("recovery_time", "mean"),
                              offset_spike_norm=("_offset_norm", "mean")))
    out["n_short"] = out["n_short"].fillna(0).astype(int)
    if "onset_s" in noise.columns:
        out = out.join(noise.groupby(keys, sort=True)["onset_s"].agg(
            lambda v: ",".join(f"{o:g}" for o in sorted(set(v.dropna())))).rename("onsets_s"))
    else:
        out["onsets_s"] = ""
    cols = ["profile_score", "n_short", "assim_depth_norm", "recovery_time_mean", "offset_spike_norm",
            "orig_loss_mean", "orig_loss_std", "onsets_s"]
    return out.reset_index()[keys + cols]


def profile_summary(clips: "pd.DataFrame", seed: int = 0) -> "pd.DataFrame":
    """Profile score aggregated per model, data set and the onsets actually run (``onsets_s``,
    when present): n, mean, std, bootstrap 95% CI."""
    from musicjudge.probe.stats import summarize

    by = ["model", "dataset"] + (["onsets_s"] if "onsets_s" in clips.columns else [])
    return summarize(clips, by, "profile_score", seed=seed)


MIN_ONSET_S = 0.5  # leaves pre-onset frames for the baseline (codec look-ahead + delays)


def fitting_onsets(onsets_s: Sequence[float], duration_s: float, longest_s: float, min_recovery_s: float) -> tuple[float, ...]:
    """The onsets whose longest injection plus ``min_recovery_s`` ends inside a clip of
    ``duration_s``; if none, one onset as late as fits, but not before ``MIN_ONSET_S``
    (the clip is then rejected as too short by the loader)."""
    fit = tuple(o for o in onsets_s if o + longest_s + min_recovery_s <= duration_s + 1e-9)
    if fit:
        return fit
    latest = duration_s - longest_s - min_recovery_s
    return (round(max(MIN_ONSET_S, min(min(onsets_s), latest)), 2),)


def check_profile_settings(*, onsets_s: Sequence[float], lengths_frames: Sequence[int], crop_start: float = 0.0,
                           crop_duration: float | None = None) -> None:
    """ConfigError for settings that would fail every clip (checked before any clip is read)."""
    from musicjudge.probe.config import parse_floats, parse_ints

    parse_ints("lengths_frames (--lengths)", list(lengths_frames), minimum=1)
    if not onsets_s or min(parse_floats("onsets_s (--onsets)", list(onsets_s))) < 0:
        raise ConfigError(f"onsets_s (--onsets)={list(onsets_s)!r}: give at least one onset, each >= 0 seconds")
    if parse_floats("crop_start", crop_start)[0] < 0:
        raise ConfigError(f"--crop-start {crop_start:g}: must be >= 0 seconds")
    if crop_duration is not None and not parse_floats("crop_duration", crop_duration)[0] > 0:
        raise ConfigError(f"--crop-duration {crop_duration:g}: must be > 0 seconds (or left out for the whole clip)")
