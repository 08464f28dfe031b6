"""Conversions between seconds, samples and codec frames.

Audio-token LMs see audio as frames (MusicGen/EnCodec: 50 frames/s, 640 samples per frame at
32 kHz). Perturbation onsets and lengths may be given in either unit, so every conversion goes
through these helpers to keep sample counts exact and identical across packages."""

from __future__ import annotations

import math

from musicjudge.errors import ConfigError

DEFAULT_FRAME_RATE = 50.0


def _check_rates(sample_rate: float, frame_rate: float) -> None:
    if not (sample_rate > 0 and math.isfinite(sample_rate)):
        raise ConfigError(f"sample_rate={sample_rate!r}: must be a positive number of Hz")
    if not (frame_rate > 0 and math.isfinite(frame_rate)):
        raise ConfigError(f"frame_rate={frame_rate!r}: must be a positive number of frames per second")


def frames_to_samples(frames: float, sample_rate: int, frame_rate: float = DEFAULT_FRAME_RATE) -> int:
    """Sample index of frame ``frames`` (rounded to the nearest sample; exact when the
    frame hop is a whole number of samples, e.g. 250 frames at 32 kHz/50 fps -> 160000)."""
    _check_rates(sample_rate, frame_rate)
    return int(round(frames * sample_rate / frame_rate))


def samples_to_frames(samples: int, sample_rate: int, frame_rate: float = DEFAULT_FRAME_RATE) -> float:
    """Frame position of sample index ``samples`` (fractional if it falls inside a frame)."""
    _check_rates(sample_rate, frame_rate)
    return samples * frame_rate / sample_rate


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    """Nearest sample index of a time in seconds."""
    _check_rates(sample_rate, DEFAULT_FRAME_RATE)
    return int(round(seconds * sample_rate))


def to_samples(value: float, unit: str, sample_rate: int, frame_rate: float = DEFAULT_FRAME_RATE) -> int:
    """``value`` in ``unit`` ("s" or "frames") as a sample count."""
    if unit == "s":
        return seconds_to_samples(value, sample_rate)
    if unit == "frames":
        return frames_to_samples(value, sample_rate, frame_rate)
    raise ConfigError(f"unit={unit!r}: expected 's' or 'frames'")


def samples_per_frame(sample_rate: int, frame_rate: float = DEFAULT_FRAME_RATE) -> int:
    """Hop size in samples; raises ConfigError unless it is a whole number (frame-aligned
    block operations such as segment shuffles need whole-sample frames)."""
    _check_rates(sample_rate, frame_rate)
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise ConfigError(
            f"sample_rate={sample_rate} / frame_rate={frame_rate:g} = {hop:.4f} samples per frame is not whole; "
            "resample the audio to the model's sample rate first"
        )
    return int(round(hop))


def num_frames(n_samples: int, sample_rate: int, frame_rate: float = DEFAULT_FRAME_RATE) -> int:
    """Number of whole frames in ``n_samples`` samples."""
    _check_rates(sample_rate, frame_rate)
    return int(math.floor(n_samples * frame_rate / sample_rate + 1e-9))
