"""One folder of bad inputs, generated here, fed to every command that reads audio.

Each command must score the good and the valid-but-unusual clips (8 channels at 192 kHz, an
m4a), record every bad one with a reason naming the file and the right cause, finish the rest,
and exit with the documented code (docs/interfaces.md, "Bad inputs"). `bench topk` reads a
rated manifest, not a folder, and is not part of this test."""

from __future__ import annotations

import os
import re
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicjudge.audio import loading
from musicjudge.cli.main import app, main

SR = 32000
SECONDS = 10.0  # the usual generator output length; the explicit probe settings below fit it
PROBE_SETTINGS = ["--onsets", "4", "--lengths", "5"]

GOOD = ["good.wav", "good.m4a", "surround_192k.wav"]
# bad file -> what its reason must say (each command words the too-short case its own way)
BAD = {
    "empty.wav": r"file is empty \(0 bytes\)",
    "not_audio.wav": r"cannot decode audio \(libsndfile: .*FFmpeg: .*\); the file is corrupt or not really \.wav",
    "truncated.wav": r"truncated \(header declares \d+ samples but the file holds only \d+\)",
    "nan.wav": r"\d+ samples are NaN or Inf",
    "nan_pcm16.wav": r"\d+ samples jump to exactly -1\.0 .* the mark NaN leaves when written to integer PCM",
    "silent.wav": r"audio is silent \(digital silence\)",
    "one_sample.wav": r"(1 sample\(s\), 0\.03 ms, shorter than the required|clip too short \(1 samples)",
    "dangling.wav": r"dangling symbolic link -> .*nowhere/take1\.wav; restore the target or remove the link",
    "locked.wav": r"permission denied, the file cannot be read; fix permissions",
}


def music(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    """[samples] or [samples, channels]: two partials with a slow tremolo (not a constant tone)."""
    t = np.arange(int(round(sr * seconds))) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 331 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x * 0.9 ** c for c in range(channels)], axis=1)


