"""Reading, writing and resampling audio files.

soundfile (libsndfile) reads wav/flac/ogg/mp3/aiff; soxr resamples. Every problem with an input
file raises :class:`~musicjudge.errors.AudioError` whose one-line message names the file and the
fix, so batch jobs can record the item and move on."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf
import soxr

from musicjudge.errors import AudioError, ConfigError

log = logging.getLogger(__name__)

# Extensions musicjudge treats as audio; all are readable by libsndfile >= 1.1.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")

# Clips whose RMS is below this are treated as silent: nothing a model could judge.
# (-80 dBFS is far below the dither floor of 16-bit audio played at any sane gain.)
SILENCE_RMS_DB = -80.0

# Container chosen by libsndfile for each extension we write.
_WRITE_FORMATS = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".ogg": "OGG",
    ".oga": "OGG",
    ".opus": "OGG",
    ".mp3": "MP3",
    ".aif": "AIFF",
    ".aiff": "AIFF",
}


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    num_samples: int
    channels: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def _supported_list() -> str:
    return ", ".join(e.lstrip(".") for e in AUDIO_EXTENSIONS)


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise AudioError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file; pass a file (or use list_audio_files)")
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioError(f"{path}: unsupported extension {path.suffix!r}; convert it to one of {_supported_list()}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-export or remove it")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{path}: cannot decode audio ({reason}); the file is corrupt or not really {path.suffix}") from None


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, length and channel count without decoding the samples."""
    path = Path(path)
    with _open(path) as f:
        return AudioInfo(str(path), int(f.samplerate), int(f.frames), int(f.channels))


def load_audio_with_sr(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    min_duration: float | None = None,
    silence_rms_db: float = SILENCE_RMS_DB,
) -> tuple[np.ndarray, int]:
    """Load ``path`` as float32 and return ``(wave, sr)``.

    ``wave`` has shape ``[samples]`` when ``mono`` (channels averaged) or ``[channels, samples]``.
    ``offset``/``duration`` crop in seconds; asking for more than the file holds is an error
    (a window that silently comes back short would skew every per-frame statistic).
    ``min_duration`` rejects clips (after cropping) shorter than that many seconds.
    Resamples with soxr when ``sample_rate`` differs from the file's rate."""
    path = Path(path)
    if offset < 0 or not math.isfinite(offset):
        raise ConfigError(f"offset={offset!r}: must be a finite number of seconds >= 0")
    if duration is not None and (duration <= 0 or not math.isfinite(duration)):
        raise ConfigError(f"duration={duration!r}: must be a positive number of seconds (or None for the rest)")
    if sample_rate is not None and int(sample_rate) <= 0:
        raise ConfigError(f"sample_rate={sample_rate!r}: must be a positive number of Hz (or None for the file's rate)")
    with _open(path) as f:
        sr_file = int(f.samplerate)
        total = int(f.frames)
        if total <= 0:
            raise AudioError(f"{path}: contains no samples; re-export or remove it")
        start = int(round(offset * sr_file))
        if start >= total:
            raise AudioError(
                f"{path}: offset {offset:g} s is past the end of the clip ({total / sr_file:.2f} s); use a smaller offset"
            )
        if duration is None:
            count = total - start
        else:
            count = int(round(duration * sr_file))
            if start + count > total:
                raise AudioError(
                    f"{path}: clip is {total / sr_file:.2f} s, shorter than the requested window "
                    f"{offset:g}+{duration:g} s; use a longer clip or a shorter window"
                )
        try:
            if start:
                f.seek(start)
            data = f.read(count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{path}: decoding failed mid-file ({e}); the file is truncated or corrupt") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples; re-export or remove it")
    if data.shape[0] < count:  # some decoders report more frames than they deliver
        raise AudioError(
            f"{path}: decoded only {data.shape[0]} of {count} expected samples; the file is truncated, re-export it"
        )
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} samples are NaN or Inf; regenerate the file (the producer is broken)")
    wave = data.mean(axis=1) if mono else np.ascontiguousarray(data.T)
    wave = wave.astype(np.float32, copy=False)
    got = wave.shape[-1] / sr_file
    if min_duration is not None and got + 1e-9 < min_duration:
        raise AudioError(
            f"{path}: clip is {got:.2f} s, shorter than the required {min_duration:g} s; use a longer clip"
        )
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms <= 10 ** (silence_rms_db / 20):
        if mono and data.shape[1] > 1 and np.sqrt(np.mean(np.square(data, dtype=np.float64))) > 10 ** (silence_rms_db / 20):
            raise AudioError(f"{path}: the channels cancel out when mixed to mono (one is phase-inverted); "
                             "fix the channel polarity or export one channel")
        level = "digital silence" if rms == 0 else f"RMS {20 * math.log10(rms):.1f} dBFS"
        raise AudioError(f"{path}: audio is silent ({level}); remove it or check the export")
    sr = sr_file
    if sample_rate is not None and int(sample_rate) != sr_file:
        wave = resample(wave, sr_file, int(sample_rate))
        sr = int(sample_rate)
    return wave, sr


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    min_duration: float | None = None,
    silence_rms_db: float = SILENCE_RMS_DB,
) -> np.ndarray:
    """Like :func:`load_audio_with_sr` but returns only the wave."""
    wave, _ = load_audio_with_sr(
        path,
        sample_rate,
        mono=mono,
        offset=offset,
        duration=duration,
        min_duration=min_duration,
        silence_rms_db=silence_rms_db,
    )
    return wave


