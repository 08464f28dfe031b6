"""Pairwise evaluation of any reward model (musicjudge interface) on labelled pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError
from musicjudge.reward.base import ScoreItem, check_scores, load_reward_model
from musicjudge.reward.data import PreferencePair


def resolve_model(spec: str, *, fit_pairs: str | Path | None = None, device: str | None = None) -> Any:
    """``load_reward_model`` plus the baselines "random" and "cosine" (fitted on ``fit_pairs``)."""
    if spec == "random":
        from musicjudge.reward.baselines import RandomBaseline

        return RandomBaseline()
    if spec == "cosine":
        from musicjudge.reward.baselines import CosineBaseline
        from musicjudge.reward.data import read_pairs
        from musicjudge.reward.encoders import BuiltinEncoder

        if fit_pairs is None:
            raise ConfigError("--model cosine needs --fit-pairs (pairs to fit its text->audio map on)")
        return CosineBaseline(BuiltinEncoder(device=device)).fit(read_pairs(fit_pairs, require_label=True))
    return load_reward_model(spec, device=device)


def score_pairs(model: Any, pairs: Sequence[PreferencePair], *, batch_size: int = 256, progress: bool = False):
    """Scores of both sides: (score_a [N, 2], score_b [N, 2], failures); columns in DIMENSIONS order.
    Each distinct (clip, instruction) is scored once."""
    from musicjudge.reward.data import DIMENSIONS

    keys: dict[tuple, int] = {}
    items: list[ScoreItem] = []
    for p in pairs:
        for audio in (p.audio_a, p.audio_b):
            key = (audio, p.instruction)
            if key not in keys:
                keys[key] = len(items)
                items.append(ScoreItem(audio, p.instruction))
    values = np.full((len(items), len(DIMENSIONS)), np.nan)
    failures: dict[str, str] = {}
    starts = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="score pairs", unit="batch")
    for start in starts:
        chunk = items[start:start + batch_size]
        scores = check_scores(model.score(chunk), len(chunk))
        for k, dim in enumerate(DIMENSIONS):
            values[start:start + len(chunk), k] = scores[dim]
        failures.update(getattr(model, "failures", {}) or {})
    sa = np.stack([values[keys[(p.audio_a, p.instruction)]] for p in pairs]) if pairs else np.zeros((0, 2))
    sb = np.stack([values[keys[(p.audio_b, p.instruction)]] for p in pairs]) if pairs else np.zeros((0, 2))
    return sa, sb, failures


def evaluate_model(model: Any, pairs: Sequence[PreferencePair], **kwargs: Any):
    """(accuracy table per dimension x instruction kind, failures). Pairs with an unscorable clip
    are left out of the accuracy (and listed in failures)."""
    from musicjudge.reward.train import accuracy_table

    pairs = list(pairs)
    sa, sb, failures = score_pairs(model, pairs, **kwargs)
    return accuracy_table(sa, sb, pairs), failures
