"""MusicGen-Melody's chroma front-end without torchaudio.

transformers' ``MusicgenMelodyFeatureExtractor`` cannot be built here (it constructs a
``torchaudio.transforms.Spectrogram``), so this module computes the same features with
``torch.stft`` and librosa's chroma filter bank. Step by step, as the extractor does:

1. keep the first ``chunk_length_s`` seconds (30 s: the extractor truncates to that);
2. a clip shorter than ``n_fft`` is zero-padded on both sides to ``n_fft`` samples;
3. power spectrogram ``|STFT|^2 / sum(window^2)``: periodic Hann window of ``n_fft``,
   ``hop_length`` hop, centred frames with reflect padding (torchaudio's ``Spectrogram`` with
   ``normalized=True, power=2``);
4. chroma energy = chroma filter bank (``tuning=0``, starting at C) times that spectrogram;
5. per frame, divide by the largest bin (floor 1e-6) and keep only the dominant pitch class:
   the model input is one-hot ``[frames, num_chroma]`` (ties and silent frames -> bin 0, which
   is also how the model's null melody condition looks).

The reference recording is used as it is: audiocraft and transformers' processor can first
strip drums and bass with Demucs (the "vocals" + "other" stems); no Demucs here, so pass that
stem yourself when the reference has strong drums.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musicjudge.errors import AudioError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: the extractor's floor on each frame's largest chroma value (``F.normalize(eps=1e-6)``)
NORM_FLOOR = 1e-6


@dataclass(frozen=True)
class ChromaConfig:
    """Front-end settings, named as in a checkpoint's ``preprocessor_config.json``; the defaults
    are facebook/musicgen-melody's."""

    sampling_rate: int = 32000
    n_fft: int = 16384
    hop_length: int = 4096
    num_chroma: int = 12
    chunk_length: int = 30  # seconds of the reference that are kept

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"chroma front-end: {f.name}={value!r} must be a whole number >= 1; "
                                  "fix preprocessor_config.json")

    @property
    def max_samples(self) -> int:
        return self.chunk_length * self.sampling_rate

    @classmethod
    def from_dict(cls, data: dict) -> "ChromaConfig":
        """From a feature-extractor dict (unknown keys such as ``stem_indices`` are ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if data.get(f.name) is not None})

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "ChromaConfig":
        """The checkpoint's ``preprocessor_config.json`` (local folder or hub id), else the defaults."""
        local = Path(name_or_path).expanduser() / "preprocessor_config.json"
        if local.is_file():
            try:
                data = json.loads(local.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ConfigError(f"{local}: not valid JSON ({e}); re-download the checkpoint's "
                                  "preprocessor_config.json") from None
            return cls.from_dict(data)
        if Path(name_or_path).expanduser().exists():
            return cls()  # a local folder without one: the official settings
        try:
            from transformers.feature_extraction_utils import FeatureExtractionMixin

            data, _ = FeatureExtractionMixin.get_feature_extractor_dict(name_or_path)
        except Exception:  # noqa: BLE001 - offline / not on the hub: the official settings
            return cls()
        return cls.from_dict(data)


@functools.lru_cache(maxsize=4)
def _filter_bank(sampling_rate: int, n_fft: int, num_chroma: int) -> np.ndarray:
    import librosa

    # librosa's defaults (centre octave 5, width 2, L2-normalised columns, C first) are the
    # ones transformers' chroma_filter_bank, and so the extractor, uses
    return librosa.filters.chroma(sr=sampling_rate, n_fft=n_fft, n_chroma=num_chroma, tuning=0.0,
                                  dtype=np.float32)


def chroma_filter_bank(config: ChromaConfig) -> "torch.Tensor":
    """``[num_chroma, n_fft // 2 + 1]`` float32 projection of STFT bins onto pitch classes."""
    import torch

    return torch.from_numpy(_filter_bank(config.sampling_rate, config.n_fft, config.num_chroma).copy())


def _prepare(wave: np.ndarray, config: ChromaConfig, source: str) -> "torch.Tensor":
    import torch

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:  # [channels, samples]: the extractor averages channels
        wave = wave.mean(axis=0)
    if wave.ndim != 1 or wave.size == 0:
        raise AudioError(f"{source}: expected a non-empty mono wave [samples], got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise AudioError(f"{source}: wave contains NaN/inf; repair or re-render the reference audio")
    x = torch.from_numpy(np.ascontiguousarray(wave[: config.max_samples]))
    if x.numel() < config.n_fft:
        pad = config.n_fft - x.numel()
        x = torch.nn.functional.pad(x, (pad // 2, pad - pad // 2))
    return x


def chroma_energy(wave: np.ndarray, config: ChromaConfig = ChromaConfig(), source: str = "<melody>") -> "torch.Tensor":
    """Per-frame chroma normalised by its largest bin, ``[frames, num_chroma]`` float32 (steps 1-5
    before the one-hot). ``frames = 1 + samples // hop_length`` (centred frames)."""
    import torch

    x = _prepare(wave, config, source)
    window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float32)
    spec = torch.stft(x, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.n_fft,
                      window=window, center=True, pad_mode="reflect", onesided=True, return_complex=True)
    power = spec.abs().pow(2) / window.pow(2).sum()  # [bins, frames]
    raw = chroma_filter_bank(config) @ power  # [num_chroma, frames]
    peak = raw.abs().amax(dim=0, keepdim=True).clamp_min(NORM_FLOOR)
    return (raw / peak).T.contiguous()


def chroma_features(wave: np.ndarray, config: ChromaConfig = ChromaConfig(), source: str = "<melody>") -> "torch.Tensor":
    """The model's melody input: one-hot dominant pitch class per frame, ``[frames, num_chroma]``
    float32 (what ``MusicgenMelodyFeatureExtractor`` returns as ``input_features[0]``)."""
    import torch

    energy = chroma_energy(wave, config, source)
    # torch.argmax returns the first maximal index, as in the extractor
    return torch.nn.functional.one_hot(energy.argmax(dim=-1), config.num_chroma).to(torch.float32)
