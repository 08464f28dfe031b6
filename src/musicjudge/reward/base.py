"""The reward-model interface shared by the benchmark, the pseudo-labeller and top-k selection.

A reward model is any object with

    score(items: list[ScoreItem]) -> dict[str, np.ndarray]

returning float arrays of length ``len(items)`` under the keys "musicality" and "alignment"
(higher is better). A clip that cannot be read gets NaN in both arrays and its reason in
``model.failures`` (dict audio path -> one-line message); one bad clip never aborts a batch.

Specs ("builtin", a checkpoint folder, the baselines, ``module:Class``...) are resolved by
:func:`musicjudge.reward.registry.load_reward_model`; this module is only the interface.
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


def item_key(item: ScoreItem) -> str:
    """Identity of a ScoreItem for caches and seeded scores: the audio and reference *contents*
    (resolved path + size + mtime as a cheap stand-in for a hash) and the instruction text."""
    from musicjudge.io import stable_hash

    def ident(path: str | None) -> Any:
        if not path:
            return None
        p = Path(path)
        try:
            st = p.stat()
            return [str(p.resolve()), st.st_size, st.st_mtime_ns]
        except OSError:
            return [str(path)]

    ins = item.instruction
    return stable_hash({"audio": ident(item.audio), "text": ins.text, "lyrics": ins.lyrics, "ref": ident(ins.ref_audio)})
