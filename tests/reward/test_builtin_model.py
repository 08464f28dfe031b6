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
        head.text_to_audio.weight.zero_()  # isolate the tempo/key evidence from the (random) text map
        features = head.matching_features(t(audio), t(text), present, torch.zeros(2, 295), ~present)
        terms = features @ head.fusion_term_weights()
    assert terms[0] > terms[1]


def _head_inputs(batch: int, audio_dim: int, text_dim: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, audio_dim, generator=g), torch.randn(batch, text_dim, generator=g), torch.rand(batch, generator=g) > 0.2,
            torch.randn(batch, text_dim, generator=g), torch.rand(batch, generator=g) > 0.5, torch.rand(batch, audio_dim, generator=g),
            torch.rand(batch, generator=g) > 0.5)


def test_fusion_alignment_is_its_output_plus_weighted_matching_features():
    import torch

    from musicjudge.reward.encoders import BuiltinEncoder
    from musicjudge.reward.model import HeadConfig, make_head

    enc = BuiltinEncoder(use_cache=False)
    head = make_head(HeadConfig(audio_dim=295, text_dim=enc.text_dim(), layout=enc.attribute_layout())).eval()
    inputs = _head_inputs(8, 295, enc.text_dim())
    audio, text, tp, _, _, ref, rp = inputs
    with torch.no_grad():
        features = head.matching_features(audio, text, tp, ref, rp)
        # output layers start at zero: before training alignment is exactly the matching terms
        assert torch.allclose(head(*inputs)[:, 1], features @ head.fusion_term_weights(), atol=1e-5)
    n_blocks, n_tempo = len(enc.attribute_layout()["blocks"]), head.n_tempo
    assert features.shape == (8, 2 + 2 * n_blocks + (2 * n_tempo - 1) + 48 + 2)
    # an absent condition contributes nothing: text terms vanish without text, reference terms without reference
    text_cols = [0, *range(2, 2 + 2 * n_blocks, 2), *range(2 + 2 * n_blocks, features.shape[1] - 2)]
    ref_cols = [1, *range(3, 2 + 2 * n_blocks, 2), features.shape[1] - 2, features.shape[1] - 1]
    assert torch.all(features[~tp][:, text_cols] == 0) and torch.all(features[~rp][:, ref_cols] == 0)


def test_terms_head_warm_start_is_a_convex_bradley_terry_fit():
    import torch

    from musicjudge.reward.data import Instruction, PreferencePair
    from musicjudge.reward.encoders import BuiltinEncoder
    from musicjudge.reward.model import HeadConfig, make_head
    from musicjudge.reward.train import PairArrays, fit_term_weights, predict_pairs

    enc = BuiltinEncoder(use_cache=False)
    layout = enc.attribute_layout()
    head = make_head(HeadConfig(audio_dim=295, text_dim=enc.text_dim(), layout=layout, alignment="terms")).eval()
    # same matching part as a fusion head at initialisation
    assert torch.allclose(head.term_weights, head.fusion_term_weights())
    # pairs where only the key evidence tells the clips apart, the label following the stated key,
    # while the key kernel's initial weights are set to the opposite (prefer the other key)
    rng = np.random.default_rng(0)
    n, dt = 200, enc.text_dim()
    (k0, _), (tk0, _) = layout["audio_key"], layout["text_key"]
    text = np.zeros((n, dt), np.float32)
    audio_a = rng.uniform(0, 1, (n, 295)).astype(np.float32)
    audio_b = audio_a.copy()
    tonic = rng.integers(12, size=n)
    text[np.arange(n), tk0 + tonic] = 1.0
    better_is_a = rng.integers(2, size=n).astype(bool)
    audio_a[np.arange(n), k0 + tonic] += np.where(better_is_a, 1.0, 0.0)
    audio_b[np.arange(n), k0 + tonic] += np.where(better_is_a, 0.0, 1.0)
    pairs = [PreferencePair(id=f"p{i}", instruction=Instruction(text="t"), audio_a="a.wav", audio_b="b.wav",
                            preference={"alignment": "A" if better_is_a[i] else "B"}) for i in range(n)]
    present = np.zeros((n, 3), bool)
    present[:, 0] = True
    targets = np.zeros((n, 2), np.float32)
    targets[:, 1] = better_is_a
    mask = np.zeros((n, 2), bool)
    mask[:, 1] = True
    arrays = PairArrays(pairs, audio_a, audio_b, text, np.zeros_like(text), np.zeros_like(audio_a), present, targets, mask)
    with torch.no_grad():
        head.term_weights.mul_(-1.0)
    sa, sb = predict_pairs(head, arrays)
    assert np.mean((sa[:, 1] > sb[:, 1]) == better_is_a) < 0.2
    assert fit_term_weights(head, arrays) == n
    sa, sb = predict_pairs(head, arrays)
    assert np.mean((sa[:, 1] > sb[:, 1]) == better_is_a) == 1.0
    key_offset0 = 2 + 2 * len(layout["blocks"]) + 2 * head.n_tempo - 1  # (major stated, major clip, offset 0)
    assert head.term_weights[key_offset0] > 0
