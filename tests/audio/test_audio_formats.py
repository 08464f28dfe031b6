"""Every audio format musicjudge claims, generated here and decoded: content, length, crops,
rates and channel counts, and the errors for what cannot be read."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest
import soundfile as sf

from musicjudge.audio import (
    AUDIO_EXTENSIONS,
    PYAV_EXTENSIONS,
    SNDFILE_EXTENSIONS,
    audio_info,
    list_audio_files,
    load_audio,
    load_audio_with_sr,
)
from musicjudge.audio import loading
from musicjudge.errors import AudioError

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


def tones(sr: int, seconds: float, channels: int, amp: float = 0.5) -> np.ndarray:
    """[channels, samples]: channel c is a sine of 440 * (c + 1) Hz."""
    t = np.arange(int(round(sr * seconds))) / sr
    return np.stack([amp * np.sin(2 * np.pi * 440 * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def dominant_freq(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spec)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def encode_pyav(path, wave: np.ndarray, sr: int, codec: str, container: str, bit_rate: int | None = None) -> None:
    """Encode ``wave`` ([channels, samples], float in [-1, 1]) with FFmpeg through PyAV."""
    channels = wave.shape[0]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout=LAYOUTS[channels])
        if bit_rate:
            stream.bit_rate = bit_rate
        supported = [f.name for f in av.Codec(codec, "w").audio_formats or []]
        fmt = next(f for f in ("fltp", "flt", "s16p", "s16", "s32p") if f in supported)
        stream.codec_context.format = fmt  # else some encoders (wavpack) default to 8 bits
        step = 1024
        for i in range(0, wave.shape[1], step):
            chunk = wave[:, i:i + step]
            if fmt.startswith("s16"):
                chunk = np.round(chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                chunk = np.round(chunk * (2 ** 31 - 1)).astype(np.int32)
            if not fmt.endswith("p"):  # packed: one row of interleaved samples
                chunk = chunk.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout=LAYOUTS[channels])
            frame.sample_rate = sr
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# extension -> (sample rate, how to write it, length tolerance in samples (codec priming/padding))
SNDFILE_CASES = {
    ".wav": (44100, dict(format="WAV", subtype="PCM_16"), 0),
    ".flac": (48000, dict(format="FLAC", subtype="PCM_24"), 0),
    ".ogg": (44100, dict(format="OGG", subtype="VORBIS"), 0),
    ".oga": (32000, dict(format="OGG", subtype="VORBIS"), 0),
    ".opus": (48000, dict(format="OGG", subtype="OPUS"), 0),
    ".mp3": (44100, dict(format="MP3", subtype="MPEG_LAYER_III"), 2400),
    ".aif": (22050, dict(format="AIFF", subtype="PCM_16"), 0),
    ".aiff": (44100, dict(format="AIFF", subtype="FLOAT"), 0),
    ".aifc": (44100, dict(format="AIFF", subtype="PCM_24"), 0),
    ".caf": (48000, dict(format="CAF", subtype="ALAC_16"), 0),
    ".w64": (96000, dict(format="W64", subtype="PCM_24"), 0),
}
PYAV_CASES = {
    ".m4a": (44100, "aac", "ipod", None, 0),  # MP4 edit list: exact length
    ".m4b": (44100, "aac", "ipod", None, 0),
    ".mp4": (32000, "aac", "mp4", None, 0),
    ".aac": (48000, "aac", "adts", None, 2048),  # raw ADTS keeps the encoder's priming and padding
    ".webm": (48000, "libopus", "webm", None, 0),
    ".weba": (48000, "libopus", "webm", None, 0),
    ".mka": (44100, "flac", "matroska", None, 0),
    ".wma": (44100, "wmav2", "asf", 128000, 2048),
    ".ac3": (48000, "ac3", "ac3", 192000, 1536),
    ".wv": (44100, "wavpack", "wv", None, 0),
    ".mp2": (44100, "mp2", "mp2", 192000, 1152),
    ".amr": (8000, "libopencore_amrnb", "amr", 12200, 160),
}
LOSSLESS = {".wav", ".flac", ".aif", ".aiff", ".aifc", ".caf", ".w64", ".mka", ".wv"}


def test_every_claimed_extension_is_generated_here():
    assert set(SNDFILE_CASES) == set(SNDFILE_EXTENSIONS)
    assert set(PYAV_CASES) == set(PYAV_EXTENSIONS)
    assert set(AUDIO_EXTENSIONS) == set(SNDFILE_EXTENSIONS) | set(PYAV_EXTENSIONS)


def check_decoded(path, sr, channels, written, tolerance, lossless, decoder):
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.decoder) == (sr, channels, decoder)
    stereo, got_sr = load_audio_with_sr(path, mono=False)
    assert got_sr == sr and stereo.dtype == np.float32 and stereo.shape[0] == channels
    assert stereo.shape[1] == info.num_samples  # audio_info's length is what the decoder delivers
    assert abs(info.num_samples - written.shape[1]) <= tolerance
    for c in range(channels):
        core = stereo[c, sr // 4: -sr // 4]
        assert abs(dominant_freq(core, sr) - 440 * (c + 1)) < 3
        assert rms(core) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # level kept by the codec
    if lossless:
        np.testing.assert_allclose(stereo, written, atol=1e-4)
    mono = load_audio(path)
    assert mono.shape == (info.num_samples,)
    np.testing.assert_allclose(mono, stereo.mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("ext", sorted(SNDFILE_CASES))
def test_libsndfile_formats_decode_to_the_written_tones(tmp_path, ext):
    sr, how, tolerance = SNDFILE_CASES[ext]
    written = tones(sr, 2.0, 2)
    path = tmp_path / f"clip{ext}"
    sf.write(path, written.T, sr, **how)
    check_decoded(path, sr, 2, written, tolerance, ext in LOSSLESS, "libsndfile")


@pytest.mark.parametrize("ext", sorted(PYAV_CASES))
def test_pyav_formats_decode_to_the_written_tones(tmp_path, ext):
    sr, codec, container, bit_rate, tolerance = PYAV_CASES[ext]
    channels = 1 if codec == "libopencore_amrnb" else 2  # AMR-NB is 8 kHz mono only
    written = tones(sr, 2.0, channels)
    path = tmp_path / f"clip{ext}"
    encode_pyav(path, written, sr, codec, container, bit_rate)
    if codec == "libopencore_amrnb":  # a speech codec: only pitch and length survive faithfully
        info = audio_info(path)
        assert (info.sample_rate, info.channels, info.decoder) == (8000, 1, "pyav")
        wave = load_audio(path)
        assert abs(len(wave) - written.shape[1]) <= tolerance
        assert abs(dominant_freq(wave[2000:-2000], sr) - 440) < 5 and rms(wave) > 0.05
        return
    check_decoded(path, sr, channels, written, tolerance, ext in LOSSLESS, "pyav")


@pytest.mark.parametrize("ext", [".m4a", ".aac", ".webm", ".mka", ".flac", ".opus"])
def test_crops_are_exact_slices_of_the_whole_decode(tmp_path, ext):
    sr = 48000
    written = tones(sr, 4.0, 2)
    path = tmp_path / f"clip{ext}"
    if ext in PYAV_CASES:
        _, codec, container, bit_rate, _ = PYAV_CASES[ext]
        encode_pyav(path, written, sr, codec, container, bit_rate)
    else:
        sf.write(path, written.T, sr, **SNDFILE_CASES[ext][1])
    whole = load_audio(path, mono=False)
    total = whole.shape[1]
    for offset, duration in ((0.0, 1.0), (1.3, 0.5), (2.75, 1.0), (3.0, None)):
        part = load_audio(path, mono=False, offset=offset, duration=duration)
        start = int(round(offset * sr))
        count = int(round(duration * sr)) if duration else total - start
        assert part.shape == (2, count)
        # lossy decoders restarted after a seek agree to within rounding, aligned to the sample
        np.testing.assert_allclose(part, whole[:, start:start + count], atol=2e-3)
    with pytest.raises(AudioError, match=rf"clip{ext}: clip is .* shorter than the requested window"):
        load_audio(path, offset=3.5, duration=1.0)
    with pytest.raises(AudioError, match="past the end"):
        load_audio(path, offset=10.0)


def test_m4a_crop_seeks_instead_of_decoding_from_the_start(tmp_path, monkeypatch):
    sr = 44100
    path = tmp_path / "long.m4a"
    encode_pyav(path, tones(sr, 30.0, 2, amp=0.3), sr, "aac", "ipod")
    whole = load_audio(path)

    def no_linear(self, start, count):
        raise AssertionError("decoded from the start for a crop of a seekable file")

    monkeypatch.setattr(loading._PyAVSource, "_read_linear", no_linear)
    part = load_audio(path, offset=25.0, duration=2.0)
    assert part.shape == (2 * sr,)
    np.testing.assert_allclose(part, whole[25 * sr:27 * sr], atol=2e-3)


@pytest.mark.parametrize("sr,channels", [(192000, 8), (8000, 1), (44100, 2), (48000, 2)])
def test_any_rate_and_channel_count(tmp_path, sr, channels):
    written = tones(sr, 1.0, channels, amp=0.1)
    path = tmp_path / f"c{channels}_{sr}.wav"
    sf.write(path, written.T, sr, subtype="PCM_24")
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.num_samples) == (sr, channels, sr)
    multi = load_audio(path, mono=False)
    assert multi.shape == (channels, sr)
    wave, got_sr = load_audio_with_sr(path, sample_rate=32000)
    assert got_sr == 32000 and wave.shape == (32000,)
    np.testing.assert_allclose(load_audio(path), written.mean(axis=0), atol=1e-5)
    if channels == 1:
        assert abs(dominant_freq(wave, 32000) - 440) < 2


def test_eight_channels_through_pyav(tmp_path):
    written = tones(48000, 1.0, 8, amp=0.1)
    path = tmp_path / "surround.mka"
    encode_pyav(path, written, 48000, "flac", "matroska")
    assert audio_info(path).channels == 8
    np.testing.assert_allclose(load_audio(path, mono=False), written, atol=1e-4)


def test_file_libsndfile_cannot_open_falls_back_to_pyav(tmp_path):
    sr = 44100
    m4a = tmp_path / "real.m4a"
    encode_pyav(m4a, tones(sr, 1.0, 2), sr, "aac", "ipod")
    misnamed = tmp_path / "exported.wav"  # an AAC file some tool saved with a .wav name
    misnamed.write_bytes(m4a.read_bytes())
    assert audio_info(misnamed).decoder == "pyav"
    np.testing.assert_allclose(load_audio(misnamed), load_audio(m4a), atol=1e-6)


def test_formats_nobody_reads_are_one_line_errors(tmp_path, monkeypatch):
    odd = tmp_path / "take.xyz"
    odd.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioError, match=r"take\.xyz: unsupported extension '\.xyz'; convert it to one of wav, "
                                         r".*m4a.* \(e\.g\. ffmpeg -i 'take\.xyz' 'take\.flac'\)"):
        load_audio(odd)
    garbage = tmp_path / "song.m4a"
    garbage.write_bytes(b"this is not an mp4 file at all" * 20)
    with pytest.raises(AudioError, match=r"song\.m4a: cannot decode \.m4a audio \(.*\); .*ffmpeg -i 'song\.m4a'"):
        load_audio(garbage)
    text_wav = tmp_path / "notes.wav"
    text_wav.write_text("just some text\n" * 40)
    with pytest.raises(AudioError) as err:
        load_audio(text_wav)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{text_wav}: cannot decode audio (libsndfile: ")
    assert "FFmpeg: " in message and "not really .wav" in message
    # without PyAV the FFmpeg formats say how to get it
    good = tmp_path / "ok.m4a"
    encode_pyav(good, tones(44100, 1.0, 1), 44100, "aac", "ipod")
    monkeypatch.setattr(loading, "_pyav", lambda: None)
    with pytest.raises(AudioError, match=r"ok\.m4a: reading \.m4a needs PyAV.*pip install av==18\.1\.0"):
        load_audio(good)


def test_video_file_without_audio_stream(tmp_path):
    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioError, match=r"silent_film\.mp4: cannot decode \.mp4 audio \(no audio stream"):
        load_audio(path)


# --- inputs that must not pass silently -------------------------------------------------------


def music_like(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 331 * t)).astype(np.float32)


def test_nan_written_to_integer_pcm_is_caught(tmp_path):
    sr = 32000
    x = music_like(sr, 4.0)
    x[sr:sr + 100] = np.nan  # 3 ms of NaN from a broken producer, saved the usual way (PCM_16)
    path = tmp_path / "pcm_nan.wav"
    sf.write(path, x, sr)
    assert np.isfinite(sf.read(path)[0]).all()  # the NaN is gone from the file: only its mark is left
    with pytest.raises(AudioError, match=r"pcm_nan\.wav: 100 samples jump to exactly -1\.0 .* mark NaN leaves"):
        load_audio(path)
    # also when the crop window misses it
    with pytest.raises(AudioError, match=r"pcm_nan\.wav: outside the requested window, 100 samples"):
        load_audio(path, offset=2.0, duration=1.0)
    all_nan = tmp_path / "all_nan.flac"
    sf.write(all_nan, np.full(sr, -1.0, np.float32), sr, format="FLAC")
    with pytest.raises(AudioError, match=r"all_nan\.flac: 32000 samples jump to exactly -1\.0"):
        load_audio(all_nan)


def test_clipped_music_and_full_scale_squares_are_not_mistaken_for_nan(tmp_path):
    sr = 44100
    t = np.arange(2 * sr) / sr
    # a bass that clips on its negative peaks only: it ramps into -1.0
    bass = np.clip(1.3 * np.sin(2 * np.pi * 40 * t) - 0.4, -1.0, 1.0).astype(np.float32)
    # a full-scale square: jumps to -1.0, but sits as long at positive full scale
    square = np.where(np.sin(2 * np.pi * 50 * t) >= 0, 1.0, -1.0).astype(np.float32)
    for name, x in (("bass", bass), ("square", square)):
        path = tmp_path / f"{name}.wav"
        sf.write(path, x, sr, subtype="PCM_16")
        assert load_audio(path).shape == (2 * sr,)
        assert load_audio(path, offset=0.5, duration=0.5).shape == (sr // 2,)


def test_float_nan_outside_the_crop_window_is_caught(tmp_path):
    sr = 16000
    x = music_like(sr, 6.0)
    x[5 * sr + 7] = np.nan
    path = tmp_path / "late_nan.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"late_nan\.wav: 1 samples outside the requested window are NaN"):
        load_audio(path, duration=2.0)
    with pytest.raises(AudioError, match=r"late_nan\.wav: 1 samples are NaN or Inf"):
        load_audio(path, offset=4.0)


def test_truncated_wav_and_constant_signal(tmp_path):
    sr = 16000
    full = tmp_path / "full.wav"
    sf.write(full, music_like(sr, 2.0), sr)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated \(header declares 32000 samples but the file holds "
                                         r"only 159\d\d\); .*re-copy"):
        load_audio(cut)
    # a streaming writer's placeholder size is not a truncation
    streamed = bytearray(data)
    at = streamed.index(b"data") + 4
    streamed[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert load_audio(tmp_path / "streamed.wav").shape == (2 * sr,)
    dc = tmp_path / "dc.wav"
    sf.write(dc, np.full(sr, 0.25, np.float32), sr, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"dc\.wav: the signal is constant \(every sample is 0\.25"):
        load_audio(dc)


def test_unreadable_folder_entries_are_listed_and_named(tmp_path, monkeypatch):
    sr = 16000
    sf.write(tmp_path / "good.wav", music_like(sr, 1.0), sr)
    (tmp_path / "gone.wav").symlink_to(tmp_path / "deleted" / "take1.wav")
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "inner.flac", music_like(sr, 1.0), sr)
    (tmp_path / "locked").mkdir()
    sf.write(tmp_path / "locked" / "hidden_by_perms.wav", music_like(sr, 1.0), sr)
    (tmp_path / "ok_link.wav").symlink_to(tmp_path / "good.wav")

    real_scandir = os.scandir

    def scandir(path="."):  # what os.walk meets in a chmod 000 folder (root reads through chmod)
        if os.fspath(path) == str(tmp_path / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listed = [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)]
    assert listed == ["gone.wav", "good.wav", "locked", "ok_link.wav", "sub/inner.flac"]
    with pytest.raises(AudioError, match=r"locked: permission denied on this folder, its audio files cannot be listed"):
        load_audio(tmp_path / "locked")
    with pytest.raises(AudioError, match=rf"gone\.wav: dangling symbolic link -> {tmp_path}/deleted/take1\.wav; "
                                         "restore the target or remove the link"):
        load_audio(tmp_path / "gone.wav")
    assert load_audio(tmp_path / "ok_link.wav").shape == (sr,)


def test_permission_denied_file_simulated(tmp_path, monkeypatch):
    """Tests run as root, which reads through chmod 000: the open() of the file is made to fail
    the way it does for other users."""
    sr = 16000
    path = tmp_path / "locked.wav"
    sf.write(path, music_like(sr, 1.0), sr)
    real_open = open

    def denying_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(loading, "open", denying_open, raising=False)
    with pytest.raises(AudioError, match=r"locked\.wav: permission denied, the file cannot be read; fix permissions"):
        load_audio(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files through chmod 000; covered by the simulated test")
def test_permission_denied_file_real(tmp_path):
    sr = 16000
    path = tmp_path / "locked.wav"
    sf.write(path, music_like(sr, 1.0), sr)
    path.chmod(0)
    try:
        assert [p.name for p in list_audio_files(tmp_path)] == ["locked.wav"]
        with pytest.raises(AudioError, match=r"locked\.wav: permission denied"):
            load_audio(path)
    finally:
        path.chmod(0o644)


def test_write_audio_opus_is_opus_and_new_containers_round_trip(tmp_path):
    from musicjudge.audio import write_audio

    wave = tones(48000, 1.0, 2, amp=0.3)
    write_audio(tmp_path / "x.opus", wave, 48000)
    assert sf.info(str(tmp_path / "x.opus")).subtype == "OPUS"  # not Vorbis under an .opus name
    assert abs(dominant_freq(load_audio(tmp_path / "x.opus", mono=False)[0, 4800:-4800], 48000) - 440) < 3
    for ext in (".aifc", ".caf", ".w64"):
        write_audio(tmp_path / f"x{ext}", wave, 48000, subtype="PCM_24")
        np.testing.assert_allclose(load_audio(tmp_path / f"x{ext}", mono=False), wave, atol=1e-5)
    with pytest.raises(AudioError, match=r"x\.m4a: cannot write extension '\.m4a'; use one of wav, flac"):
        write_audio(tmp_path / "x.m4a", wave, 48000)


def test_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match=r"stream\.wav: not a regular file"):
        load_audio(fifo)
