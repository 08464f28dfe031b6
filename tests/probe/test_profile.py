"""Region detection and metrics on synthetic d_t curves whose regions are known by construction."""

import math

import numpy as np
import pandas as pd
import pytest

from musicjudge.errors import ConfigError
from musicjudge.probe.profile import (
    ProfileScoreSpec,
    clip_profiles,
    detect_regions,
    fitting_onsets,
    moving_average,
    region_metrics,
)


def curve(n=300, peak=(100, 110, 1.0), assim=(110, 150, -0.5), spike=None):
    d = np.zeros(n)
    d[peak[0]:peak[1]] = peak[2]
    d[assim[0]:assim[1]] = assim[2]
    if spike:
        d[spike[0]:spike[1]] = spike[2]
    return d


def test_paper_rule_finds_constructed_regions():
    d = curve()
    r = detect_regions(d, onset=100, end=150, rule="paper")
    assert (r.peak_start, r.peak_end, r.assim_end, r.n_frames) == (100, 110, 150, 300)
    assert r.baseline == 0.0 and r.tolerance == 0.0


def test_lookahead_moves_peak_start_and_assimilation_end():
    d = curve(peak=(96, 110, 1.0), assim=(110, 154, -0.5))
    r = detect_regions(d, onset=100, end=150, lookahead=4, rule="paper")
    assert (r.peak_start, r.peak_end, r.assim_end) == (96, 110, 154)


def test_paper_rule_needs_five_consecutive_baseline_frames():
    d = curve()
    d[110:114] = -0.1  # 4 frames at baseline, then back up: not the end of the Peak
    d[114:120] = 0.8
    r = detect_regions(d, 100, 150, rule="paper")
    assert r.peak_end == 120
    r3 = detect_regions(d, 100, 150, rule="paper", consecutive=3)
    assert r3.peak_end == 110


def test_smooth_rule_ignores_an_onset_dip_that_fools_the_paper_rule():
    d = curve(peak=(108, 120, 1.0), assim=(120, 150, -0.5))
    d[100:108] = -0.2  # the loss dips for 8 frames before the surprise
    paper = detect_regions(d, 100, 150, rule="paper")
    smooth = detect_regions(d, 100, 150, rule="smooth", loss_scale=1.0)
    assert paper.peak_end == 100  # the raw rule ends the Peak at once
    assert 116 <= smooth.peak_end <= 124  # the smoothed rule ends it where the spike decays
    assert smooth.tolerance == pytest.approx(0.1)


def test_peak_that_never_returns_fills_up_to_assimilation_end():
    d = curve(peak=(100, 150, 0.7), assim=(150, 150, 0.0))
    r = detect_regions(d, 100, 150, rule="paper")
    assert r.peak_end == 150 and r.assimilation == slice(150, 150)


def test_detect_regions_rejects_bad_input():
    with pytest.raises(ConfigError, match="onset"):
        detect_regions(np.zeros(10), 5, 5)
    with pytest.raises(ConfigError, match="past the clip"):
        detect_regions(np.zeros(10), 20, 30)
    with pytest.raises(ConfigError, match="rule"):
        detect_regions(np.zeros(10), 2, 4, rule="magic")


def test_region_metrics_match_hand_computed_values():
    d = curve(spike=(150, 153, 0.9))
    d[200:] = 0.0
    m = region_metrics(d, 100, 150, loss_scale=1.0)
    assert m["peak_start"] == 100 and m["peak_end"] == 110 and m["assim_end"] == 150
    assert m["peak_mean"] == pytest.approx(1.0)
    assert m["peak_height"] == pytest.approx(1.0)
    assert m["peak_area"] == pytest.approx(10.0)
    assert m["peak_duration"] == 10
    assert m["assim_mean"] == pytest.approx(-0.5)
    assert m["assim_depth"] == pytest.approx(0.5)
    assert m["offset_spike"] == pytest.approx(0.9)
    # recovery region = frames 150..299: spike of 3 frames at 0.9, the rest 0
    assert m["recovery_mean"] == pytest.approx(3 * 0.9 / 150)
    assert m["recovery_var"] == pytest.approx(np.var(d[150:]))
    # smoothed curve (window 9) is back within 0.1 of baseline 4 frames after the spike ends
    sm = moving_average(d, 9)
    first = next(t for t in range(150, 296) if np.all(np.abs(sm[t:t + 5]) <= 0.1))
    assert m["recovered"] and m["recovery_time"] == first - 150


