"""CMI-RM (``cmi-rm=FOLDER``): the golden fixture made by the reference implementation
(tests/reward/fixtures/cmi_rm/README.md) reproduced to <= 1e-4, strict checkpoint keys, and
the musicjudge interface (score(items), bad clips recorded)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musicjudge.errors import ModelLoadError
from musicjudge.reward.base import ScoreItem
from musicjudge.reward.data import Instruction

FIXTURE = Path(__file__).parent / "fixtures" / "cmi_rm"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
CHECKPOINTS = sorted(EXPECTED["checkpoints"])
# The audio tower is musicjudge's MuQ (musicjudge.reward.muq; checked against the muq package in
# test_muq.py); these tests need it importable.
needs_muq = pytest.mark.skipif(importlib.util.find_spec("musicjudge.reward.muq") is None,
                               reason="musicjudge.reward.muq (the MuQ audio tower) is not importable")


def _inputs(indices: list[int]) -> list[dict]:
    out = []
    for i in indices:
        item = dict(EXPECTED["items"][i])
        item["audio"] = str(FIXTURE / item["audio"])
        item["ref_audio"] = None if item["ref_audio"] is None else str(FIXTURE / item["ref_audio"])
        out.append(item)
    return out


def _copy_checkpoint(tmp_path: Path, name: str = "cmi_rm_sa") -> Path:
    """A checkpoint folder next to copies of the tower configs, as the release layout expects."""
    for tower in ("muq_tiny", "muq_mulan_tiny", "xlm-roberta-tiny"):
        shutil.copytree(FIXTURE / tower, tmp_path / tower)
    shutil.copytree(FIXTURE / name, tmp_path / name)
    return tmp_path / name


@pytest.fixture(scope="module")
def models():
    from musicjudge.reward.cmi_rm import CmiRewardModel

    return {name: CmiRewardModel(FIXTURE / name, device="cpu") for name in CHECKPOINTS}


@needs_muq
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_reproduces_reference_score_batch(models, name):
    model = models[name]
    for run in EXPECTED["runs"]:
        got = model.score_batch(_inputs(run["items"]), batch_size=run["batch_size"], max_dur=run["max_dur"])
        want = np.asarray(EXPECTED["checkpoints"][name]["scores"][run["name"]])
        assert got.shape == want.shape == (len(run["items"]), 2)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=f"{name} {run['name']}")


@needs_muq
def test_score_items_gives_alignment_then_quality_columns(models):
    """score(items) = score_batch with column 0 as alignment and column 1 as musicality (quality)."""
    from musicjudge.reward.cmi_rm import CmiRewardModel

    run = EXPECTED["runs"][0]
    model = models["cmi_rm_sa"]
    assert isinstance(model, CmiRewardModel) and model.batch_size == 4
    model.batch_size = run["batch_size"]
    try:
        items = [ScoreItem(d["audio"], Instruction(text=d["text"] or None, lyrics=d["lyrics"] or None,
                                                   ref_audio=d["ref_audio"])) for d in _inputs(run["items"])]
        scores = model.score(items)
    finally:
        model.batch_size = 4
    want = np.asarray(EXPECTED["checkpoints"]["cmi_rm_sa"]["scores"][run["name"]])
    np.testing.assert_allclose(scores["alignment"], want[:, 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores["musicality"], want[:, 1], atol=1e-4, rtol=0)
    assert model.failures == {}


@needs_muq
def test_unreadable_clip_is_recorded_and_the_rest_scored(models, tmp_path):
    model = models["cmi_rm_ca"]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    good = _inputs([0, 2])
    items = [ScoreItem(good[0]["audio"], Instruction(text=good[0]["text"], lyrics=good[0]["lyrics"], ref_audio=good[0]["ref_audio"])),
             ScoreItem(str(broken), Instruction(text="anything")),
             ScoreItem(good[1]["audio"], Instruction(text=good[1]["text"], lyrics=good[1]["lyrics"], ref_audio=good[1]["ref_audio"]))]
    scores = model.score(items)
    assert np.isnan(scores["alignment"][1]) and np.isnan(scores["musicality"][1])
    assert list(model.failures) == [str(broken)] and str(broken) in model.failures[str(broken)]
    alone = model.score_batch(good, batch_size=4)  # the two readable clips as one group
    np.testing.assert_allclose(scores["alignment"][[0, 2]], alone[:, 0], atol=1e-6)
    np.testing.assert_allclose(scores["musicality"][[0, 2]], alone[:, 1], atol=1e-6)


def _tamper(folder: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


@needs_muq
@pytest.mark.parametrize("change, listed", [
    (lambda s: s.pop("quality_head.3.weight"), "missing: quality_head.3.weight"),
    (lambda s: s.__setitem__("score_projector.9.weight", torch.zeros(2)), "unexpected: score_projector.9.weight"),
    (lambda s: s.__setitem__("null_text_embedding", torch.zeros(1, 7, 32)), "wrong shape: null_text_embedding"),
    (lambda s: s.pop("text_module.model.encoder.layer.1.output.dense.bias"), "missing: text_module.model.encoder.layer.1.output.dense.bias"),
    (lambda s: s.pop("audio_module.model.model.conformer.layers.1.conv_module.depthwise_conv.weight"),
     "missing: audio_module.model.model.conformer.layers.1.conv_module.depthwise_conv.weight"),
    (lambda s: s.__setitem__("audio_module.model.model.conformer.layers.2.ffn1.output_dense.bias", torch.zeros(24)),
     "unexpected: audio_module.model.model.conformer.layers.2.ffn1.output_dense.bias"),
])
def test_tampered_checkpoint_is_refused_with_the_keys(tmp_path, change, listed):
    from musicjudge.reward.cmi_rm import CmiRewardModel

    folder = _copy_checkpoint(tmp_path)
    _tamper(folder, change)
    with pytest.raises(ModelLoadError) as err:
        CmiRewardModel(folder, device="cpu")
    assert listed in str(err.value) and str(folder / "model.safetensors") in str(err.value)
    assert "\n" not in str(err.value)


def test_text_tower_matches_reference_tokens():
    """The MuQ-MuLan text tower alone (XLM-R + projection + transformer) against the reference's tokens."""
    from safetensors.torch import load_file

    from musicjudge.reward.cmi_rm.towers import MulanTextTokens, build_text_model

    mulan = json.loads((FIXTURE / "muq_mulan_tiny" / "config.json").read_text())
    xlmr, tokenizer = build_text_model(FIXTURE / "xlm-roberta-tiny")
    tower = MulanTextTokens(xlmr, tokenizer, mulan["text_model"]["model_dim"], mulan["text_transformer"])
    state = load_file(str(FIXTURE / "cmi_rm_sa" / "model.safetensors"))
    tower.load_state_dict({k[len("text_module."):]: v for k, v in state.items() if k.startswith("text_module.")}, strict=True)
    reference = np.load(FIXTURE / "tower_outputs.npz")
    with torch.no_grad():
        tokens, mask = tower.eval()(["jazz trio", "hello world\nsecond line"])
    np.testing.assert_array_equal(mask.numpy(), reference["text_mask"])
    np.testing.assert_allclose(tokens.numpy(), reference["text_tokens"], atol=1e-5, rtol=0)


