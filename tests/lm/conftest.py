"""Shared fixtures: one tiny random MusicGen (real architecture: T5 text encoder, EnCodec,
4-codebook decoder), built once per session and loaded back like a hub checkpoint."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_musicgen_dir(tmp_path_factory):
    from musicjudge.lm.musicgen import build_tiny_musicgen

    out = tmp_path_factory.mktemp("tiny_musicgen")
    build_tiny_musicgen(out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_lm(tiny_musicgen_dir):
    from musicjudge.lm.musicgen import MusicGenLM

    return MusicGenLM.from_pretrained(str(tiny_musicgen_dir), device="cpu")


def make_wave(seconds: float, sr: int = 32000, seed: int = 0) -> np.ndarray:
    """A chirp plus a little noise: non-silent, varied codes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.5 * t)) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def inject_noise(wave: np.ndarray, onset_s: float, length_s: float, sr: int = 32000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = wave.copy()
    a, b = int(onset_s * sr), int((onset_s + length_s) * sr)
    out[a:b] = 0.3 * rng.standard_normal(b - a)
    return out


@pytest.fixture(scope="session")
def tiny_stereo_lm(tmp_path_factory):
    """Stereo variant (8 interleaved codebooks, left/right pairs share a delay)."""
    from musicjudge.lm.musicgen import MusicGenLM, build_tiny_musicgen

    out = tmp_path_factory.mktemp("tiny_musicgen_stereo")
    build_tiny_musicgen(out, seed=1, audio_channels=2)
    return MusicGenLM.from_pretrained(str(out), device="cpu")
