"""musicjudge.audio: audio file I/O (soundfile, PyAV), resampling (soxr) and frame/sample maths."""

from musicjudge.audio.frames import (
    DEFAULT_FRAME_RATE,
    frames_to_samples,
    num_frames,
    samples_per_frame,
    samples_to_frames,
    seconds_to_samples,
    to_samples,
)
from musicjudge.audio.loading import (
    AUDIO_EXTENSIONS,
    LOADER_VERSION,
    PYAV_EXTENSIONS,
    SILENCE_RMS_DB,
    SNDFILE_EXTENSIONS,
    AudioInfo,
    audio_info,
    check_audio_path,
    list_audio_files,
    load_audio,
    load_audio_with_sr,
    resample,
    write_audio,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_FRAME_RATE",
    "LOADER_VERSION",
    "PYAV_EXTENSIONS",
    "SILENCE_RMS_DB",
    "SNDFILE_EXTENSIONS",
    "AudioInfo",
    "audio_info",
    "check_audio_path",
    "frames_to_samples",
    "list_audio_files",
    "load_audio",
    "load_audio_with_sr",
    "num_frames",
    "resample",
    "samples_per_frame",
    "samples_to_frames",
    "seconds_to_samples",
    "to_samples",
    "write_audio",
]
