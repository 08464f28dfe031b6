"""musicjudge.reward: music reward models under compositional multimodal instructions.

Light imports only here (the data schema and the interface); models, encoders and training
live in submodules that import torch lazily."""

from musicjudge.reward.base import RewardModel, ScoreItem, check_scores
from musicjudge.reward.data import (
    DIMENSIONS,
    INSTRUCTION_KINDS,
    Instruction,
    PreferencePair,
    RatedClip,
    RewardBenchRows,
    read_cmi_pref,
    read_cmi_rewardbench_jsonl,
    read_pairs,
    read_rated,
    write_pairs,
    write_rated,
)

__all__ = [
    "DIMENSIONS", "INSTRUCTION_KINDS", "Instruction", "PreferencePair", "RatedClip", "RewardBenchRows",
    "RewardModel", "ScoreItem", "check_scores", "load_reward_model", "read_cmi_pref",
    "read_cmi_rewardbench_jsonl", "read_pairs", "read_rated", "write_pairs", "write_rated",
]


def __getattr__(name: str):
    # the resolver pulls in the baselines and encoders: imported on first use only
    if name in ("load_reward_model", "resolve_reward_model"):
        from musicjudge.reward import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'musicjudge.reward' has no attribute {name!r}")
