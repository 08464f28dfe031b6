"""`musicjudge score` end to end, and load_music_lm's specs and errors."""

from __future__ import annotations

import pandas as pd
import pytest
import soundfile as sf

from musicjudge.cli.main import main
from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.lm import load_music_lm

from .conftest import make_wave


class LoadableLM:
    """A 'module:Class' plugin for the loader test (wraps the tiny MusicGen)."""

    path = None

    @classmethod
    def from_pretrained(cls, device=None, dtype=None):
        from musicjudge.lm.musicgen import MusicGenLM

        return MusicGenLM.from_pretrained(cls.path, device=device, dtype=dtype)


def test_score_cli_end_to_end(tiny_musicgen_dir, tiny_lm, tmp_path, capsys):
    audio = tmp_path / "clip.wav"
    wave = make_wave(1.0, seed=21)
    sf.write(audio, wave, 44100)  # the CLI resamples to the model's 32 kHz
    out = tmp_path / "curve.csv"
    with pytest.raises(SystemExit) as exc:  # the same entry point as the console script
        main(["score", str(audio), "--model", str(tiny_musicgen_dir), "--out", str(out)])
    assert exc.value.code == 0
    from musicjudge.audio import load_audio

    expected = tiny_lm.token_nll(tiny_lm.encode(load_audio(audio, sample_rate=32000)))
    assert f"mean_nll={expected.mean():.4f}" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert list(table.columns) == ["frame", "time_s", "nll_mean", "nll_cb0", "nll_cb1", "nll_cb2", "nll_cb3"]
    assert len(table) == expected.num_frames and table["time_s"].iloc[1] == pytest.approx(0.02)
    assert table["nll_mean"].to_numpy() == pytest.approx(expected.frame_curve().numpy(), abs=1e-5)


def test_score_cli_errors_are_one_line(tiny_musicgen_dir, tmp_path, capsys):
    audio = tmp_path / "clip.wav"
    sf.write(audio, make_wave(0.5), 32000)
    for argv, needle in [
        (["score", str(tmp_path / "missing.wav"), "--model", str(tiny_musicgen_dir)], "missing.wav: file not found"),
        (["score", str(audio), "--model", str(tmp_path / "no_model")], "no MusicGen checkpoint there"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and needle in err and "\n" not in err


def test_score_cli_skips_bad_files_and_scores_the_rest(tiny_musicgen_dir, tmp_path, capsys):
    good, silent = tmp_path / "good.wav", tmp_path / "silent.wav"
    sf.write(good, make_wave(0.5), 32000)
    sf.write(silent, make_wave(0.5) * 0, 32000)
    with pytest.raises(SystemExit) as exc:
        main(["score", str(silent), str(good), "--model", str(tiny_musicgen_dir), "--out", str(tmp_path / "curves")])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert "skipped:" in captured.err and "silent.wav" in captured.err
    assert (tmp_path / "curves" / "good.nll.csv").exists() and not (tmp_path / "curves" / "silent.nll.csv").exists()
    first_mean = captured.out.split("mean_nll=")[1].split()[0]
    # resume: the finished file is kept (same mean read back), not recomputed
    with pytest.raises(SystemExit) as exc:
        main(["score", str(good), "--model", str(tiny_musicgen_dir), "--out",
              str(tmp_path / "curves" / "good.nll.csv"), "--skip-existing"])
    assert exc.value.code == 0
    again = capsys.readouterr().out
    assert "kept from" in again and f"mean_nll={first_mean}" in again


def test_load_music_lm_specs(tiny_musicgen_dir):
    lm = load_music_lm(str(tiny_musicgen_dir), device="cpu")
    assert (lm.sample_rate, lm.frame_rate, lm.num_codebooks, lm.codebook_size) == (32000, 50.0, 4, 64)
    LoadableLM.path = str(tiny_musicgen_dir)
    plugin = load_music_lm(f"{__name__}:LoadableLM")
    assert plugin.num_codebooks == 4
    with pytest.raises(ConfigError, match="has no attribute"):
        load_music_lm(f"{__name__}:Nope")
    with pytest.raises(ModelLoadError, match="config.json missing"):
        load_music_lm(str(tiny_musicgen_dir / "nothing_here"))
    try:  # the built-in LM is another package: either it loads or the error says what to do
        builtin = load_music_lm("builtin")
    except ModelLoadError as e:  # not shipped / not trained yet: one line that says what to do
        assert "\n" not in str(e) and ";" in str(e)
    else:
        assert builtin.num_codebooks >= 1
