"""Reading, writing and resampling audio files.

Two decoders, chosen by extension: libsndfile (soundfile) reads wav/flac/ogg (vorbis, opus)/
mp3/aiff/caf/w64, and PyAV (FFmpeg) reads m4a/aac/mp4/webm/mka/wma/ac3/wv/mp2/amr. A file with
a libsndfile extension that libsndfile cannot open (an mp3 renamed to .wav, AAC inside .caf)
is retried with PyAV. soxr resamples. Every problem with an input file raises
:class:`~musicjudge.errors.AudioError` whose one-line message names the file and the fix, so
batch jobs can record the item and move on."""

from __future__ import annotations

import functools
import logging
import math
import os
import stat
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf
import soxr

from musicjudge.errors import AudioError, ConfigError

log = logging.getLogger(__name__)

# Extensions read by libsndfile (>= 1.1 reads mp3 and ogg/opus).
SNDFILE_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".caf", ".w64",
)
# Extensions read by PyAV (the FFmpeg libraries bundled in the `av` wheel).
PYAV_EXTENSIONS: tuple[str, ...] = (
    ".m4a", ".m4b", ".mp4", ".aac", ".webm", ".weba", ".mka", ".wma", ".ac3", ".wv", ".mp2", ".amr",
)
# Extensions musicjudge treats as audio (folder listings, manifests).
AUDIO_EXTENSIONS: tuple[str, ...] = SNDFILE_EXTENSIONS + PYAV_EXTENSIONS

# Clips whose RMS is below this are treated as silent: nothing a model could judge.
# (-80 dBFS is far below the dither floor of 16-bit audio played at any sane gain.)
SILENCE_RMS_DB = -80.0

# NaN written to integer PCM (libsndfile, numpy casts) comes out as the most negative code,
# i.e. exactly -1.0 when read back. Clipped music reaches -1.0 too, but it ramps into the
# clip and clips on both polarities; a stretch of at least this long at exactly -1.0, jumped
# into or out of (or at the clip's edge), in a channel never held at positive full scale as
# long, is the mark of NaN.
NAN_MARK_RUN_SECONDS = 0.001

# Bump when what the loader accepts or returns changes, so caches of features computed from
# loaded audio (reward embeddings) do not keep vouching for files the loader now rejects.
LOADER_VERSION = 2

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
    ".aifc": "AIFF",
    ".caf": "CAF",
    ".w64": "W64",
}


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    num_samples: int
    channels: int
    decoder: str = "libsndfile"  # "libsndfile" or "pyav"

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def _supported_list() -> str:
    return ", ".join(e.lstrip(".") for e in AUDIO_EXTENSIONS)


def _one_line(e: BaseException) -> str:
    """The reason in a decoder's exception, without the path and errno they repeat."""
    text = getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e)
    text = str(text).strip().rstrip(".")
    return text.splitlines()[0] if text else type(e).__name__


def check_audio_path(path: str | os.PathLike) -> None:
    """Raise the AudioError that loading ``path`` would give for a problem of the path itself
    (missing, dangling link, permission denied, folder, unsupported extension, empty file),
    without decoding anything; for callers that touch the file before loading it."""
    _check_path(Path(path))


def _check_path(path: Path) -> None:
    """Everything that can be said about ``path`` before a decoder looks at it."""
    if path.is_symlink() and not path.exists():
        raise AudioError(f"{path}: dangling symbolic link -> {os.readlink(path)}; "
                         "restore the target or remove the link")
    if not path.exists():
        raise AudioError(f"{path}: file not found; check the path")
    if path.is_dir():
        try:
            with os.scandir(path):
                pass
        except PermissionError:
            raise AudioError(f"{path}: permission denied on this folder, its audio files cannot be listed; "
                             "fix permissions (chmod a+rx)") from None
        raise AudioError(f"{path}: is a folder, not an audio file; pass a file (or use list_audio_files)")
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioError(f"{path}: unsupported extension {path.suffix!r}; convert it to one of {_supported_list()} "
                         f"(e.g. ffmpeg -i '{path.name}' '{path.stem}.flac')")
    if not stat.S_ISREG(path.stat().st_mode):  # before open(): opening a named pipe blocks
        raise AudioError(f"{path}: not a regular file (a pipe or device?); copy the audio to a file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise AudioError(f"{path}: permission denied, the file cannot be read; fix permissions (chmod a+r)") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot open ({_one_line(e)}); check the file") from None
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-export or remove it")