def test_recovery_time_is_nan_when_the_curve_never_settles():
    d = curve()
    d[150:] = 0.5 + np.where(np.arange(150) % 2 == 0, 0.1, -0.1)  # stays well above baseline
    m = region_metrics(d, 100, 150, loss_scale=1.0)
    assert not m["recovered"] and math.isnan(m["recovery_time"])


def test_moving_average_keeps_length_and_edges():
    x = np.array([3.0, 0, 0, 0, 3.0])
    y = moving_average(x, 3)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, [1.5, 1.0, 0.0, 1.0, 1.5])


def test_clip_profiles_normalises_short_peaks_by_clip_variability():
    rows = []
    for clip, scale, heights in (("a", 0.5, (1.0, 2.0)), ("b", 2.0, (1.0, 1.0))):
        for L, h in zip((5, 10), heights):
            rows.append(dict(model="m", dataset="ds", clip_id=clip, kind="noise", length_frames=L,
                             smooth_peak_height=h, orig_loss_std=scale, loss_orig=4.0, assim_depth=np.nan,
                             recovery_time=np.nan, offset_spike=np.nan))
        rows.append(dict(model="m", dataset="ds", clip_id=clip, kind="noise", length_frames=100, smooth_peak_height=9.0,
                         orig_loss_std=scale, loss_orig=4.0, assim_depth=0.4, recovery_time=12.0, offset_spike=0.2))
        rows.append(dict(model="m", dataset="ds", clip_id=clip, kind="shuffle", length_frames=5, smooth_peak_height=np.nan,
                         orig_loss_std=scale, loss_orig=4.0, assim_depth=np.nan, recovery_time=np.nan, offset_spike=np.nan))
    prof = clip_profiles(pd.DataFrame(rows), ProfileScoreSpec(short_max_frames=10, long_min_frames=50)).set_index("clip_id")
    assert prof.loc["a", "profile_score"] == pytest.approx((1.0 / 0.5 + 2.0 / 0.5) / 2)
    assert prof.loc["b", "profile_score"] == pytest.approx(0.5)
    assert prof.loc["a", "n_short"] == 2
    assert prof.loc["a", "assim_depth_norm"] == pytest.approx(0.8)
    assert prof.loc["b", "recovery_time_mean"] == pytest.approx(12.0)


def test_smooth_rule_is_more_robust_to_frame_noise_than_the_paper_rule():
    """A 20-frame Peak followed by a zero-mean noisy plateau (the usual shape of real d_t):
    five raw frames in a row at or below baseline are rare, so the paper rule overshoots."""
    rng = np.random.default_rng(0)
    hits = {"paper": 0, "smooth": 0}
    trials = 100
    for _ in range(trials):
        d = np.zeros(400)
        d[100:120] = 1.0
        d[100:] += rng.normal(0, 0.15, 300)
        for rule in hits:
            r = detect_regions(d, 100, 200, rule=rule, loss_scale=1.0)
            hits[rule] += abs(r.peak_end - 120) <= 3
    assert hits["smooth"] >= 0.9 * trials
    assert hits["paper"] <= 0.3 * trials


def test_fitting_onsets_keeps_what_fits_and_falls_back_to_one_late_onset():
    assert fitting_onsets([3.0, 5.0, 7.0], 15.0, 0.2, 1.0) == (3.0, 5.0, 7.0)
    assert fitting_onsets([3.0, 5.0, 7.0], 6.5, 0.2, 1.0) == (3.0, 5.0)
    assert fitting_onsets([3.0, 5.0, 7.0], 3.0, 0.2, 1.0) == (1.8,)
    assert fitting_onsets([3.0], 1.0, 0.2, 1.0) == (0.5,)  # too short: the loader rejects it
