"""Perturbation specs: small frozen, JSON-serialisable descriptions of what is done to a clip.

Every probe result stores the spec (``to_dict()``) and its ``key``; ``apply(wave, sr, seed)``
reproduces the perturbed audio bit-for-bit from the same seed. Positions are given in seconds
(``unit="s"``) or in frames of the model's token rate (``unit="frames"``, default 50 fps)."""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Union

import numpy as np

from musicjudge.audio.frames import DEFAULT_FRAME_RATE, samples_per_frame, to_samples
from musicjudge.errors import AudioError, ConfigError
from musicjudge.perturb.noise import NOISE_COLOURS, coloured_noise

NOISE_MODES = ("replace", "add", "silence")
LEVEL_REFS = ("dbfs", "snr_span", "snr_clip")
UNITS = ("s", "frames")
SHUFFLE_KINDS = ("swap_adjacent", "swap_random", "permute")


def _num(x: float) -> str:
    """Compact, stable number text for keys: 250.0 -> '250', 0.1 -> '0.1'."""
    return f"{x:g}"


def _as_float(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r}: expected a number") from None
    if not math.isfinite(out):
        raise ConfigError(f"{name}={value!r}: must be finite")
    return out


def _check_wave(wave: np.ndarray, clip: str) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"{clip}: perturbations take mono audio of shape [samples], got {wave.shape}; load with mono=True")
    if not np.isfinite(wave).all():
        raise AudioError(f"{clip}: audio contains NaN/Inf; reload it with musicjudge.audio.load_audio")
    return wave


def _rng(seed: int, key: str) -> np.random.Generator:
    # The key is mixed in so different specs draw independent noise from the same seed.
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r}: must be a non-negative integer")
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


@dataclass(frozen=True)
class NoiseSpec:
    """Noise (or silence) over ``[onset, onset + length)``.

    ``mode``: ``replace`` (the paper's setting: the music is replaced by noise), ``add`` (noise
    mixed on top), ``silence`` (zeros; colour/level are ignored and colour becomes ``"none"``).
    ``level_ref``: ``dbfs`` = absolute RMS of the noise in dB re full scale (RMS 1.0 = 0 dBFS);
    ``snr_span`` / ``snr_clip`` = signal-to-noise ratio in dB, signal RMS measured over the
    replaced span / the whole clip (noise RMS = signal RMS / 10**(level_db/20))."""

    colour: str = "white"
    mode: str = "replace"
    onset: float = 5.0
    length: float = 1.0
    unit: str = "s"
    level_db: float = -20.0
    level_ref: str = "dbfs"
    frame_rate: float = DEFAULT_FRAME_RATE
    type: ClassVar[str] = "noise"

    def __post_init__(self) -> None:
        if self.mode not in NOISE_MODES:
            raise ConfigError(f"mode={self.mode!r}: expected one of {', '.join(NOISE_MODES)}")
        if self.mode == "silence":
            object.__setattr__(self, "colour", "none")
        elif self.colour not in NOISE_COLOURS:
            raise ConfigError(f"colour={self.colour!r}: unknown noise colour; choose one of {', '.join(NOISE_COLOURS)}")
        if self.unit not in UNITS:
            raise ConfigError(f"unit={self.unit!r}: expected 's' or 'frames'")
        if self.level_ref not in LEVEL_REFS:
            raise ConfigError(f"level_ref={self.level_ref!r}: expected one of {', '.join(LEVEL_REFS)}")
        for name in ("onset", "length", "level_db", "frame_rate"):
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        if self.onset < 0:
            raise ConfigError(f"onset={self.onset:g}: must be >= 0")
        if self.length <= 0:
            raise ConfigError(f"length={self.length:g}: must be > 0")
        if self.frame_rate <= 0:
            raise ConfigError(f"frame_rate={self.frame_rate:g}: must be > 0")

    @property
    def key(self) -> str:
        u = "s" if self.unit == "s" else "f"
        fps = f"_fps{_num(self.frame_rate)}" if self.unit == "frames" and self.frame_rate != DEFAULT_FRAME_RATE else ""
        pos = f"on{_num(self.onset)}{u}_len{_num(self.length)}{u}{fps}"
        if self.mode == "silence":
            return f"silence_{pos}"
        level = f"{self.level_ref}{self.level_db:+g}dB"
        return f"noise_{self.colour}_{self.mode}_{level}_{pos}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def span(self, sr: int) -> tuple[int, int]:
        """(start, end) sample indices of the noise, independent of the clip length."""
        start = to_samples(self.onset, self.unit, sr, self.frame_rate)
        count = to_samples(self.length, self.unit, sr, self.frame_rate)
        if count < 1:
            raise ConfigError(f"{self.key}: length is shorter than one sample at {sr} Hz; use a longer length")
        return start, start + count

    def affected_span(self, sr: int, n_samples: int, clip: str = "clip") -> tuple[int, int]:
        start, end = self.span(sr)
        if end > n_samples:
            raise AudioError(
                f"{clip}: perturbation {self.key} ends at {end / sr:.3f} s but the clip is {n_samples / sr:.3f} s; "
                "use a longer clip or an earlier onset / shorter length"
            )
        return start, end

    def apply_with_info(self, wave: np.ndarray, sr: int, seed: int = 0, *, clip: str = "clip") -> tuple[np.ndarray, dict]:
        """Perturbed copy of ``wave`` plus facts worth storing with the result:
        ``start``/``end`` samples, ``noise_rms_db`` (dBFS of the injected noise, None for
        silence) and ``peak`` (max |sample|; above 1.0 the clip needs write_audio's handling)."""
        wave = _check_wave(wave, clip)
        start, end = self.affected_span(sr, len(wave), clip)
        out = wave.copy()
        noise_rms_db = None
        if self.mode == "silence":
            out[start:end] = 0.0
        else:
            if self.level_ref == "dbfs":
                target = 10 ** (self.level_db / 20)
            else:
                ref = wave[start:end] if self.level_ref == "snr_span" else wave
                signal = _rms(ref)
                if signal == 0.0:
                    where = "the span" if self.level_ref == "snr_span" else "the clip"
                    raise AudioError(
                        f"{clip}: {where} is silent so an SNR for {self.key} is undefined; use level_ref='dbfs'"
                    )
                target = signal / 10 ** (self.level_db / 20)
            noise = coloured_noise(end - start, self.colour, _rng(seed, self.key)) * np.float32(target)
            noise_rms_db = 20 * math.log10(_rms(noise))
            if self.mode == "replace":
                out[start:end] = noise
            else:
                out[start:end] += noise
        info = {"start": start, "end": end, "noise_rms_db": noise_rms_db, "peak": float(np.max(np.abs(out)))}
        return out, info

    def apply(self, wave: np.ndarray, sr: int, seed: int = 0, *, clip: str = "clip") -> np.ndarray:
        """Perturbed copy of ``wave`` (same length); deterministic given ``seed``."""
        return self.apply_with_info(wave, sr, seed, clip=clip)[0]


