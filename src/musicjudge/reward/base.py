"""The reward-model interface shared by the benchmark, the pseudo-labeller and top-k selection.

A reward model is any object with

    score(items: list[ScoreItem]) -> dict[str, np.ndarray]

returning float arrays of length ``len(items)`` under the keys "musicality" and "alignment"
(higher is better). A clip that cannot be read gets NaN in both arrays and its reason in
``model.failures`` (dict audio path -> one-line message); one bad clip never aborts a batch.

:func:`load_reward_model` resolves a spec: "builtin" (the shipped model), a checkpoint folder
(config.json + model.safetensors written by musicjudge), or ``module:Class`` (a class or
factory; classes written for the reference CMI-RewardBench interface, with ``score_batch``,
are wrapped automatically).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from musicjudge.errors import ModelLoadError
from musicjudge.reward.data import DIMENSIONS, Instruction


@dataclass(frozen=True)
class ScoreItem:
    """One clip to score, with the instruction it was generated for."""

    audio: str
    instruction: Instruction = Instruction()


@runtime_checkable
class RewardModel(Protocol):
    """What every musicjudge reward model provides."""

    def score(self, items: list[ScoreItem]) -> dict[str, np.ndarray]:
        """Scores per dimension ("musicality", "alignment"), float arrays of len(items); NaN = failed clip."""
        ...


def check_scores(scores: dict[str, Any], n_items: int, *, who: str = "reward model") -> dict[str, np.ndarray]:
    """Validate a model's output: both dimensions, right length, float arrays."""
    out: dict[str, np.ndarray] = {}
    for dim in DIMENSIONS:
        if dim not in scores:
            raise ModelLoadError(f"{who}: score() returned no {dim!r} key; return both 'musicality' and 'alignment'")
        arr = np.asarray(scores[dim], dtype=np.float64).reshape(-1)
        if arr.shape[0] != n_items:
            raise ModelLoadError(f"{who}: score() returned {arr.shape[0]} {dim} values for {n_items} items; return one per item")
        out[dim] = arr
    return out


BUILTIN_NAMES = ("builtin", "builtin_reward")


def builtin_checkpoint_dir() -> Path:
    """Folder of the shipped built-in reward model."""
    return Path(__file__).resolve().parent.parent / "assets" / "builtin_reward"


def load_reward_model(spec: str | Path = "builtin", *, device: str | None = None, **kwargs: Any) -> RewardModel:
    """Load "builtin", a musicjudge checkpoint folder, or ``module:Class`` as a reward model."""
    spec_str = str(spec)
    if spec_str in BUILTIN_NAMES:
        from musicjudge.reward.model import FusionRewardModel

        path = builtin_checkpoint_dir()
        if not (path / "model.safetensors").exists():
            raise ModelLoadError(f"{path}: the built-in reward model weights are missing; reinstall musicjudge or train one with 'musicjudge reward train'")
        return FusionRewardModel.from_checkpoint(path, device=device, **kwargs)
    path = Path(spec_str).expanduser()
    if path.exists():
        from musicjudge.reward.model import FusionRewardModel

        return FusionRewardModel.from_checkpoint(path, device=device, **kwargs)
    if ":" in spec_str:
        from musicjudge.plugins import load_object

        obj = load_object(spec_str)
        try:
            model = obj(device=device, **kwargs) if callable(obj) and _accepts_device(obj) else (obj(**kwargs) if callable(obj) else obj)
        except TypeError as e:
            raise ModelLoadError(f"{spec_str}: cannot construct the model ({e}); it must accept no arguments or device=") from None
        if hasattr(model, "score"):
            return model
        if hasattr(model, "score_batch"):
            from musicjudge.reward.adapters import FromReferenceInterface

            return FromReferenceInterface(model)
        raise ModelLoadError(f"{spec_str}: object has neither score(items) nor score_batch(inputs, ...); see docs/reward.md")
    raise ModelLoadError(f"{spec_str}: not 'builtin', an existing checkpoint folder, or 'module:Class'; check the spelling")


def _accepts_device(obj: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