def _riff_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, compare the data size its header declares with what the file
    holds. libsndfile quietly reads a truncated wav as a shorter one; a cut-off copy or
    download must not pass as a clip of a different length."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            block_align = None
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, clen = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if cid == b"fmt ":
                    body = fh.read(min(clen, 16))
                    if len(body) >= 14:
                        block_align = int.from_bytes(body[12:14], "little")
                    fh.seek(clen - len(body) + (clen & 1), os.SEEK_CUR)
                elif cid == b"data":
                    # 0 and 0xFFFFFFFF are placeholders of streaming writers, not sizes
                    if clen in (0, 0xFFFFFFFF) or not block_align:
                        return None
                    held = size - fh.tell()
                    if clen > held:
                        return (f"header declares {clen // block_align} samples but the file holds only "
                                f"{held // block_align}")
                    return None
                else:
                    fh.seek(clen + (clen & 1), os.SEEK_CUR)
    except OSError:
        return None


class _SndfileSource:
    """An open libsndfile decoder."""

    decoder = "libsndfile"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.f = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise _DecoderFailed(_one_line(e)) from None
        self.sample_rate = int(self.f.samplerate)
        self.channels = int(self.f.channels)
        self.frames = int(self.f.frames)
        subtype = str(self.f.subtype)
        self.float_samples = subtype in ("FLOAT", "DOUBLE")
        self.integer_pcm = subtype.startswith("PCM_")
        if self.f.format in ("WAV", "WAVEX"):
            cut = _riff_truncation(path)
            if cut:
                self.close()
                raise AudioError(f"{path}: truncated ({cut}); the copy or export was cut off, re-export or re-copy it")

    def read(self, start: int, count: int) -> np.ndarray:
        try:
            if start:
                self.f.seek(start)
            return self.f.read(count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{self.path}: decoding failed mid-file ({_one_line(e)}); "
                             "the file is truncated or corrupt") from None

    def blocks(self, start: int, stop: int, block: int = 1 << 18):
        """Decode [start, stop) in blocks (bounded memory)."""
        self.f.seek(start)
        pos = start
        while pos < stop:
            data = self.read(0, min(block, stop - pos))  # read(0, ...) continues where the last read ended
            if data.shape[0] == 0:
                return
            yield data
            pos += data.shape[0]

    def close(self) -> None:
        self.f.close()


class _DecoderFailed(Exception):
    """A decoder could not open a file (the reason is the message); the caller decides the error."""


def _pyav():
    try:
        import av
    except ImportError:
        return None
    return av


def _frame_samples(frame) -> np.ndarray:
    """[samples, channels] float32 of one decoded PyAV frame, whatever its sample format."""
    fmt = frame.format.name
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels)
    else:
        arr = arr.T
    base = fmt.rstrip("p")
    if base in ("flt", "dbl"):
        return arr.astype(np.float32, copy=False)
    if base == "u8":
        return (arr.astype(np.float32) - 128.0) / 128.0
    bits = {"s16": 16, "s32": 32, "s64": 64}.get(base)
    if bits is None:
        raise AudioError(f"unsupported decoded sample format {fmt!r}")
    return (arr.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32)


