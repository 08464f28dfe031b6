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