def resample(wave: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample ``[samples]`` or ``[channels, samples]`` audio with soxr (float32 out)."""
    for name, value in (("sr_in", sr_in), ("sr_out", sr_out)):
        if not (isinstance(value, (int, np.integer)) and value > 0):
            raise ConfigError(f"{name}={value!r}: sample rates must be positive integers (Hz)")
    wave = np.asarray(wave, dtype=np.float32)
    if sr_in == sr_out:
        return wave.copy()
    if wave.ndim == 1:
        out = soxr.resample(wave, int(sr_in), int(sr_out), quality=quality)
    elif wave.ndim == 2:  # soxr wants [samples, channels]
        out = soxr.resample(np.ascontiguousarray(wave.T), int(sr_in), int(sr_out), quality=quality).T
    else:
        raise ConfigError(f"wave has shape {wave.shape}; expected [samples] or [channels, samples]")
    return np.ascontiguousarray(out, dtype=np.float32)


def write_audio(
    path: str | os.PathLike,
    wave: np.ndarray,
    sr: int,
    *,
    on_clip: str = "normalize",
    normalize_peak: float = 0.99,
    subtype: str | None = None,
) -> float:
    """Write ``wave`` (``[samples]`` or ``[channels, samples]``) atomically and return its peak
    (max |sample| before any scaling).

    Integer and lossy formats cannot hold samples beyond +-1, so a peak above 1 is never
    clipped silently: ``on_clip="normalize"`` scales the whole clip to ``normalize_peak`` and
    logs a warning; ``on_clip="raise"`` raises AudioError."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_FORMATS:
        raise AudioError(f"{path}: cannot write extension {path.suffix!r}; use one of {_supported_list()}")
    if on_clip not in ("normalize", "raise"):
        raise ConfigError(f"on_clip={on_clip!r}: expected 'normalize' or 'raise'")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2) or wave.shape[-1] == 0:
        raise AudioError(f"{path}: refusing to write audio of shape {wave.shape}; expected non-empty [samples]")
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: audio to write contains NaN/Inf; fix the processing step that produced it")
    peak = float(np.max(np.abs(wave)))
    if peak > 1.0:
        if on_clip == "raise":
            raise AudioError(f"{path}: peak {peak:.3f} exceeds full scale and would clip; lower the level")
        log.warning("%s: peak %.3f exceeds full scale; normalised to %.2f instead of clipping", path, peak, normalize_peak)
        wave = wave * np.float32(normalize_peak / peak)
    data = wave if wave.ndim == 1 else wave.T
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=ext)
    os.close(fd)
    try:
        sf.write(tmp, data, int(sr), format=_WRITE_FORMATS[ext], subtype=subtype)
        os.replace(tmp, path)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"{path}: cannot write audio ({e}); check the sample rate/subtype for this format") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return peak


def list_audio_files(
    folder: str | os.PathLike,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
    *,
    recursive: bool = True,
) -> list[Path]:
    """Audio files under ``folder`` (matched by extension, case-insensitive), sorted by their
    relative path so every process and run sees the same order. Hidden files (``.name``, e.g.
    macOS ``._x.wav`` resource forks) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"{folder}: folder not found; check the path")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in exts
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
