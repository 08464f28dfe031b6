"""The pairwise Bradley-Terry loss: label smoothing, ties, masks; accuracy's tie policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from musicjudge.errors import ConfigError
from musicjudge.reward.train import pairwise_accuracy, pairwise_bt_loss, smooth_targets


def _loss_and_grad(diff: float, target: float, smoothing: float = 0.0):
    sa = torch.tensor([[diff]], requires_grad=True)
    loss = pairwise_bt_loss(sa, torch.zeros(1, 1), torch.tensor([[target]]), torch.ones(1, 1, dtype=torch.bool), smoothing=smoothing)
    loss.backward()
    return float(loss.detach()), float(sa.grad)


def test_hard_label_is_softplus_of_margin():
    for d in (-2.0, 0.0, 1.5):
        loss, _ = _loss_and_grad(d, 1.0)
        assert loss == pytest.approx(math.log1p(math.exp(-d)), rel=1e-5)
        loss_b, _ = _loss_and_grad(d, 0.0)
        assert loss_b == pytest.approx(math.log1p(math.exp(d)), rel=1e-5)


def test_tie_target_is_minimised_at_equal_scores():
    _, grad0 = _loss_and_grad(0.0, 0.5)
    assert grad0 == pytest.approx(0.0, abs=1e-7)
    assert _loss_and_grad(0.0, 0.5)[0] < _loss_and_grad(1.0, 0.5)[0]
    assert _loss_and_grad(0.0, 0.5)[0] < _loss_and_grad(-1.0, 0.5)[0]
    assert _loss_and_grad(1.0, 0.5)[1] > 0 > _loss_and_grad(-1.0, 0.5)[1]  # pulls both ways toward 0


def test_label_smoothing_bounds_the_optimal_margin():
    eps = 0.1
    assert float(smooth_targets(torch.tensor(1.0), eps)) == pytest.approx(0.95)
    assert float(smooth_targets(torch.tensor(0.0), eps)) == pytest.approx(0.05)
    assert float(smooth_targets(torch.tensor(0.5), eps)) == pytest.approx(0.5)  # ties untouched
    optimum = math.log(0.95 / 0.05)  # sigmoid(d*) = 0.95
    assert _loss_and_grad(optimum, 1.0, eps)[1] == pytest.approx(0.0, abs=1e-6)
    # without smoothing, an A label keeps pushing the margin up; with smoothing, past d* it pulls back
    assert _loss_and_grad(2 * optimum, 1.0, 0.0)[1] < 0
    assert _loss_and_grad(2 * optimum, 1.0, eps)[1] > 0
    with pytest.raises(ConfigError):
        smooth_targets(torch.tensor(1.0), 1.0)


def test_mask_excludes_unlabelled_dimensions():
    sa = torch.tensor([[3.0, -7.0]])
    sb = torch.zeros(1, 2)
    targets = torch.tensor([[1.0, 1.0]])
    only_first = pairwise_bt_loss(sa, sb, targets, torch.tensor([[True, False]]))
    assert float(only_first) == pytest.approx(math.log1p(math.exp(-3.0)), rel=1e-5)
    nothing = pairwise_bt_loss(sa, sb, targets, torch.tensor([[False, False]]))
    assert float(nothing) == 0.0


def test_accuracy_tie_policy():
    a = np.array([1.0, 0.0, 2.0, 5.0, 1.0])
    b = np.array([0.0, 1.0, 2.0, 1.0, np.nan])
    # A right, A wrong, predicted tie (0.5), truth tie (0.5), unscorable skipped
    assert pairwise_accuracy(a, b, ["A", "A", "B", "tie", "A"]) == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert pairwise_accuracy(a[:2], b[:2], ["B", None]) == 0.0
    assert math.isnan(pairwise_accuracy(a[:1], b[:1], [None]))