@needs_muq
def test_audio_tower_matches_reference_frames(models):
    from musicjudge.reward.cmi_rm.model import _pad

    model = models["cmi_rm_sa"]
    waves = [model._wave(str(FIXTURE / "audio" / name), 30.0) for name in ("clip_c.wav", "clip_a.wav")]
    reference = np.load(FIXTURE / "tower_outputs.npz")
    padded, mask = _pad(waves)
    with torch.no_grad():
        frames, frame_mask = model.net.audio_module(padded, mask)
    np.testing.assert_array_equal(frame_mask.numpy(), reference["audio_mask"])
    np.testing.assert_allclose(frames.numpy(), reference["audio_frames"], atol=1e-4, rtol=0)


def test_folder_problems_are_one_line_errors(tmp_path, monkeypatch):
    from musicjudge.reward.cmi_rm import CmiRewardModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="no config.yaml"):
        CmiRewardModel(tmp_path, device="cpu")
    folder = _copy_checkpoint(tmp_path)
    config = (folder / "config.yaml").read_text()
    (folder / "config.yaml").write_text(config.replace("attention_mode: SA", "attention_mode: XA"))
    with pytest.raises(ModelLoadError, match="attention_mode='XA'"):
        CmiRewardModel(folder, device="cpu")
    (folder / "config.yaml").write_text(config.replace("model_name: muq_mulan_tiny", "model_name: nowhere/muq-mulan"))
    with pytest.raises(ModelLoadError, match="MuQ-MuLan 'nowhere/muq-mulan'"):
        CmiRewardModel(folder, device="cpu")


@needs_muq
def test_a_clip_too_short_for_muq_fails_alone(models, tmp_path):
    import soundfile as sf

    model = models["cmi_rm_sa"]
    blip = tmp_path / "blip.wav"
    sf.write(blip, (0.5 * np.sin(np.arange(120) / 3.0)).astype(np.float32), 24000)  # 5 ms: no MuQ frame
    good = _inputs([0])[0]
    items = [ScoreItem(good["audio"], Instruction(text=good["text"])), ScoreItem(str(blip), Instruction(text="x"))]
    scores = model.score(items)
    assert np.isnan(scores["musicality"][1]) and "CMI-RM failed" in model.failures[str(blip)]
    alone = model.score_batch([{"audio": good["audio"], "text": good["text"]}], batch_size=1)
    assert scores["musicality"][0] == pytest.approx(alone[0, 1], abs=1e-6)
