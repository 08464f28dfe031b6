"""The shipped built-in reward model: loads strictly, and judges freshly rendered pairs."""

from __future__ import annotations

import numpy as np

from musicjudge.reward import ScoreItem, load_reward_model, read_pairs
from musicjudge.reward.evaluate import score_pairs
from musicjudge.reward.model import FusionRewardModel


def test_builtin_model_loads_and_ranks_rendered_pairs(mini_pairs):
    model = load_reward_model("builtin")
    assert isinstance(model, FusionRewardModel) and model.name == "builtin-reward"
    assert model.encoder.config()["backbone"] == "builtin" and 100_000 < model.num_parameters < 5_000_000
    pairs = read_pairs(mini_pairs["manifest"], require_label=True)
    sa, sb, failures = score_pairs(model, pairs)
    assert not failures and np.isfinite(sa).all() and np.isfinite(sb).all()
    # musicality pairs (clean vs degraded) of pieces from the corpus fixture
    music = [i for i, p in enumerate(pairs) if "musicality" in p.preference]
    correct = [(sa[i, 0] > sb[i, 0]) == (pairs[i].preference["musicality"] == "A") for i in music]
    assert len(music) >= 5 and np.mean(correct) >= 0.8, correct
    # the same clip scores the same whatever batch it is in
    single = model.score([ScoreItem(pairs[0].audio_a, pairs[0].instruction)])
    assert np.isclose(single["musicality"][0], sa[0, 0], atol=1e-5)


def test_text_attributes_parse_tempo_and_key():
    from musicjudge.reward.encoders import TEMPO_GRID_BPM, TEXT_ATTRIBUTES_DIM, text_attributes

    n = len(TEMPO_GRID_BPM)
    a = text_attributes("Choir playing a madrigal; D minor, around 120 BPM.")
    assert a.shape == (TEXT_ATTRIBUTES_DIM,) and np.isclose(a[:n].sum(), 1.0)
    assert np.isclose(TEMPO_GRID_BPM[np.argmax(a[:n])], 120.0, rtol=0.05)
    assert np.flatnonzero(a[n:]).tolist() == [12 + 2]  # minor block, tonic D
    assert np.flatnonzero(text_attributes("in B-flat major")[n:]).tolist() == [10]
    assert np.flatnonzero(text_attributes("F# minor")[n:]).tolist() == [12 + 6]
    slow = text_attributes("a slow chorale")[:n]
    assert np.isclose(slow.sum(), 1.0) and TEMPO_GRID_BPM[slow > 0].max() < 80
    assert not text_attributes("a chorale for organ").any()


def test_attribute_terms_prefer_the_stated_tempo_and_key():
    import torch

    from musicjudge.reward.encoders import BuiltinEncoder, TEMPO_GRID_BPM, text_attributes
    from musicjudge.reward.model import HeadConfig, make_head

    enc = BuiltinEncoder(use_cache=False)
    layout = enc.attribute_layout()
    head = make_head(HeadConfig(audio_dim=295, text_dim=enc.text_dim(), layout=layout)).eval()
    text = np.zeros((2, enc.text_dim()), np.float32)
    text[:, 384:] = text_attributes("in C major, 100 BPM")
    audio = np.zeros((2, 295), np.float32)
    (t0, t1), (k0, k1) = layout["audio_tempo"], layout["audio_key"]
    lag_periodic = lambda bpm: np.cos(2 * np.pi * bpm / TEMPO_GRID_BPM)  # noqa: E731 - periodicity of a clip at bpm
    audio[0, t0:t1], audio[1, t0:t1] = lag_periodic(100.0), lag_periodic(160.0)
    audio[0, k0], audio[1, k0 + 4] = 1.0, 1.0  # clip 0 correlates with C major, clip 1 with E major
    t = lambda x: torch.from_numpy(x)  # noqa: E731
    present = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        terms = head.attribute_terms(t(audio), head.standardise(t(audio)), t(text), present, torch.zeros(2, 295), ~present)
    assert terms[0] > terms[1]
