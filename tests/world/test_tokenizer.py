"""Mel residual-VQ tokenizer: shapes, frame counts, round trip, quality ordering, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from musicjudge.errors import AudioError, ConfigError, ModelLoadError
from musicjudge.lm.tokenizer import MelRVQTokenizer, TokenizerConfig, log_mel, tokenizer_quality, train_tokenizer


@pytest.fixture(scope="module")
def chorale_waves():
    from music21 import corpus

    from musicjudge.data.render import render_score

    return [render_score(corpus.parse(p), prog, tempo_bpm=90, max_duration_s=8.0)
            for p, prog in (("bach/bwv66.6", 19), ("bach/bwv269", 52))]


@pytest.fixture(scope="module")
def small_tokenizer(chorale_waves):
    cfg = TokenizerConfig(num_codebooks=3, codebook_size=32)
    tok, stats = train_tokenizer(chorale_waves[:1], cfg, kmeans_iters=5, progress=False)
    return tok, stats


def test_encode_shapes_and_frame_counts(small_tokenizer, chorale_waves):
    tok, _ = small_tokenizer
    assert tok.frame_rate == 50.0 and tok.lookahead_frames == math.ceil(1024 / 640) == 2
    wave = chorale_waves[1]
    for n in (640, 641, 32000, 32000 * 3 + 17, len(wave)):
        codes = tok.encode(wave[:n])
        assert codes.shape == (3, math.ceil(n / 640))
        assert codes.dtype.is_floating_point is False
        assert int(codes.min()) >= 0 and int(codes.max()) < 32
    codes = tok.encode(wave[: 32000 * 2])
    audio = tok.decode(codes, n_iter=4)
    assert audio.dtype == np.float32 and audio.shape == (codes.shape[1] * 640,)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.99 and np.abs(audio).max() > 1e-3
    # decoded audio re-encodes to the same number of frames
    assert tok.encode(audio).shape == codes.shape


def test_more_stages_reconstruct_better(small_tokenizer, chorale_waves):
    tok, stats = small_tokenizer
    mse = stats["stage_mse_standardised"]
    assert all(a > b for a, b in zip(mse, mse[1:]))
    q = tokenizer_quality(tok, [chorale_waves[1][: 32000 * 3]], griffin_lim_clips=0)
    l1 = q["stage_logmel_l1"]
    assert len(l1) == 3 and all(a > b for a, b in zip(l1, l1[1:]))


def test_save_load_roundtrip_and_mismatch(small_tokenizer, chorale_waves, tmp_path):
    tok, _ = small_tokenizer
    tok.save(tmp_path)
    again = MelRVQTokenizer.load(tmp_path)
    wave = chorale_waves[0][:32000]
    assert (again.encode(wave) == tok.encode(wave)).all()
    with pytest.raises(ModelLoadError):
        MelRVQTokenizer(TokenizerConfig(num_codebooks=4, codebook_size=32), tok.mean, tok.std, tok.codebooks)
    with pytest.raises(ModelLoadError):
        MelRVQTokenizer.load(tmp_path / "missing")


def test_bad_input(small_tokenizer):
    tok, _ = small_tokenizer
    with pytest.raises(AudioError, match="shorter than one frame"):
        tok.encode(np.zeros(100, dtype=np.float32))
    with pytest.raises(AudioError, match="NaN"):
        tok.encode(np.full(32000, np.nan, dtype=np.float32))
    with pytest.raises(AudioError, match="mono"):
        log_mel(np.zeros((2, 32000), dtype=np.float32), tok.config)
    with pytest.raises(ConfigError):
        tok.decode(np.full((3, 10), 99))