@functools.lru_cache(maxsize=4096)
def _pyav_probe(path_str: str, size: int, mtime_ns: int) -> tuple[int, int, int, int | None, str]:
    """(sample_rate, channels, total samples, pts of the first decoded frame in samples, codec)
    of a file PyAV reads; cached per file version, since counting may need a full decode."""
    av = _pyav()
    with av.open(path_str) as container:
        if not container.streams.audio:
            raise _DecoderFailed("no audio stream in this file (a video-only or data file?)")
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        first = None
        for frame in container.decode(stream):
            if frame.samples:
                first = frame
                break
        if first is None:
            raise _DecoderFailed("the audio stream holds no decodable samples")
        sr = int(first.sample_rate)
        channels = int(first.layout.nb_channels)
        tb = first.time_base or stream.time_base
        origin = None if first.pts is None or tb is None else round(first.pts * tb * sr)
        fmt = container.format.name
        # MP4/MOV declare the exact length (edit list: priming and padding excluded) in a
        # sample-accurate time base; the decoder itself still emits the last frame's padding.
        if ("mp4" in fmt or "mov" in fmt) and stream.duration and _sample_accurate(stream.time_base, sr):
            total = round(stream.duration * stream.time_base * sr)
        else:  # other containers: timestamps are too coarse (ms) or absent (ADTS), so count
            total = first.samples
            for frame in container.decode(stream):
                total += frame.samples
    return sr, channels, int(total), origin, codec


def _sample_accurate(tb: Fraction | None, sr: int) -> bool:
    return tb is not None and tb > 0 and (1 / tb) % sr == 0


class _PyAVSource:
    """An FFmpeg decoder via PyAV, with the same window semantics as libsndfile: sample
    positions count from the first decoded sample; seeking is used where the container's
    timestamps are sample-accurate, else the stream is decoded from the start up to the end of
    the window (never the whole file for a window, never more than the window in memory)."""

    decoder = "pyav"
    preroll_seconds = 0.25  # decoded and dropped before a window after a seek (MDCT overlap, opus preroll)

    def __init__(self, path: Path) -> None:
        av = _pyav()
        if av is None:
            raise _DecoderFailed("PyAV is not installed (pip install av==18.1.0)")
        self.av = av
        self.path = path
        st = path.stat()
        try:
            probed = _pyav_probe(str(path), st.st_size, st.st_mtime_ns)
        except av.FFmpegError as e:
            raise _DecoderFailed(_one_line(e)) from None
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise _DecoderFailed(_one_line(e)) from None
        self.sample_rate, self.channels, self.frames, self.origin, codec = probed
        self.codec = codec
        self.float_samples = codec.startswith("pcm_f")
        self.integer_pcm = codec.startswith(("pcm_s", "pcm_u")) or codec in ("flac", "alac", "wavpack", "tta")

    def read(self, start: int, count: int) -> np.ndarray:
        try:
            data = None
            if start > 0 and self.origin is not None:
                data = self._read_seeking(start, count)
            if data is None:
                data = self._read_linear(start, count)
        except self.av.FFmpegError as e:
            raise AudioError(f"{self.path}: decoding failed mid-file ({_one_line(e)}); "
                             "the file is truncated or corrupt") from None
        return data

    def _collect(self, frames, start: int, count: int, position) -> np.ndarray | None:
        """Copy [start, start+count) out of decoded frames; ``position(frame, end_of_last)``
        gives a frame's first sample (None: give up)."""
        out = np.empty((count, self.channels), dtype=np.float32)
        filled = 0
        end = start + count
        last_end = None
        for frame in frames:
            if not frame.samples:
                continue
            pos = position(frame, last_end)
            if pos is None:
                return None
            if last_end is not None and pos != last_end:  # gap or overlap: timestamps not trustworthy
                return None
            last_end = pos + frame.samples
            if last_end <= start + filled:
                continue
            samples = _frame_samples(frame)
            if samples.shape[1] != self.channels:
                raise AudioError(f"{self.path}: channel count changes mid-stream ({self.channels} -> "
                                 f"{samples.shape[1]}); convert it with ffmpeg -ac {self.channels}")
            lo = start + filled - pos
            take = min(samples.shape[0] - lo, count - filled)
            if lo < 0:
                return None  # the seek landed after the window start
            out[filled:filled + take] = samples[lo:lo + take]
            filled += take
            if pos + frame.samples >= end:
                break
        return out[:filled]

    def _read_linear(self, start: int, count: int) -> np.ndarray:
        with self.av.open(str(self.path)) as container:
            stream = container.streams.audio[0]
            def position(frame, last_end):
                return 0 if last_end is None else last_end
            return self._collect(container.decode(stream), start, count, position)

    def _read_seeking(self, start: int, count: int) -> np.ndarray | None:
        with self.av.open(str(self.path)) as container:
            stream = container.streams.audio[0]
            tb = stream.time_base
            if not _sample_accurate(tb, self.sample_rate):
                return None
            target = start - int(self.preroll_seconds * self.sample_rate)
            if target <= 0:
                return None
            container.seek(int((target + self.origin) / self.sample_rate / tb), stream=stream, backward=True)
            def position(frame, last_end):
                ftb = frame.time_base or tb
                if frame.pts is None or not _sample_accurate(ftb, self.sample_rate):
                    return None
                return round(frame.pts * ftb * self.sample_rate) - self.origin
            return self._collect(container.decode(stream), start, count, position)

    def blocks(self, start: int, stop: int):
        """Decoded samples of [start, stop) frame by frame, in one pass from the file's start."""
        try:
            with self.av.open(str(self.path)) as container:
                pos = 0
                for frame in container.decode(container.streams.audio[0]):
                    if pos >= stop:
                        return
                    n = frame.samples
                    if pos + n > start:
                        samples = _frame_samples(frame)
                        yield samples[max(start - pos, 0):min(stop - pos, n)]
                    pos += n
        except self.av.FFmpegError as e:
            raise AudioError(f"{self.path}: decoding failed mid-file ({_one_line(e)}); "
                             "the file is truncated or corrupt") from None

    def close(self) -> None:
        pass


