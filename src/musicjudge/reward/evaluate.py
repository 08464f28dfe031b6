"""Pairwise evaluation of any reward model (musicjudge interface) on labelled pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError
from musicjudge.reward.base import ScoreItem, check_scores
from musicjudge.reward.data import PreferencePair


def resolve_model(spec: str, *, fit_pairs: str | Path | None = None, device: str | None = None) -> Any:
    """The reward model a spec names (the one resolver, :mod:`musicjudge.reward.registry`);
    ``fit_pairs`` fits the ``text-ridge`` baseline on your own labelled pairs."""
    from musicjudge.reward.registry import REWARD_MODELS, load_reward_model

    hit = REWARD_MODELS.match(spec)
    options = {"fit_pairs": fit_pairs} if fit_pairs is not None and hit and hit[0].name in ("text-ridge", "cosine") else {}
    if fit_pairs is not None and not options:
        raise ConfigError(f"--fit-pairs is for the text-ridge baseline; {spec!r} is not fitted on pairs")
    return load_reward_model(spec, device=device, **options)


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
