"""The ``muq`` and ``muq-mulan`` encoder backbones (tiny random folders): embeddings equal the model's
own, content-hash cache, windowing, and ``reward train --backbone muq-mulan`` end to end (pseudo-label
stage with label smoothing, then fine-tuning on "human" pairs from it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from musicjudge.cli.main import app
from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.reward.data import Instruction, write_pairs
from musicjudge.reward.encoders import BACKBONES, MuQEncoder, MuQMuLanEncoder, build_encoder
from musicjudge.reward.muq.tiny import build_tiny_muq, build_tiny_muq_mulan
from synthetic import make_synthetic_pairs


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("muq-models")
    return {"muq": build_tiny_muq(root / "muq", seed=3), "muq-mulan": build_tiny_muq_mulan(root / "muq-mulan", seed=4)}


def _wavs(folder: Path, seconds=(1.5, 3.0), sr=16000) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(seconds):
        t = np.arange(int(s * sr)) / sr
        path = folder / f"c{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) * (1 + np.sin(3 * t))).astype(np.float32), sr)
        out.append(str(path))
    return out


def test_backbones_are_registered():
    assert {"muq", "muq-mulan"} <= set(BACKBONES)


def test_muq_mulan_encoder_equals_the_model_and_caches(folders, tmp_path, reward_cache):
    from musicjudge.audio import load_audio

    enc = build_encoder({"backbone": "muq-mulan", "model": str(folders["muq-mulan"])}, use_cache=True)
    assert isinstance(enc, MuQMuLanEncoder) and enc.sample_rate == 24000
    paths = _wavs(tmp_path / "a")
    emb = enc.embed_audio(paths)
    assert emb.shape == (2, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        direct = enc.model.embed_audio(torch.from_numpy(load_audio(paths[1], 24000, duration=3.0))).numpy()
    np.testing.assert_allclose(emb[1], direct, atol=1e-6)
    text = enc.embed_text(["a slow piano piece", "rock"])
    assert text.shape == (2, 16)
    # a fresh encoder reads the cache; a renamed copy hits, an edited file misses
    again = build_encoder(enc.config())
    shutil.copy(paths[0], tmp_path / "renamed.wav")
    np.testing.assert_array_equal(again.embed_audio([paths[1], str(tmp_path / "renamed.wav")]), emb[[1, 0]])
    assert again.audio_cache.hits == 2 and again.audio_cache.misses == 0
    np.testing.assert_array_equal(again.embed_text(["rock"]), text[1:])
    assert again.text_cache.hits == 1


def test_muq_encoder_pools_frames(folders, tmp_path, reward_cache):
    from musicjudge.audio import load_audio

    paths = _wavs(tmp_path / "a", seconds=(2.5,))
    enc = build_encoder({"backbone": "muq", "model": str(folders["muq"]), "windowing": {"mode": "windows", "max_seconds": 2.5,
                                                                                       "window_seconds": 1.0}})
    assert isinstance(enc, MuQEncoder)
    emb = enc.embed_audio(paths)
    wave = torch.from_numpy(load_audio(paths[0], 24000))
    with torch.no_grad():  # windows of 1 s (the 0.5 s tail kept: it is >= min_seconds), frame means averaged
        want = np.mean([enc.model(wave[s:s + 24000][None])[0].mean(dim=1)[0].numpy() for s in (0, 24000, 48000)], axis=0)
    assert emb.shape == (1, 24)
    np.testing.assert_allclose(emb[0], want, atol=1e-5)
    assert enc.audio_seconds(paths[0]) == pytest.approx(2.5)
    layer1 = build_encoder({"backbone": "muq", "model": str(folders["muq"]), "layer": 1}, use_cache=False)
    assert not np.allclose(layer1.embed_audio(paths), build_encoder({"backbone": "muq", "model": str(folders["muq"])},
                                                                    use_cache=False).embed_audio(paths))
    with pytest.raises(ConfigError, match="hidden states 0..2"):
        build_encoder({"backbone": "muq", "model": str(folders["muq"]), "layer": 7})


def test_missing_model_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="MuQ-MuLan 'nowhere/mulan': not a local folder"):
        build_encoder({"backbone": "muq-mulan", "model": "nowhere/mulan"})
    with pytest.raises(ModelLoadError, match="not a local folder"):
        build_encoder({"backbone": "muq"})  # default: the official hub id, not cached here


def _pairs(folder: Path, seeds: range, source: str, refs: list[str]):
    """Synthetic pairs with every instruction kind: text, +lyrics, +reference, all three."""
    out = []
    for i, pair in enumerate(make_synthetic_pairs(folder, seeds)):
        lyrics = "la la love the night" if i % 4 in (1, 3) else None
        ref = refs[i % len(refs)] if i % 4 in (2, 3) else None
        out.append(replace(pair, id=f"{source}-{pair.id}", source=source,
                           instruction=Instruction(pair.instruction.text, lyrics=lyrics, ref_audio=ref)))
    return out


def test_reward_train_on_muq_mulan_features_pseudo_then_human(folders, tmp_path, reward_cache):
    runner = CliRunner()
    clips = tmp_path / "clips"
    refs = _wavs(tmp_path / "refs", seconds=(2.0, 2.5))
    pseudo = write_pairs(tmp_path / "pseudo.jsonl", _pairs(clips, range(0, 2), "pseudo", refs))
    human = write_pairs(tmp_path / "human.jsonl", _pairs(clips, range(2, 3), "human", refs))
    val = write_pairs(tmp_path / "val.jsonl", _pairs(clips, range(10, 11), "val", refs))
    model = str(folders["muq-mulan"])
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    common = ["--val", str(val), "--epochs", "2", "--d-model", "32", "--layers", "1", "--batch-size", "8", "--threads", "1"]
    result = runner.invoke(app, ["reward", "train", "--pairs", str(pseudo), "--out", str(stage1), "--backbone", "muq-mulan",
                                 "--backbone-model", model, "--label-smoothing", "0.1", *common])
    assert result.exit_code == 0, result.output
    assert "with muq-mulan" in result.output
    cfg = json.loads((stage1 / "config.json").read_text())
    assert cfg["encoder"]["backbone"] == "muq-mulan" and cfg["encoder"]["model"] == model
    summary = json.loads((stage1 / "train_summary.json").read_text())
    assert summary and not summary.get("skipped_pairs")
    # stage 2: fine-tune from stage 1 on the human pairs; the encoder comes from the checkpoint
    result = runner.invoke(app, ["reward", "train", "--pairs", str(human), "--init", str(stage1), "--out", str(stage2), *common])
    assert result.exit_code == 0, result.output
    cfg2 = json.loads((stage2 / "config.json").read_text())
    assert cfg2["encoder"] == cfg["encoder"] and cfg2["info"]["init"] == str(stage1)
    # every clip of both stages is now in the content-hash cache
    enc = build_encoder(cfg["encoder"])
    from musicjudge.reward.data import read_pairs

    paths = sorted({p for pair in read_pairs(human) for p in (pair.audio_a, pair.audio_b, pair.instruction.ref_audio) if p})
    enc.embed_audio(paths)
    assert enc.audio_cache.misses == 0 and enc.audio_cache.hits == len(paths)
    scores = tmp_path / "scores.csv"
    (tmp_path / "lyrics.txt").write_text("la la love the night\n")
    result = runner.invoke(app, ["reward", "score", "--model", str(stage2), "--audio", str(clips), "--text", "a slow melody",
                                 "--lyrics", str(tmp_path / "lyrics.txt"), "--ref-audio", refs[0], "--out", str(scores)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    df = pd.read_csv(scores)
    assert (df["status"] == "ok").all() and np.isfinite(df["musicality"]).all() and np.isfinite(df["alignment"]).all()
