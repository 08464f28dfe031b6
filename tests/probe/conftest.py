"""Shared fixtures: a tiny MusicGen (real architecture, random weights) saved to disk and a
folder of short synthetic clips (random note sequences) plus one corrupt file."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 32000


def note_clip(seed: int, seconds: float = 4.0) -> np.ndarray:
    """A non-periodic melody of random notes with decaying envelopes and a little noise."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(SR * seconds), dtype=np.float64)
    pos = 0
    while pos < out.size:
        dur = int(SR * rng.uniform(0.12, 0.4))
        t = np.arange(min(dur, out.size - pos)) / SR
        freq = 220.0 * 2 ** (rng.integers(0, 24) / 12)
        out[pos : pos + t.size] = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-3 * t)
        pos += dur
    out += 0.01 * rng.standard_normal(out.size)
    return out.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_musicgen_dir(tmp_path_factory) -> Path:
    import torch

    from musicjudge.lm.musicgen import build_tiny_musicgen

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny-musicgen")
    build_tiny_musicgen(path, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_lm(tiny_musicgen_dir):
    from musicjudge.lm.loader import load_music_lm

    return load_music_lm(str(tiny_musicgen_dir), device="cpu")


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for i in range(3):
        sf.write(folder / f"clip{i}.wav", note_clip(i), SR)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    return folder
