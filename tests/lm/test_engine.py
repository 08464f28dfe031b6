"""The shared-prefix perturbation engine equals full forward passes (float32, <= 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicjudge.errors import AudioError, ConfigError
from musicjudge.lm.engine import score_code_perturbations, score_perturbations

from .conftest import inject_noise, make_wave


def full_pass(lm, waves, condition):
    return lm.token_nll_batch(lm.encode_batch(waves), condition=condition)


@pytest.mark.parametrize("condition", [None, "loud rock drums"])
def test_engine_equals_full_forward(tiny_lm, condition):
    wave = make_wave(2.0, seed=11)  # 100 frames
    perturbed = [inject_noise(wave, onset, length, seed=i)
                 for i, (onset, length) in enumerate([(0.5, 0.02), (0.5, 0.2), (0.5, 1.0), (1.2, 0.1), (1.6, 0.3)])]
    perturbed.append(wave.copy())  # an identity "perturbation"
    stats: dict = {}
    original, results = score_perturbations(tiny_lm, wave, perturbed, condition=condition, batch_size=2,
                                            stats=stats)
    reference = full_pass(tiny_lm, [wave, *perturbed], condition)
    assert (original.nll - reference[0].nll).abs().max().item() <= 1e-4
    for got, want in zip(results, reference[1:]):
        assert got.mask.all()
        assert (got.nll - want.nll).abs().max().item() <= 1e-4
    assert (results[-1].nll == original.nll).all() and stats["spans"][-1] is None
    # real savings: fewer positions than one full pass per clip
    assert stats["positions_unique"] == stats["positions_computed"] < 0.8 * stats["positions_naive"]
    # codes change a few frames BEFORE the waveform (EnCodec look-ahead), never more than it
    onset_frame = 25
    first = stats["spans"][0].first_frame
    assert onset_frame - tiny_lm.lookahead_frames <= first < onset_frame
    assert results[2].frame_curve()[: first - 3].sub(original.frame_curve()[: first - 3]).abs().max() == 0


def test_horizon_scores_only_frames_after_the_change(tiny_lm):
    wave = make_wave(2.0, seed=12)
    perturbed = [inject_noise(wave, 0.4, 0.2), inject_noise(wave, 1.0, 0.1, seed=3)]
    stats: dict = {}
    _, results = score_perturbations(tiny_lm, wave, perturbed, horizon=10, stats=stats)
    reference = full_pass(tiny_lm, perturbed, None)
    for got, want, span in zip(results, reference, stats["spans"]):
        limit = span.last_frame + 10
        assert got.mask[:, : limit + 1].all() and not got.mask[:, limit + 1 :].any()
        assert torch.isnan(got.nll[:, limit + 1 :]).all()
        assert (got.nll[got.mask] - want.nll[got.mask]).abs().max().item() <= 1e-4
    assert stats["positions_unique"] < 0.6 * stats["positions_naive"]


def test_code_level_changes_in_higher_codebooks(tiny_lm):
    """A change only in codebook 3 at frame t starts at delayed position t + 4: the engine must
    reuse the prefix up to there and still match the full pass."""
    codes = tiny_lm.encode(make_wave(1.0, seed=13))
    changed_hi = codes.clone()
    changed_hi[3, 30] = (changed_hi[3, 30] + 1) % tiny_lm.codebook_size
    changed_lo = codes.clone()
    changed_lo[0, 31:35] = (changed_lo[0, 31:35] + 5) % tiny_lm.codebook_size
    changed_last = codes.clone()  # only the very last target changes: nothing to decode anew
    changed_last[3, -1] = (changed_last[3, -1] + 1) % tiny_lm.codebook_size
    stats: dict = {}
    _, results = score_code_perturbations(tiny_lm, codes, [changed_hi, changed_lo, changed_last], stats=stats)
    assert stats["spans"][0].first_position == 30 + 3 + 1
    assert stats["spans"][1].first_position == 31 + 0 + 1
    reference = tiny_lm.token_nll_batch([changed_hi, changed_lo, changed_last])
    for got, want in zip(results, reference):
        assert (got.nll - want.nll).abs().max().item() <= 1e-4


def test_engine_rejects_bad_inputs(tiny_lm):
    wave = make_wave(1.0)
    with pytest.raises(AudioError, match="must keep the clip length"):
        score_perturbations(tiny_lm, wave, [wave[:-3200]])
    with pytest.raises(AudioError, match="NaN"):
        bad = wave.copy()
        bad[100] = np.nan
        score_perturbations(tiny_lm, wave, [bad])
    with pytest.raises(ConfigError, match="horizon"):
        score_perturbations(tiny_lm, wave, [wave], horizon=-1)


def test_batched_sweep_with_chunks_equals_full_forward(tiny_lm):
    """Clips with different starts and stops share one sweep (joining/leaving the batch at
    their own positions), here also split into 16-position chunks."""
    codes = tiny_lm.encode(make_wave(1.6, seed=14))  # 80 frames
    perturbed = []
    for i, (onset, length) in enumerate([(10, 3), (10, 30), (25, 5), (40, 20), (41, 2), (60, 15)]):
        changed = codes.clone()
        changed[:, onset : onset + length] = (changed[:, onset : onset + length] + 7 + i) % tiny_lm.codebook_size
        perturbed.append(changed)
    old = tiny_lm.chunk_size
    try:
        tiny_lm.chunk_size = 16
        stats: dict = {}
        _, results = score_code_perturbations(tiny_lm, codes, perturbed, horizon=12, batch_size=4, stats=stats)
    finally:
        tiny_lm.chunk_size = old
    reference = tiny_lm.token_nll_batch(perturbed)
    for got, want in zip(results, reference):
        assert (got.nll[got.mask] - want.nll[got.mask]).abs().max().item() <= 1e-4
    assert stats["positions_computed"] == stats["positions_unique"]


def test_engine_on_stereo_delays(tiny_stereo_lm):
    wave = make_wave(1.0, seed=15)
    perturbed = [inject_noise(wave, 0.3, 0.1), inject_noise(wave, 0.6, 0.3, seed=4)]
    _, results = score_perturbations(tiny_stereo_lm, wave, perturbed, batch_size=2)
    for got, want in zip(results, full_pass(tiny_stereo_lm, perturbed, None)):
        assert (got.nll - want.nll).abs().max().item() <= 1e-4