def _open(path: Path):
    """An open decoder for ``path``: libsndfile for its extensions (PyAV when libsndfile cannot
    open the file), PyAV for the FFmpeg extensions."""
    _check_path(path)
    ext = path.suffix.lower()
    if ext in SNDFILE_EXTENSIONS:
        try:
            return _SndfileSource(path)
        except _DecoderFailed as e:
            sndfile_reason = str(e)
        if _pyav() is not None:
            try:
                source = _PyAVSource(path)
            except _DecoderFailed as e:
                raise AudioError(f"{path}: cannot decode audio (libsndfile: {sndfile_reason}; FFmpeg: {e}); "
                                 f"the file is corrupt or not really {path.suffix}") from None
            log.info("%s: libsndfile cannot open it (%s); decoded with PyAV", path, sndfile_reason)
            return source
        raise AudioError(f"{path}: cannot decode audio ({sndfile_reason}); the file is corrupt or not really "
                         f"{path.suffix}")
    if _pyav() is None:
        raise AudioError(f"{path}: reading {ext} needs PyAV, which is not installed; pip install av==18.1.0, "
                         f"or convert it (ffmpeg -i '{path.name}' '{path.stem}.flac')")
    try:
        return _PyAVSource(path)
    except _DecoderFailed as e:
        raise AudioError(f"{path}: cannot decode {ext} audio ({e}); the file is corrupt, or convert it "
                         f"with ffmpeg -i '{path.name}' '{path.stem}.flac'") from None


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, length and channel count; libsndfile reads them from the header, PyAV
    from the container (MP4) or by counting decoded samples (cached per file version)."""
    path = Path(path)
    source = _open(path)
    try:
        return AudioInfo(str(path), source.sample_rate, source.frames, source.channels, source.decoder)
    finally:
        source.close()


def _nan_mark_runs(data: np.ndarray, sr: int, *, starts_file: bool = True, ends_file: bool = True) -> int:
    """Samples of ``data`` ([samples, channels]) that carry the NaN mark (see NAN_MARK_RUN_SECONDS).
    A run touching an edge of ``data`` counts as jumped into only where that edge is the file's."""
    min_run = max(16, int(round(NAN_MARK_RUN_SECONDS * sr)))
    if data.shape[0] < min_run or float(data.min()) > -1.0:
        return 0

    def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
        starts, stops = edges[::2], edges[1::2]
        keep = stops - starts >= min_run
        return starts[keep], stops[keep]

    n = data.shape[0]
    marked = 0
    for c in range(data.shape[1]):
        x = data[:, c]
        starts, stops = runs(x == -1.0)
        if not starts.size or runs(x >= 0.99)[0].size:
            continue
        for lo, hi in zip(starts.tolist(), stops.tolist()):
            jumped_in = (x[lo - 1] > -0.5) if lo > 0 else starts_file
            jumped_out = (x[hi] > -0.5) if hi < n else ends_file
            if jumped_in or jumped_out:
                marked += hi - lo
    return marked


