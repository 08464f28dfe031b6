import numpy as np
import pytest
import soundfile as sf

from musicjudge.audio import (
    audio_info,
    frames_to_samples,
    list_audio_files,
    load_audio,
    load_audio_with_sr,
    num_frames,
    resample,
    samples_per_frame,
    samples_to_frames,
    to_samples,
    write_audio,
)
from musicjudge.errors import AudioError, ConfigError


def sine(freq, sr, seconds, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(wave, sr):
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spec)]


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_roundtrip_formats_mono_downmix(tmp_path, ext):
    sr = 32000 if ext != ".mp3" else 44100
    left, right = sine(440, sr, 1.0, 0.6), sine(440, sr, 1.0, 0.2)
    path = tmp_path / f"clip{ext}"
    peak = write_audio(path, np.stack([left, right]), sr)
    assert peak == pytest.approx(0.6, abs=1e-4)
    wave, got_sr = load_audio_with_sr(path)
    assert got_sr == sr and wave.dtype == np.float32 and wave.ndim == 1
    # mp3 adds encoder padding; lossless formats keep the exact length
    if ext in (".wav", ".flac"):
        assert len(wave) == sr
        np.testing.assert_allclose(wave, (left + right) / 2, atol=2e-4)
    assert abs(dominant_freq(wave, sr) - 440) < 2
    stereo = load_audio(path, mono=False)
    assert stereo.shape[0] == 2


def test_resample_preserves_length_and_frequency(tmp_path):
    path = tmp_path / "a.wav"
    write_audio(path, sine(1000, 44100, 2.0), 44100)
    wave, sr = load_audio_with_sr(path, sample_rate=32000)
    assert sr == 32000 and len(wave) == 64000
    assert abs(dominant_freq(wave, sr) - 1000) < 1.0
    up = resample(wave, 32000, 48000)
    assert len(up) == 96000 and abs(dominant_freq(up, 48000) - 1000) < 1.0
    stereo = resample(np.stack([wave, wave]), 32000, 16000)
    assert stereo.shape == (2, 32000)
    with pytest.raises(ConfigError):
        resample(wave, 0, 16000)


def test_crop_exact_samples_and_window_errors(tmp_path):
    sr = 16000
    ramp = np.linspace(-0.5, 0.5, 3 * sr, dtype=np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, ramp, sr, subtype="FLOAT")
    part = load_audio(path, offset=1.0, duration=0.5)
    assert len(part) == 8000
    np.testing.assert_array_equal(part, ramp[16000:24000])
    assert len(load_audio(path, offset=2.5)) == 8000
    with pytest.raises(AudioError, match=r"ramp\.wav.*shorter than the requested window"):
        load_audio(path, offset=2.0, duration=2.0)
    with pytest.raises(AudioError, match=r"ramp\.wav.*past the end"):
        load_audio(path, offset=5.0)
    with pytest.raises(AudioError, match=r"ramp\.wav.*shorter than the required 10 s"):
        load_audio(path, min_duration=10)
    assert audio_info(path).duration == pytest.approx(3.0)


def test_bad_inputs_raise_audio_error_naming_file(tmp_path):
    sr = 16000
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(missing)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: file is empty"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 50)
    with pytest.raises(AudioError, match="corrupt.flac: cannot decode"):
        load_audio(corrupt)
    wrong = tmp_path / "notes.txt"
    wrong.write_text("hello")
    with pytest.raises(AudioError, match="notes.txt: unsupported extension"):
        load_audio(wrong)
    header_only = tmp_path / "header_only.wav"
    sf.write(header_only, np.zeros(0, dtype=np.float32), sr)
    with pytest.raises(AudioError, match="header_only.wav: contains no samples"):
        load_audio(header_only)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(sr, dtype=np.float32), sr)
    with pytest.raises(AudioError, match="silent.wav: audio is silent"):
        load_audio(silent)
    for bad_value in (np.nan, np.inf):
        bad = tmp_path / "nonfinite.wav"
        x = sine(220, sr, 1.0)
        x[100] = bad_value
        sf.write(bad, x, sr, subtype="FLOAT")
        with pytest.raises(AudioError, match="nonfinite.wav: 1 samples are NaN or Inf"):
            load_audio(bad)
    # every message is one line
    try:
        load_audio(corrupt)
    except AudioError as e:
        assert "\n" not in str(e)


def test_write_never_clips_silently(tmp_path):
    sr = 16000
    loud = sine(300, sr, 0.5, amp=1.5)
    path = tmp_path / "loud.wav"
    peak = write_audio(path, loud, sr)
    assert peak == pytest.approx(1.5, abs=1e-3)
    back = load_audio(path)
    assert np.max(np.abs(back)) == pytest.approx(0.99, abs=1e-3)
    # waveform shape is kept (scaled, not clipped)
    np.testing.assert_allclose(back, loud * (0.99 / peak), atol=1e-3)
    with pytest.raises(AudioError, match="loud2.wav: peak 1.500 exceeds full scale"):
        write_audio(tmp_path / "loud2.wav", loud, sr, on_clip="raise")
    assert not (tmp_path / "loud2.wav").exists()
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "nan.wav", np.full(10, np.nan, dtype=np.float32), sr)
    with pytest.raises(AudioError, match="cannot write extension"):
        write_audio(tmp_path / "x.xyz", loud, sr)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_list_audio_files_sorted_filtered(tmp_path):
    for rel in ["b/z.wav", "a.flac", "b/a.WAV", "c.mp3", ".hidden.wav", "b/._x.wav", "notes.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    rels = [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)]
    assert rels == ["a.flac", "b/a.WAV", "b/z.wav", "c.mp3"]
    assert [p.name for p in list_audio_files(tmp_path, ["wav"], recursive=False)] == []
    assert [p.name for p in list_audio_files(tmp_path / "b", [".wav"])] == ["a.WAV", "z.wav"]
    with pytest.raises(AudioError, match="folder not found"):
        list_audio_files(tmp_path / "nope")


def test_frame_sample_conversions():
    assert frames_to_samples(250, 32000, 50) == 160000
    assert samples_per_frame(32000, 50) == 640
    assert samples_per_frame(44100, 44100 / 512) == 512
    assert samples_to_frames(160000, 32000) == 250
    assert num_frames(32000 * 15 + 639, 32000) == 750
    assert to_samples(5.0, "s", 32000) == to_samples(250, "frames", 32000) == 160000
    with pytest.raises(ConfigError, match="not whole"):
        samples_per_frame(32000, 75)
    with pytest.raises(ConfigError):
        to_samples(1, "beats", 32000)


def test_out_of_phase_stereo_and_bad_rate_are_named_not_called_silent(tmp_path):
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
    path = tmp_path / "phase.wav"
    sf.write(path, np.stack([tone, -tone], 1), sr)
    with pytest.raises(AudioError, match=r"phase\.wav: the channels cancel out when mixed to mono"):
        load_audio(path)
    assert load_audio(path, mono=False).shape == (2, sr)  # the channels themselves are fine
    ok = tmp_path / "ok.wav"
    sf.write(ok, tone, sr)
    for rate in (0, -16000):
        with pytest.raises(ConfigError, match=f"sample_rate={rate}: must be a positive"):
            load_audio(ok, sample_rate=rate)
