"""MuQ's front-end: a log-mel spectrogram on ``torch.stft`` (no torchaudio).

The definition MuQ was trained with (torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB`` defaults):

* STFT with ``n_fft`` = window length, periodic Hann window, centred frames with reflect padding,
  one-sided, not normalised; power spectrum ``|X|^2``;
* triangular mel filters on the HTK mel scale ``mel = 2595 log10(1 + f / 700)``, from 0 Hz to
  Nyquist, ``n_mels + 2`` equally spaced mel points, *no* area normalisation
  (= ``librosa.filters.mel(..., htk=True, norm=None)``);
* decibels ``10 log10(max(x, 1e-10))`` (no reference scaling, no ``top_db`` clipping).

MuQ then drops the last frame (``[..., :-1]``) and standardises with the global mean/std of its
config (``stat``); both are done by :class:`musicjudge.reward.muq.model.MuQ`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def hz_to_mel_htk(freq: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                       f_max: float | None = None) -> np.ndarray:
    """[n_mels, 1 + n_fft // 2] triangular filters (peak 1, unnormalised), computed in float64."""
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    bins = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    edges = mel_to_hz_htk(np.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2))
    widths = np.diff(edges)
    offsets = edges[:, None] - bins[None, :]  # [n_mels + 2, bins]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(rising, falling))


class LogMelSpectrogram(nn.Module):
    """``forward(wave [..., L]) -> [..., n_mels, 1 + L // hop]`` in dB (float32).

    The window and filterbank are non-persistent buffers: they are not part of a checkpoint.
    """

    def __init__(self, sample_rate: int = 24000, n_fft: int = 2048, hop_length: int = 240, n_mels: int = 128) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = int(sample_rate), int(n_fft), int(hop_length), int(n_mels)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        fb = htk_mel_filterbank(self.sample_rate, self.n_fft, self.n_mels).astype(np.float32)
        self.register_buffer("filterbank", torch.from_numpy(fb), persistent=False)

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        shape = wave.shape
        flat = wave.reshape(-1, shape[-1]).float()
        spec = torch.stft(flat, self.n_fft, hop_length=self.hop_length, win_length=self.n_fft, window=self.window,
                          center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [N, bins, frames]
        mel = torch.matmul(self.filterbank, power)
        return mel.reshape(*shape[:-1], *mel.shape[-2:])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(self.power_mel(wave), min=1e-10))
