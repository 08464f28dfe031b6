"""Turn generated candidates (several clips per instruction) into unlabelled preference pairs."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from musicjudge.errors import ConfigError, ManifestError

if TYPE_CHECKING:
    from musicjudge.reward.data import PreferencePair, RatedClip


def make_pairs(candidates: Sequence["RatedClip"], *, per_prompt: int | None = None, seed: int = 0,
               cross_system_only: bool = False) -> list["PreferencePair"]:
    """Pair clips made for the same instruction. Candidates are grouped by ``metadata['prompt_id']``
    when present, else by the instruction itself. All combinations are used unless ``per_prompt``
    caps them (a seeded random subset). Which clip becomes A is randomised so that systems or
    sampling settings are not tied to one side."""
    from musicjudge.reward.data import PreferencePair

    if per_prompt is not None and per_prompt < 1:
        raise ConfigError(f"--per-prompt {per_prompt}: use a positive number (or leave it out for all pairs)")
    groups: dict[object, list[RatedClip]] = defaultdict(list)
    for clip in candidates:
        groups[clip.metadata.get("prompt_id", clip.instruction)].append(clip)
    rng = random.Random(seed)
    pairs: list[PreferencePair] = []
    for key in groups:  # insertion order = manifest order, reproducible
        clips = groups[key]
        combos = [(a, b) for a, b in itertools.combinations(clips, 2)
                  if not (cross_system_only and a.system and a.system == b.system)]
        if per_prompt is not None and len(combos) > per_prompt:
            combos = rng.sample(combos, per_prompt)
        for a, b in combos:
            if rng.random() < 0.5:
                a, b = b, a
            prompt_id = a.metadata.get("prompt_id")
            pairs.append(PreferencePair(
                id=f"{a.id}~{b.id}", instruction=a.instruction, audio_a=a.audio, audio_b=b.audio,
                system_a=a.system, system_b=b.system,
                metadata={k: v for k, v in {"prompt_id": prompt_id, "clip_a": a.id, "clip_b": b.id}.items() if v is not None},
            ))
    return pairs


def pair_candidates_file(candidates_path: str | Path, out_path: str | Path, **kwargs) -> list["PreferencePair"]:
    """Read a candidates manifest (rated-clip schema: id, text, lyrics, ref_audio, audio, system),
    write the pairs manifest, return the pairs."""
    from musicjudge.reward.data import read_rated, write_pairs

    candidates = read_rated(candidates_path)
    pairs = make_pairs(candidates, **kwargs)
    if not pairs:
        raise ManifestError(f"{candidates_path}: no instruction has two or more candidates; generate --n 2 or more per prompt")
    write_pairs(out_path, pairs)
    return pairs