def write_m4a(path: Path, wave: np.ndarray, sr: int) -> None:
    with av.open(str(path), "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=sr, layout="mono")
        for i in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, i:i + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_inputs") / "clips"
    folder.mkdir()
    sf.write(folder / "good.wav", music(SR, SECONDS), SR)
    write_m4a(folder / "good.m4a", music(44100, SECONDS), 44100)
    sf.write(folder / "surround_192k.wav", music(192000, SECONDS, channels=8), 192000, subtype="PCM_16")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "not_audio.wav").write_text("these are my notes, not audio\n" * 40)
    sf.write(folder.parent / "whole.wav", music(SR, SECONDS), SR)
    whole = (folder.parent / "whole.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 3])  # an interrupted copy
    broken = music(SR, SECONDS)
    broken[3 * SR:3 * SR + 200] = np.nan
    sf.write(folder / "nan.wav", broken, SR, subtype="FLOAT")
    sf.write(folder / "nan_pcm16.wav", broken, SR)  # the usual sf.write: NaN becomes -1.0 in PCM_16
    sf.write(folder / "silent.wav", np.zeros(int(SR * SECONDS), np.float32), SR)
    sf.write(folder / "one_sample.wav", np.array([0.3], np.float32), SR)
    (folder / "dangling.wav").symlink_to(folder.parent / "nowhere" / "take1.wav")
    # its own content: as root the loader's open() is denied but a content-hash cache can still read
    # the bytes, and a clip identical to good.wav would be served from good.wav's cached embedding
    sf.write(folder / "locked.wav", 0.5 * music(SR, SECONDS), SR)
    (folder / "locked.wav").chmod(0)
    return folder


@pytest.fixture()
def locked_for_root(clips, monkeypatch):
    """root reads through chmod 000; make the loader's open() of locked.wav fail as it does for
    every other user (the real chmod applies when the tests do not run as root)."""
    if os.geteuid() != 0:
        return
    locked = str(clips / "locked.wav")
    real_open = open

    def denying_open(file, *args, **kwargs):
        if os.fspath(file) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(loading, "open", denying_open, raising=False)


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def check_reasons(reasons: dict[str, str], clips: Path) -> None:
    """``reasons``: file name -> recorded reason, for exactly the bad files."""
    assert set(reasons) == set(BAD), sorted(reasons)
    for name, reason in reasons.items():
        assert "\n" not in reason
        assert reason.startswith(str(clips / name)), reason  # names the file
        assert re.search(BAD[name], reason), (name, reason)  # and the right cause


def test_the_folder_lists_every_entry(clips):
    from musicjudge.audio import list_audio_files

    assert sorted(p.name for p in list_audio_files(clips)) == sorted(GOOD + list(BAD))


def test_score(clips, tmp_path, locked_for_root):
    files = sorted(str(p) for p in clips.iterdir())
    result = invoke("score", *files, "--out", str(tmp_path / "curves"))
    assert result.exit_code == 1, result.output  # some inputs skipped: exit 1 after scoring the rest
    scored = dict(re.findall(r"^(\S+)\tmean_nll=([\d.]+) nats/token", result.output, re.M))
    assert sorted(Path(p).name for p in scored) == sorted(GOOD)
    for name in GOOD:
        curve = pd.read_csv(tmp_path / "curves" / f"{Path(name).stem}.nll.csv")
        assert len(curve) == int(SECONDS * 50) and np.isfinite(curve["nll_mean"]).all()
    skipped = re.findall(r"^skipped: (.*)$", result.output, re.M)
    check_reasons({Path(r.split(":")[0]).name: r for r in skipped}, clips)
    assert f"{len(BAD)} of {len(files)} file(s) skipped" in result.output


def test_score_one_bad_file_alone_is_an_error(clips, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(clips / "nan_pcm16.wav"), "--out", str(tmp_path / "c.csv")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {clips / 'nan_pcm16.wav'}: ") and re.search(BAD["nan_pcm16.wav"], err)
    assert not (tmp_path / "c.csv").exists()


def test_probe_run(clips, tmp_path, locked_for_root):
    out = tmp_path / "run"
    result = invoke("probe", "run", "--model", "builtin", "--audio", str(clips), "--out", str(out),
                    *PROBE_SETTINGS, "--no-shuffle", "--no-report", "--device", "cpu")
    assert result.exit_code == 0, result.output  # bad clips are recorded, the run succeeds
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results["clip_id"].unique()) == sorted(GOOD)
    assert np.isfinite(results[["loss_orig", "loss_pert", "D"]].to_numpy()).all()
    errors = pd.read_csv(out / "errors.csv")
    assert errors["perturbation"].isna().all()  # whole clips, not single perturbations
    assert sorted(errors["clip_id"]) == sorted(BAD)
    assert (errors["path"] == [str(clips / c) for c in errors["clip_id"]]).all()
    check_reasons(dict(zip(errors["clip_id"], errors["reason"])), clips)
    assert f"{len(GOOD)} clip(s) scored" in result.output and f"{len(BAD)} skipped as bad" in result.output


def test_probe_profile(clips, tmp_path, locked_for_root):
    out = tmp_path / "profile.csv"
    result = invoke("probe", "profile", str(clips), "--out", str(out), *PROBE_SETTINGS, "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, keep_default_na=False)
    names = table["path"].map(lambda p: Path(p).name)
    good = table[names.isin(GOOD)]
    assert len(good) == len(GOOD) and (good["error"] == "").all()
    assert np.isfinite(good["profile_score"].astype(float)).all()
    assert (good["orig_loss_mean"].astype(float) > 0).all()
    bad = table[~names.isin(GOOD)]
    assert (bad["profile_score"] == "").all()  # NaN, not a number made up for a broken file
    check_reasons(dict(zip(bad["path"].map(lambda p: Path(p).name), bad["error"])), clips)
    assert f"{len(GOOD)} clip(s) scored, {len(BAD)} failed" in result.output


def test_reward_score(clips, tmp_path, locked_for_root):
    out = tmp_path / "rewards.csv"
    result = invoke("reward", "score", "--audio", str(clips), "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, keep_default_na=False)
    good = table[table["id"].isin(GOOD)]
    assert len(good) == len(GOOD) and (good["status"] == "ok").all()
    assert np.isfinite(good[["musicality", "alignment"]].astype(float)).all().all()
    bad = table[~table["id"].isin(GOOD)]
    assert (bad["status"] == "failed").all() and (bad["musicality"] == "").all()
    check_reasons(dict(zip(bad["id"], bad["error"])), clips)
    assert f"scored {len(GOOD)} clips, skipped {len(BAD)}" in result.output
