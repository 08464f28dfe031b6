"""Models as the benchmark sees them.

A benchmarked model is any object with ``score(items: list[ScoreItem]) -> dict[str, ndarray]``
(keys "musicality" and/or "alignment", higher is better; a dimension it does not provide is
simply not evaluated). Specs are resolved by the one reward-model resolver,
:func:`musicjudge.reward.registry.resolve_reward_model` (``builtin``, a checkpoint folder,
``random[:SEED]``, ``text-ridge[:ENCODER]``, ``clap-cosine[:ENCODER]``, ``loss-profile[:LM]``,
entry points, ``module:Class``; ``musicjudge bench list`` prints them). ``BenchModel.fingerprint``
names the weights and settings; it keys the score cache so new weights never reuse old scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ModelLoadError


@dataclass
class BenchModel:
    """A resolved model: its spec, display name, cache fingerprint and the scorer."""

    spec: str
    name: str
    fingerprint: str
    scorer: Any

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        raw = self.scorer.score(list(items))
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{self.spec}: score() returned {type(raw).__name__}; return a dict of arrays per dimension")
        out = {}
        for dim in ("musicality", "alignment"):
            if dim in raw and raw[dim] is not None:
                arr = np.asarray(raw[dim], dtype=np.float64).reshape(-1)
                if arr.shape[0] != len(items):
                    raise ModelLoadError(f"{self.spec}: score() returned {arr.shape[0]} {dim} values for {len(items)} items")
                out[dim] = arr
        if not out:
            raise ModelLoadError(f"{self.spec}: score() returned neither 'musicality' nor 'alignment'")
        return out

    @property
    def failures(self) -> dict[str, str]:
        return getattr(self.scorer, "failures", {}) or {}


def resolve_model(spec: str, model_args: dict[str, Any] | None = None) -> BenchModel:
    """Turn a ``--model`` value (and ``--model-arg`` options) into a BenchModel."""
    from musicjudge.reward.registry import resolve_reward_model

    resolved = resolve_reward_model(spec, **dict(model_args or {}))
    return BenchModel(spec, resolved.name, resolved.fingerprint, resolved.model)


def bench_model(model: Any) -> BenchModel:
    """A BenchModel from a spec, a BenchModel, or any object with the reward interface
    (``score(items)``, or the reference ``score_batch``), so Python users can benchmark the
    model object they hold."""
    if isinstance(model, BenchModel):
        return model
    if isinstance(model, str):
        return resolve_model(model)
    if callable(getattr(model, "bench_model", None)):  # musicjudge.load_reward_model's RewardScorer
        return model.bench_model()
    from musicjudge.io import stable_hash
    from musicjudge.reward.registry import wrap_reward_object

    scorer = wrap_reward_object(model, type(model).__name__)
    name = str(getattr(model, "name", None) or type(model).__name__)
    fingerprint = getattr(scorer, "fingerprint", None) or stable_hash([type(model).__module__, type(model).__qualname__, id(model)])
    return BenchModel(name, name, str(fingerprint), scorer)
