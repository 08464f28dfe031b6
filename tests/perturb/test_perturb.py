import json

import numpy as np
import pytest
from scipy.signal import welch

from musicjudge.audio import load_audio, write_audio
from musicjudge.errors import AudioError, ConfigError
from musicjudge.perturb import (
    NOISE_COLOURS,
    NoiseSpec,
    ShuffleSpec,
    affected_span,
    build_grid,
    coloured_noise,
    perturbation_from_dict,
)

SR = 32000
HOP = 640  # samples per frame at 32 kHz / 50 fps


@pytest.fixture(scope="module")
def music():
    """8 s of a decaying harmonic tone sequence: non-stationary, non-silent, like real music."""
    rng = np.random.default_rng(7)
    t = np.arange(8 * SR) / SR
    notes = rng.choice([220.0, 247.0, 262.0, 294.0, 330.0], size=16)
    f0 = np.repeat(notes, len(t) // 16)
    env = np.tile(np.exp(-3 * np.linspace(0, 0.5, len(t) // 16)), 16)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in (1, 2, 3)) * env * 0.3
    return wave.astype(np.float32)


def rms_db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("colour", list(NOISE_COLOURS))
def test_power_law_slope(colour):
    noise = coloured_noise(4 * SR, colour, np.random.default_rng(0))
    f, p = welch(noise, fs=SR, nperseg=4096)
    band = (f >= 50) & (f <= 12000)
    slope = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
    assert abs(slope - NOISE_COLOURS[colour]) <= 0.15, (colour, slope)


@pytest.mark.parametrize("level_ref,level_db", [("dbfs", -30.0), ("dbfs", -12.0), ("snr_span", 10.0), ("snr_clip", 0.0)])
@pytest.mark.parametrize("mode", ["replace", "add"])
def test_injected_noise_level(music, mode, level_ref, level_db):
    spec = NoiseSpec(colour="pink", mode=mode, onset=250, length=100, unit="frames", level_db=level_db, level_ref=level_ref)
    out, info = spec.apply_with_info(music, SR, seed=3)
    s, e = 250 * HOP, 350 * HOP
    injected = out[s:e] if mode == "replace" else out[s:e] - music[s:e]
    if level_ref == "dbfs":
        target = level_db
    elif level_ref == "snr_span":
        target = rms_db(music[s:e]) - level_db
    else:
        target = rms_db(music) - level_db
    assert abs(rms_db(injected) - target) < 0.1
    assert abs(info["noise_rms_db"] - target) < 0.1
    np.testing.assert_array_equal(out[:s], music[:s])
    np.testing.assert_array_equal(out[e:], music[e:])


def test_onsets_lengths_exact_samples(music):
    cases = [
        (NoiseSpec(onset=250, length=5, unit="frames"), 160000, 163200),
        (NoiseSpec(onset=5.0, length=0.1, unit="s"), 160000, 163200),
        (NoiseSpec(onset=100, length=3, unit="frames", frame_rate=25), 128000, 131840),
        (NoiseSpec(onset=1.23456, length=0.01, unit="s"), 39506, 39826),
    ]
    for spec, start, end in cases:
        out = spec.apply(music, SR, seed=0)
        assert out.shape == music.shape and out.dtype == np.float32
        changed = np.flatnonzero(out != music)
        assert changed.min() >= start and changed.max() == end - 1
        assert affected_span(spec, SR, len(music)) == (start, end)
    silent = NoiseSpec(mode="silence", onset=1.0, length=0.5).apply(music, SR)
    assert np.all(silent[SR : SR + SR // 2] == 0) and silent[SR - 1] == music[SR - 1]


def test_span_past_end_names_clip(music):
    spec = NoiseSpec(onset=7.5, length=1.0)
    with pytest.raises(AudioError, match=r"^song42\.wav: perturbation noise_white.* ends at 8\.500 s but the clip is 8\.000 s"):
        spec.apply(music, SR, clip="song42.wav")
    with pytest.raises(AudioError, match="song42.wav"):
        ShuffleSpec(block=200, onset=5.0).apply(music, SR, clip="song42.wav")
    with pytest.raises(AudioError, match="silent"):
        NoiseSpec(level_ref="snr_span", level_db=10, onset=1, length=1).apply(np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(AudioError, match="NaN"):
        NoiseSpec(onset=0, length=0.1).apply(np.full(SR, np.nan, np.float32), SR)


def test_determinism_from_seed(music):
    for spec in (NoiseSpec(colour="brown", onset=2, length=1), ShuffleSpec(kind="permute", block=5, onset=1.0)):
        a, b, c = spec.apply(music, SR, seed=11), spec.apply(music, SR, seed=11), spec.apply(music, SR, seed=12)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    # different specs draw independent noise from the same seed
    w1 = NoiseSpec(onset=2, length=1, level_db=-20).apply(music, SR, seed=1)
    w2 = NoiseSpec(onset=2, length=1, level_db=-30).apply(music, SR, seed=1)
    assert abs(np.corrcoef(w1[2 * SR : 3 * SR], w2[2 * SR : 3 * SR])[0, 1]) < 0.05


def _blocks(wave, start, size, n):
    return [wave[start + i * size : start + (i + 1) * size].tobytes() for i in range(n)]


@pytest.mark.parametrize(
    "spec",
    [
        ShuffleSpec(kind="swap_adjacent", block=10, onset=250, unit="frames"),
        ShuffleSpec(kind="swap_random", block=5, onset=2.0, range_end=6.0, pairs=3),
        ShuffleSpec(kind="swap_random", block=35, onset=1.0, pairs=None),
        ShuffleSpec(kind="permute", block=2, onset=100, range_end=300, unit="frames"),
    ],
    ids=lambda s: s.key,
)
def test_shuffles_frame_aligned_and_preserve_frames(music, spec):
    out, info = spec.apply_with_info(music, SR, seed=5)
    start, end = info["start"], info["end"]
    size = spec.block * HOP
    assert (start, end) == affected_span(spec, SR, len(music))
    assert (end - start) % size == 0
    n = (end - start) // size
    before, after = _blocks(music, start, size, n), _blocks(out, start, size, n)
    assert sorted(before) == sorted(after)  # multiset of blocks (hence frames) preserved
    assert before != after
    # every output block is exactly one input block: boundaries on the frame grid from the onset
    assert all(b in set(before) for b in after)
    np.testing.assert_array_equal(out[:start], music[:start])
    np.testing.assert_array_equal(out[end:], music[end:])
    if spec.kind == "swap_random" and spec.pairs:
        assert sum(a != b for a, b in zip(before, after)) == 2 * spec.pairs
    if spec.kind == "swap_adjacent":
        assert after == [before[1], before[0]]


def test_spec_json_roundtrip_and_keys():
    specs = build_grid(
        colours=["white", "pink"], levels=[-20, 10], onsets=[5.0, 7.5], lengths=[0.1, 1],
        modes=["replace", "add", "silence"], shuffle_kinds=["swap_adjacent", "swap_random", "permute"],
        shuffle_blocks=[1, 10], unit="s", level_ref="snr_span",
    )
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys))
    # 2 onsets x 2 lengths x (2 modes x 2 colours x 2 levels + silence) + 3 kinds x 2 onsets x 2 blocks
    assert len(specs) == 2 * 2 * 9 + 12
    for spec in specs:
        back = perturbation_from_dict(json.loads(json.dumps(spec.to_dict())))
        assert back == spec and back.key == spec.key
    assert NoiseSpec(onset=250, length=50, unit="frames").key == NoiseSpec(onset=250.0, length=50.0, unit="frames").key
    with pytest.raises(ConfigError, match="unknown field"):
        perturbation_from_dict({"type": "noise", "colour": "white", "volume": 3})
    with pytest.raises(ConfigError, match="'type'"):
        perturbation_from_dict({"colour": "white"})
    with pytest.raises(ConfigError, match="unknown noise colour"):
        NoiseSpec(colour="purple")
    with pytest.raises(ConfigError, match="length"):
        NoiseSpec(length=0)
    with pytest.raises(ConfigError, match="block"):
        ShuffleSpec(block=2.5)
    with pytest.raises(ConfigError, match="not whole"):
        ShuffleSpec(onset=0, block=1).apply(np.ones(SR, np.float32), 44100 - 1)


def test_paper_default_grid():
    grid = build_grid()
    noise = [s for s in grid if isinstance(s, NoiseSpec)]
    shuffles = [s for s in grid if isinstance(s, ShuffleSpec)]
    assert [s.length for s in noise] == [5, 10, 50, 100, 150, 200]
    assert {(s.mode, s.colour, s.onset, s.unit) for s in noise} == {("replace", "white", 250, "frames")}
    assert [s.block for s in shuffles] == [1, 2, 5, 10, 35, 50, 70, 100, 150, 200]
    assert build_grid(frame_rate=75, shuffle_kinds=())[0].onset == 375  # 5.0 s at 75 fps


def test_loud_add_mode_is_reported_and_not_clipped_on_write(music, tmp_path):
    spec = NoiseSpec(mode="add", colour="white", onset=1, length=2, level_db=0.0)
    out, info = spec.apply_with_info(music, SR, seed=0)
    assert info["peak"] > 1.0
    peak = write_audio(tmp_path / "loud.flac", out, SR)
    assert peak == pytest.approx(info["peak"], rel=1e-6)
    back = load_audio(tmp_path / "loud.flac")
    assert np.max(np.abs(back)) < 1.0
    np.testing.assert_allclose(back, out * (0.99 / peak), atol=1e-3)


def test_perturb_file_writes_audio_and_sidecar(music, tmp_path):
    from musicjudge.perturb import perturb_file

    src = tmp_path / "song.wav"
    write_audio(src, music, SR)
    spec = NoiseSpec(colour="brown", mode="add", onset=2.0, length=1.0, level_db=0.0)
    meta = perturb_file(src, tmp_path / "out" / "song_brown.flac", spec, seed=4, sample_rate=16000)
    back = load_audio(tmp_path / "out" / "song_brown.flac")
    assert len(back) == 8 * 16000 and meta["sample_rate"] == 16000
    sidecar = json.loads((tmp_path / "out" / "song_brown.flac.json").read_text())
    assert sidecar == json.loads(json.dumps(meta))
    assert perturbation_from_dict(sidecar["perturbation"]) == spec and sidecar["seed"] == 4
    assert (sidecar["start_sample"], sidecar["end_sample"]) == (32000, 48000)
    assert sidecar["peak"] > 1.0 and sidecar["normalized_gain"] == pytest.approx(0.99 / sidecar["peak"])
    assert np.max(np.abs(back)) <= 1.0
    with pytest.raises(AudioError, match="exceeds full scale"):
        perturb_file(src, tmp_path / "loud.wav", spec, seed=4, on_clip="raise")
    with pytest.raises(AudioError, match="song.wav: perturbation .* ends at 9.000 s"):
        perturb_file(src, tmp_path / "late.wav", NoiseSpec(onset=8.0, length=1.0))
