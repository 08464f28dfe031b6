"""`musicjudge reward ...` commands end to end on synthetic data."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from musicjudge.cli.main import app, main
from musicjudge.reward.data import write_pairs

runner = CliRunner()


def test_reward_help_lists_commands():
    result = runner.invoke(app, ["reward", "--help"])
    assert result.exit_code == 0
    for command in ("build-pairs", "train", "eval", "score", "info"):
        assert command in result.output


def test_score_folder_skips_and_records_bad_clips(trained, synthetic, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for p in synthetic["pairs"]["test"][:3]:
        shutil.copy(p.audio_a, clips / f"{p.id}.wav")
    (clips / "broken.wav").write_bytes(b"not audio at all")
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("la la la\n")
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["reward", "score", "--model", str(trained["dir"]), "--audio", str(clips), "--text",
                                 "a slow melody", "--lyrics", str(lyrics), "--out", str(out)])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert len(df) == 4 and set(df["instruction_kind"]) == {"text+lyrics"}
    bad = df[df["id"] == "broken.wav"].iloc[0]
    assert bad["status"] == "failed" and "broken.wav" in bad["error"] and pd.isna(bad["musicality"])
    assert df[df["status"] == "ok"]["seconds_used"].between(1.99, 2.0).all()
    assert "scored 3 clips, skipped 1" in result.output


def test_train_eval_info_from_manifests(synthetic, tmp_path):
    train = write_pairs(tmp_path / "train.jsonl", synthetic["pairs"]["train"][::4])
    test = write_pairs(tmp_path / "test.csv", synthetic["pairs"]["test"][:12])
    out = tmp_path / "model"
    result = runner.invoke(app, ["reward", "train", "--pairs", str(train), "--test", str(test), "--out", str(out),
                                 "--epochs", "2", "--d-model", "32", "--layers", "1", "--label-smoothing", "0.1"])
    assert result.exit_code == 0, result.output
    assert "trainable parameters" in result.output and (out / "test_accuracy.csv").exists()
    result = runner.invoke(app, ["reward", "eval", "--pairs", str(test), "--model", str(out), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "ev" / "accuracy.csv")
    assert set(table["dimension"]) == {"musicality", "alignment"}
    result = runner.invoke(app, ["reward", "info", "--model", str(out)])
    assert result.exit_code == 0 and '"num_parameters"' in result.output
    # a pairs manifest as --audio: each distinct (clip, instruction) once, with the row's instruction
    scores = tmp_path / "manifest_scores.csv"
    result = runner.invoke(app, ["reward", "score", "--model", str(out), "--audio", str(test), "--out", str(scores)])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(scores)
    expected = {(p.audio_a, p.instruction.text) for p in synthetic["pairs"]["test"][:12]} | {(p.audio_b, p.instruction.text) for p in synthetic["pairs"]["test"][:12]}
    assert len(df) == len(expected) and (df["status"] == "ok").all() and set(df["instruction_kind"]) == {"text"}


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reward", "score", "--audio", str(tmp_path / "nothing.xyz"), "--out", str(tmp_path / "s.csv"), "--model", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "audio_a": "a.wav"}\n')
    with pytest.raises(SystemExit):
        main(["reward", "train", "--pairs", str(bad), "--out", str(tmp_path / "o")])
    assert "row 1: column 'audio_b' is missing" in capsys.readouterr().err
