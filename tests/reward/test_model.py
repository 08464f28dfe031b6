"""Checkpoints (round trip, refusal of mismatches), scoring, loaders and adapters."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from musicjudge.errors import ModelLoadError
from musicjudge.reward import Instruction, ScoreItem, load_reward_model
from musicjudge.reward.adapters import ReferenceBenchmarkAdapter
from musicjudge.reward.reference_interface import FromReferenceInterface
from musicjudge.reward.model import FusionRewardModel, HeadConfig, count_parameters, make_head


def _items(synthetic, n=6):
    pairs = synthetic["pairs"]["test"][:n]
    items = [ScoreItem(p.audio_a, p.instruction) for p in pairs] + [ScoreItem(p.audio_b, p.instruction) for p in pairs]
    # one item with every modality present (reference = another clip)
    items.append(ScoreItem(pairs[0].audio_a, Instruction(pairs[0].instruction.text, "la la la", pairs[1].audio_b)))
    return items


def test_checkpoint_round_trip_gives_identical_scores(trained, synthetic, tmp_path):
    model = FusionRewardModel.from_checkpoint(trained["dir"])
    items = _items(synthetic)
    first = model.score(items)
    assert set(first) == {"musicality", "alignment"} and all(np.isfinite(v).all() for v in first.values())
    copy_dir = model.save(tmp_path / "copy")
    again = load_reward_model(str(copy_dir)).score(items)
    for dim in first:
        np.testing.assert_array_equal(first[dim], again[dim])
    cfg = json.loads((copy_dir / "config.json").read_text())
    assert cfg["num_parameters"] == model.num_parameters == count_parameters(model.head) > 10_000
    assert cfg["encoder"]["backbone"] == "builtin"


def test_mismatched_checkpoints_are_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    shutil.copytree(trained["dir"], bad, ignore=shutil.ignore_patterns("last"))
    cfg = json.loads((bad / "config.json").read_text())
    cfg["head"]["d_model"] = 32  # weights were trained with 64
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="do not match config.json.*shape mismatch"):
        FusionRewardModel.from_checkpoint(bad)
    cfg["head"]["d_model"] = 64
    (bad / "config.json").write_text(json.dumps(cfg))
    tensors = load_file(str(bad / "model.safetensors"))
    tensors.pop("alignment_out.1.weight")
    save_file(tensors, str(bad / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="missing"):
        FusionRewardModel.from_checkpoint(bad)
    with pytest.raises(ModelLoadError, match="not a reward checkpoint"):
        load_reward_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not 'builtin'"):
        load_reward_model("no/such/model")


def test_head_handles_every_subset_of_modalities():
    torch.manual_seed(0)
    head = make_head(HeadConfig(audio_dim=10, text_dim=6, d_model=16, n_layers=1, n_heads=2)).eval()
    audio, text, ref = torch.randn(4, 10), torch.randn(4, 6), torch.randn(4, 10)
    present = torch.tensor([[False, False, False], [True, False, False], [True, True, False], [True, True, True]])
    out = head(audio, text, present[:, 0], text, present[:, 1], ref, present[:, 2])
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    # an absent modality is really ignored: changing its input does not change the output
    out2 = head(audio, text * 5, torch.zeros(4, dtype=torch.bool), text, present[:, 1], ref * 3, torch.zeros(4, dtype=torch.bool))
    out3 = head(audio, text, torch.zeros(4, dtype=torch.bool), text, present[:, 1], ref, torch.zeros(4, dtype=torch.bool))
    torch.testing.assert_close(out2, out3)


def test_unreadable_clip_gets_nan_and_a_reason(trained, synthetic, tmp_path):
    model = FusionRewardModel.from_checkpoint(trained["dir"])
    good = synthetic["pairs"]["test"][0]
    missing = str(tmp_path / "gone.wav")
    scores = model.score([ScoreItem(good.audio_a, good.instruction), ScoreItem(missing, good.instruction)])
    assert np.isfinite(scores["musicality"][0]) and np.isnan(scores["musicality"][1]) and np.isnan(scores["alignment"][1])
    assert missing in model.failures


class ToyReferenceModel:
    """A model written for the reference benchmark interface: louder clips score higher."""

    sr = 16000

    def __init__(self, checkpoint=None, device=None):
        self.device = device

    def score_batch(self, inputs, batch_size=8, max_dur=None):
        import soundfile as sf

        out = []
        for inp in inputs:
            wave, _ = sf.read(inp["audio"])
            out.append([len(inp.get("text") or ""), float(np.sqrt(np.mean(wave ** 2)))])
        return np.array(out)


def test_adapters_both_ways(trained, synthetic):
    items = _items(synthetic, 3)
    model = FusionRewardModel.from_checkpoint(trained["dir"])
    direct = model.score(items)
    adapter = ReferenceBenchmarkAdapter(checkpoint=str(trained["dir"]))
    inputs = [{"audio": it.audio, "text": it.instruction.text, "lyrics": it.instruction.lyrics, "ref_audio": it.instruction.ref_audio} for it in items]
    out = adapter.score_batch(inputs, batch_size=2, max_dur=10.0)
    assert out.shape == (len(items), 2) and adapter.sr == 16000
    np.testing.assert_allclose(out[:, 0], direct["alignment"], rtol=1e-5, atol=1e-6)  # batch size differs
    np.testing.assert_allclose(out[:, 1], direct["musicality"], rtol=1e-5, atol=1e-6)
    import soundfile as sf

    wave, sr = sf.read(items[0].audio, dtype="float32")
    from_tensor = adapter.score_batch([{"audio": torch.from_numpy(wave), "text": items[0].instruction.text}])
    np.testing.assert_allclose(from_tensor[0], out[0], rtol=1e-5, atol=1e-6)
    # a reference-interface class loaded by module:Class is wrapped, and a missing clip is isolated
    wrapped = load_reward_model("tests.reward.test_model:ToyReferenceModel")
    assert isinstance(wrapped, FromReferenceInterface)
    res = wrapped.score([ScoreItem(items[0].audio, Instruction("abc")), ScoreItem("/nonexistent.wav", Instruction("x"))])
    assert res["alignment"][0] == 3 and res["musicality"][0] > 0 and np.isnan(res["musicality"][1])
    assert "/nonexistent.wav" in wrapped.failures