def _scan_outside_window(path: Path, source, start: int, count: int) -> None:
    """NaN/Inf (float files) or the NaN mark (integer PCM) in the parts of the file before and
    after the window, decoded in blocks (bounded memory)."""
    sr, total = source.sample_rate, source.frames
    overlap = max(16, int(round(NAN_MARK_RUN_SECONDS * sr))) + 1  # a run split by a block edge is still seen
    nonfinite = marked = 0
    for lo, hi in ((0, start), (start + count, total)):
        pos = lo
        tail = None
        for block in source.blocks(lo, hi):
            if source.float_samples:
                nonfinite += int((~np.isfinite(block)).sum())
            else:
                joined = block if tail is None else np.concatenate([tail, block])
                first = pos - (0 if tail is None else tail.shape[0])
                marked += _nan_mark_runs(joined, sr, starts_file=first == 0, ends_file=pos + block.shape[0] == total)
                tail = joined[-overlap:]
            pos += block.shape[0]
    if nonfinite:
        raise AudioError(f"{path}: {nonfinite} samples outside the requested window are NaN or Inf; "
                         "regenerate the file (the producer is broken)")
    if marked:
        raise AudioError(f"{path}: outside the requested window, {marked} samples jump to exactly -1.0 (negative "
                         f"full scale) and stay there for {NAN_MARK_RUN_SECONDS * 1000:g} ms or more, the mark NaN "
                         "leaves when written to integer PCM; regenerate the file (the producer is broken)")


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
    ``offset``/``duration`` crop in seconds (the decoder seeks; the rest of the file is not
    decoded, except that float files are scanned for NaN/Inf outside the window too); asking
    for more than the file holds is an error (a window that silently comes back short would
    skew every per-frame statistic). ``min_duration`` rejects clips (after cropping) shorter
    than that many seconds. Resamples with soxr when ``sample_rate`` differs from the file's
    rate. NaN/Inf samples (and their mark in integer PCM), silence, a constant signal and
    channels that cancel in the mono mix are AudioErrors."""
    path = Path(path)
    if offset < 0 or not math.isfinite(offset):
        raise ConfigError(f"offset={offset!r}: must be a finite number of seconds >= 0")
    if duration is not None and (duration <= 0 or not math.isfinite(duration)):
        raise ConfigError(f"duration={duration!r}: must be a positive number of seconds (or None for the rest)")
    if sample_rate is not None and int(sample_rate) <= 0:
        raise ConfigError(f"sample_rate={sample_rate!r}: must be a positive number of Hz (or None for the file's rate)")
    source = _open(path)
    try:
        sr_file = source.sample_rate
        total = source.frames
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
        data = source.read(start, count)
        if data.shape[0] == 0:
            raise AudioError(f"{path}: contains no samples; re-export or remove it")
        if data.shape[0] < count:  # some decoders report more frames than they deliver
            raise AudioError(
                f"{path}: decoded only {data.shape[0]} of {count} expected samples; the file is truncated, re-export it"
            )
        if not np.isfinite(data).all():
            bad = int((~np.isfinite(data)).sum())
            raise AudioError(f"{path}: {bad} samples are NaN or Inf; regenerate the file (the producer is broken)")
        if source.integer_pcm:
            marked = _nan_mark_runs(data, sr_file, starts_file=start == 0, ends_file=start + count == total)
            if marked:
                raise AudioError(
                    f"{path}: {marked} samples jump to exactly -1.0 (negative full scale) and stay there for "
                    f"{NAN_MARK_RUN_SECONDS * 1000:g} ms or more, the mark NaN leaves when written to integer "
                    "PCM; regenerate the file (the producer is broken), or save it as float (subtype FLOAT)"
                )
        if (source.float_samples or source.integer_pcm) and (start > 0 or start + count < total):
            # a broken producer is not fine because the window happens to miss its NaNs
            _scan_outside_window(path, source, start, count)
    finally:
        source.close()
    wave = data.mean(axis=1) if mono else np.ascontiguousarray(data.T)
    wave = wave.astype(np.float32, copy=False)
    got = wave.shape[-1] / sr_file
    if min_duration is not None and got + 1e-9 < min_duration:
        length = f"{got:.2f} s" if got >= 0.01 else f"{wave.shape[-1]} sample(s), {got * 1000:.2f} ms"
        raise AudioError(
            f"{path}: clip is {length}, shorter than the required {min_duration:g} s; use a longer clip"
        )
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms <= 10 ** (silence_rms_db / 20):
        if mono and data.shape[1] > 1 and np.sqrt(np.mean(np.square(data, dtype=np.float64))) > 10 ** (silence_rms_db / 20):
            raise AudioError(f"{path}: the channels cancel out when mixed to mono (one is phase-inverted); "
                             "fix the channel polarity or export one channel")
        level = "digital silence" if rms == 0 else f"RMS {20 * math.log10(rms):.1f} dBFS"
        raise AudioError(f"{path}: audio is silent ({level}); remove it or check the export")
    if data.shape[0] > 1 and bool((data == data[0]).all()):
        raise AudioError(f"{path}: the signal is constant (every sample is {float(data[0, 0]):g}, a DC offset "
                         "and no audio); check the export")
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
        raise AudioError(f"{path}: cannot write extension {path.suffix!r}; use one of "
                         f"{', '.join(e.lstrip('.') for e in _WRITE_FORMATS)}")
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
        if subtype is None and ext == ".opus":  # libsndfile's OGG default is Vorbis
            subtype = "OPUS"
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
    macOS ``._x.wav`` resource forks) are skipped.

    Entries that cannot be read are listed, not dropped, so a batch job records them as bad
    items: a dangling symbolic link or an unreadable file with an audio extension, and a
    subfolder that cannot be listed (loading any of them raises an AudioError saying why)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"{folder}: folder not found; check the path")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise AudioError(f"{folder}: permission denied, the folder cannot be listed; fix permissions (chmod a+rx)")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    found: list[Path] = []
    unlistable: list[Path] = []

    def note_unlistable(err: OSError) -> None:
        if err.filename:
            unlistable.append(Path(err.filename))

    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, onerror=note_unlistable, followlinks=True):
        base = Path(dirpath)
        real = os.path.realpath(dirpath)
        if real in visited:  # a symlinked folder loop: each real folder is listed once
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if not recursive:
            dirnames[:] = []
        for name in filenames:
            p = base / name
            if name.startswith(".") or p.suffix.lower() not in exts:
                continue
            if p.is_file() or (p.is_symlink() and not p.exists()):
                found.append(p)
    found += [p for p in unlistable if p != folder]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