@dataclass(frozen=True)
class ShuffleSpec:
    """Reorder blocks of ``block`` frames (always frames: block boundaries sit at multiples of
    the frame hop from the onset, so each block maps to whole codec frames).

    ``swap_adjacent``: swap the two blocks starting at ``onset``.
    ``swap_random``: in ``[onset, range_end)`` (default: to the end of the clip) swap ``pairs``
    disjoint, randomly chosen pairs of blocks (``pairs=None``: pair up every block).
    ``permute``: randomly permute all blocks in ``[onset, range_end)`` (never the identity).
    ``onset`` and ``range_end`` are in ``unit``; the tail that does not fill a block is kept."""

    kind: str = "swap_adjacent"
    block: int = 10
    onset: float = 5.0
    range_end: float | None = None
    unit: str = "s"
    frame_rate: float = DEFAULT_FRAME_RATE
    pairs: int | None = 1
    type: ClassVar[str] = "shuffle"

    def __post_init__(self) -> None:
        if self.kind not in SHUFFLE_KINDS:
            raise ConfigError(f"kind={self.kind!r}: expected one of {', '.join(SHUFFLE_KINDS)}")
        if self.unit not in UNITS:
            raise ConfigError(f"unit={self.unit!r}: expected 's' or 'frames'")
        block = _as_float("block", self.block)
        if block < 1 or block != int(block):
            raise ConfigError(f"block={self.block!r}: must be a whole number of frames >= 1")
        object.__setattr__(self, "block", int(block))
        object.__setattr__(self, "onset", _as_float("onset", self.onset))
        object.__setattr__(self, "frame_rate", _as_float("frame_rate", self.frame_rate))
        if self.onset < 0:
            raise ConfigError(f"onset={self.onset:g}: must be >= 0")
        if self.frame_rate <= 0:
            raise ConfigError(f"frame_rate={self.frame_rate:g}: must be > 0")
        if self.range_end is not None:
            if self.kind == "swap_adjacent":
                raise ConfigError("range_end applies to swap_random/permute only; drop it for swap_adjacent")
            object.__setattr__(self, "range_end", _as_float("range_end", self.range_end))
            if self.range_end <= self.onset:
                raise ConfigError(f"range_end={self.range_end:g}: must be after onset={self.onset:g}")
        if self.kind == "swap_random":
            if self.pairs is not None:
                if int(self.pairs) != self.pairs or self.pairs < 1:
                    raise ConfigError(f"pairs={self.pairs!r}: must be an integer >= 1 (or None for all blocks)")
                object.__setattr__(self, "pairs", int(self.pairs))
        else:
            object.__setattr__(self, "pairs", None)  # only meaningful for swap_random

    @property
    def key(self) -> str:
        u = "s" if self.unit == "s" else "f"
        parts = [f"shuffle_{self.kind}_b{self.block}f_on{_num(self.onset)}{u}"]
        if self.range_end is not None:
            parts.append(f"to{_num(self.range_end)}{u}")
        if self.kind == "swap_random":
            parts.append(f"p{self.pairs if self.pairs is not None else 'all'}")
        if self.frame_rate != DEFAULT_FRAME_RATE:
            parts.append(f"fps{_num(self.frame_rate)}")
        return "_".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def _layout(self, sr: int, n_samples: int, clip: str) -> tuple[int, int, int]:
        """(start sample, block size in samples, number of blocks) for this clip."""
        hop = samples_per_frame(sr, self.frame_rate)
        start = to_samples(self.onset, self.unit, sr, self.frame_rate)
        size = self.block * hop
        if self.kind == "swap_adjacent":
            n_blocks = 2
            end = start + 2 * size
        else:
            end = n_samples if self.range_end is None else to_samples(self.range_end, self.unit, sr, self.frame_rate)
            if end > n_samples:
                raise AudioError(
                    f"{clip}: {self.key} range ends at {end / sr:.3f} s but the clip is {n_samples / sr:.3f} s; "
                    "use a longer clip or an earlier range_end"
                )
            n_blocks = max(0, (end - start) // size)
            end = start + n_blocks * size
        if n_blocks < 2 or end > n_samples:
            raise AudioError(
                f"{clip}: {self.key} needs two blocks of {self.block} frames after {start / sr:.3f} s "
                f"but the clip is {n_samples / sr:.3f} s; use a longer clip, an earlier onset or a smaller block"
            )
        return start, size, n_blocks

    def affected_span(self, sr: int, n_samples: int, clip: str = "clip") -> tuple[int, int]:
        start, size, n_blocks = self._layout(sr, n_samples, clip)
        return start, start + n_blocks * size

    def block_order(self, n_blocks: int, seed: int) -> np.ndarray:
        """New order of the blocks: output block i is input block order[i]."""
        if self.kind == "swap_adjacent":
            return np.array([1, 0])
        rng = _rng(seed, self.key)
        order = np.arange(n_blocks)
        if self.kind == "permute":
            while True:  # n_blocks >= 2, so a non-identity permutation exists
                order = rng.permutation(n_blocks)
                if not np.array_equal(order, np.arange(n_blocks)):
                    return order
        n_pairs = n_blocks // 2 if self.pairs is None else min(self.pairs, n_blocks // 2)
        chosen = rng.permutation(n_blocks)[: 2 * n_pairs].reshape(n_pairs, 2)
        order[chosen[:, 0]], order[chosen[:, 1]] = chosen[:, 1], chosen[:, 0]
        return order

    def apply_with_info(self, wave: np.ndarray, sr: int, seed: int = 0, *, clip: str = "clip") -> tuple[np.ndarray, dict]:
        wave = _check_wave(wave, clip)
        start, size, n_blocks = self._layout(sr, len(wave), clip)
        order = self.block_order(n_blocks, seed)
        end = start + n_blocks * size
        out = wave.copy()
        out[start:end] = wave[start:end].reshape(n_blocks, size)[order].reshape(-1)
        info = {"start": start, "end": end, "block_order": order.tolist(), "peak": float(np.max(np.abs(out)))}
        return out, info

    def apply(self, wave: np.ndarray, sr: int, seed: int = 0, *, clip: str = "clip") -> np.ndarray:
        """Shuffled copy of ``wave`` (same length); deterministic given ``seed``."""
        return self.apply_with_info(wave, sr, seed, clip=clip)[0]


Perturbation = Union[NoiseSpec, ShuffleSpec]
_TYPES: dict[str, type] = {"noise": NoiseSpec, "shuffle": ShuffleSpec}


def perturbation_from_dict(d: dict[str, Any]) -> Perturbation:
    """Inverse of ``spec.to_dict()``; unknown types/fields raise ConfigError."""
    if not isinstance(d, dict):
        raise ConfigError(f"perturbation spec {d!r}: expected a JSON object")
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in _TYPES:
        raise ConfigError(f"perturbation spec {d!r}: 'type' must be one of {', '.join(_TYPES)}")
    cls = _TYPES[kind]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"perturbation spec of type {kind!r}: unknown field(s) {', '.join(unknown)}")
    return cls(**d)


def affected_span(spec: Perturbation, sr: int, n_samples: int, clip: str = "clip") -> tuple[int, int]:
    """(start, end) samples that ``spec`` may change in a clip of ``n_samples``; samples before
    ``start`` are untouched, so scores of that prefix can be reused."""
    return spec.affected_span(sr, n_samples, clip)


def apply_perturbation(spec: Perturbation, wave: np.ndarray, sr: int, seed: int = 0, *, clip: str = "clip") -> np.ndarray:
    return spec.apply(wave, sr, seed, clip=clip)
