"""The torchaudio-free chroma front-end of MusicGen-Melody (musicjudge.lm.chroma) against
transformers' own ``MusicgenMelodyFeatureExtractor`` and against librosa's chroma.

Tolerances: the filter bank is float32 of the same formula (<= 1e-6 absolute); the
max-normalised chroma agrees with librosa's ``chroma_stft`` to <= 1e-4 absolute (float32 STFTs of
different FFT codes); the model input (one-hot dominant pitch class per frame) must be equal."""

from __future__ import annotations

import importlib
import types

import numpy as np
import pytest
import torch

from musicjudge.errors import AudioError, ConfigError
from musicjudge.lm.chroma import ChromaConfig, chroma_energy, chroma_features, chroma_filter_bank

SR = 32000


def notes(pitches_hz, seconds_each: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A melody: one tone (with two weaker harmonics) per pitch, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds_each * sr)) / sr
    parts = [0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(4 * np.pi * f * t) + 0.05 * np.sin(6 * np.pi * f * t)
             for f in pitches_hz]
    wave = np.concatenate(parts)
    return (wave + 0.01 * rng.standard_normal(wave.size)).astype(np.float32)


C_MAJOR = [261.63, 293.66, 329.63, 349.23, 392.00, 440.00, 493.88, 523.25]  # C D E F G A B C


class NumpySpectrogram:
    """Test-only stand-in for ``torchaudio.transforms.Spectrogram``, the one torchaudio object the
    extractor builds (torchaudio cannot be installed against the CPU torch here).

    Why this is legitimate: it implements torchaudio's documented definition for the arguments
    the extractor passes (``torchaudio.functional.spectrogram``: STFT with a periodic Hann window
    of ``n_fft``, centred frames with reflect padding, ``normalized=True`` = divide the complex STFT
    by the window's L2 norm, then ``|.|**power``), in float64 numpy with no torch.stft, so it is
    independent of the front-end under test. Everything else the extractor does -- its filter
    bank, the padding of short clips, the 30 s truncation, the max-normalisation, the argmax
    one-hot, the batching -- is transformers' real code running unchanged."""

    def __init__(self, *, n_fft, win_length, hop_length, power, center, pad, normalized):
        assert (win_length, power, center, pad, normalized) == (n_fft, 2, True, 0, True)
        self.n_fft, self.hop = n_fft, hop_length

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform.double().numpy()  # [batch, samples]
        half = self.n_fft // 2
        x = np.pad(x, ((0, 0), (half, half)), mode="reflect")
        count = 1 + (x.shape[-1] - self.n_fft) // self.hop
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)  # periodic Hann
        starts = np.arange(count) * self.hop
        frames = x[:, starts[:, None] + np.arange(self.n_fft)[None, :]] * window  # [batch, count, n_fft]
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 / np.sum(window**2)
        return torch.from_numpy(power.transpose(0, 2, 1)).float()  # [batch, bins, frames]


@pytest.fixture
def hf_extractor(monkeypatch):
    """transformers' real MusicgenMelodyFeatureExtractor with the stand-in spectrogram."""
    module = importlib.import_module("transformers.models.musicgen_melody.feature_extraction_musicgen_melody")
    fake = types.SimpleNamespace(transforms=types.SimpleNamespace(Spectrogram=NumpySpectrogram))
    monkeypatch.setattr(module, "torchaudio", fake, raising=False)
    return module.MusicgenMelodyFeatureExtractor()  # official defaults: 32 kHz, n_fft 16384, hop 4096, 30 s


def test_filter_bank_is_transformers_chroma_filter_bank():
    from transformers.audio_utils import chroma_filter_bank as hf_filter_bank

    for cfg in (ChromaConfig(), ChromaConfig(n_fft=4096, hop_length=1024)):
        ours = chroma_filter_bank(cfg).numpy()
        theirs = hf_filter_bank(num_frequency_bins=cfg.n_fft, num_chroma=12, sampling_rate=cfg.sampling_rate, tuning=0)
        assert ours.shape == theirs.shape == (12, cfg.n_fft // 2 + 1)
        assert np.abs(ours - theirs).max() <= 1e-6


def test_normalised_chroma_equals_librosa():
    import librosa

    cfg = ChromaConfig(n_fft=4096, hop_length=1024)
    wave = notes(C_MAJOR, 0.25, seed=1)
    ours = chroma_energy(wave, cfg).numpy()  # [frames, 12]
    theirs = librosa.feature.chroma_stft(y=wave, sr=SR, n_fft=cfg.n_fft, hop_length=cfg.hop_length, window="hann",
                                         center=True, pad_mode="reflect", tuning=0.0, norm=np.inf).T
    assert ours.shape == theirs.shape == (1 + wave.size // cfg.hop_length, 12)
    assert np.abs(ours - theirs).max() <= 1e-4
    # and the tune is there: C D E F G A B C -> pitch classes 0 2 4 5 7 9 11 0
    steady = ours[4::8].argmax(-1)  # one frame well inside each note
    assert steady.tolist() == [0, 2, 4, 5, 7, 9, 11, 0]


@pytest.mark.parametrize("case", ["melody", "shorter_than_n_fft", "longer_than_30s", "silent_gap"])
def test_features_equal_transformers_extractor(hf_extractor, case):
    if case == "melody":
        wave = notes(C_MAJOR, 0.7)
    elif case == "shorter_than_n_fft":
        wave = notes([440.0], 0.3)  # 9600 samples < n_fft 16384: zero-padded on both sides
    elif case == "longer_than_30s":
        wave = notes(C_MAJOR * 4, 1.0)[: 31 * SR]  # the extractor keeps the first 30 s
    else:
        wave = notes(C_MAJOR[:3], 1.0)
        wave[SR : 2 * SR] = 0.0  # silent frames -> pitch class 0, as in the extractor
    ours = chroma_features(wave, ChromaConfig())
    theirs = hf_extractor(wave, sampling_rate=SR, return_tensors="pt")["input_features"][0]
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    assert (ours.sum(-1) == 1).all()
    if case == "longer_than_30s":
        assert ours.shape[0] == 1 + 30 * SR // 4096 == 235  # = the checkpoints' chroma_length
    if case in ("melody", "longer_than_30s"):
        assert len(set(ours.argmax(-1).tolist())) >= 6  # a real tune, not a constant answer


def test_bad_input_and_settings_are_one_line_errors(tmp_path):
    with pytest.raises(AudioError, match="NaN"):
        chroma_features(np.array([0.0, np.nan] * 5000, dtype=np.float32))
    with pytest.raises(AudioError, match="non-empty mono"):
        chroma_features(np.zeros(0, dtype=np.float32))
    with pytest.raises(ConfigError, match="n_fft=0"):
        ChromaConfig(n_fft=0)
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="preprocessor_config.json: not valid JSON"):
        ChromaConfig.from_pretrained(str(tmp_path))
    (tmp_path / "preprocessor_config.json").write_text('{"n_fft": 2048, "hop_length": 512, "stem_indices": [3, 2]}')
    assert ChromaConfig.from_pretrained(str(tmp_path)) == ChromaConfig(n_fft=2048, hop_length=512)
