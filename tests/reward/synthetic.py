"""Synthetic reward data with known truth for tests: short tone melodies whose tempo and
timbre are described by the instruction text; noise makes a clip less musical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from musicjudge.reward.data import Instruction, PreferencePair

SR = 16000
TEMPI = {"slow": 2.0, "fast": 7.0}  # notes per second
TIMBRES = ("sine", "square")


def tone_melody(tempo: str, timbre: str, noisy: bool, seed: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = TEMPI[tempo]
    n_notes = int(seconds * rate)
    note_len = int(SR / rate)
    pitches = 220.0 * 2 ** (rng.integers(0, 12, n_notes) / 12)
    t = np.arange(note_len) / SR
    env = np.minimum(1.0, np.linspace(0, 8, note_len)) * np.exp(-3 * t)
    notes = []
    for f in pitches:
        phase = 2 * np.pi * f * t
        wave = np.sin(phase) if timbre == "sine" else np.sign(np.sin(phase)) * 0.5
        notes.append(wave * env)
    out = np.concatenate(notes)
    if noisy:
        out = out + rng.normal(0, 0.25, len(out))
    return (0.4 * out / np.abs(out).max()).astype(np.float32)


def make_synthetic_pairs(folder: Path, seeds: range) -> list[PreferencePair]:
    """Musicality pairs (clean vs noisy, same description) and alignment pairs (matching vs
    wrong tempo or timbre); A/B order alternates so position carries no information."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []

    def clip(tempo, timbre, noisy, seed):
        path = folder / f"{tempo}_{timbre}_{'noisy' if noisy else 'clean'}_{seed}.wav"
        if not path.exists():
            sf.write(path, tone_melody(tempo, timbre, noisy, seed), SR)
        return str(path)

    k = 0
    for seed in seeds:
        for tempo in TEMPI:
            for timbre in TIMBRES:
                text = f"a {tempo} melody played on a {'soft sine wave' if timbre == 'sine' else 'buzzy square wave'}"
                good = clip(tempo, timbre, False, seed)
                noisy = clip(tempo, timbre, True, seed)
                # the mismatching clips are the clean clips of the neighbouring descriptions
                other_tempo = clip("fast" if tempo == "slow" else "slow", timbre, False, seed)
                other_timbre = clip(tempo, "square" if timbre == "sine" else "sine", False, seed)
                for worse, dim in ((noisy, "musicality"), (other_tempo, "alignment"), (other_timbre, "alignment")):
                    flip = k % 2 == 1
                    a, b = (worse, good) if flip else (good, worse)
                    pairs.append(PreferencePair(f"p{k}", Instruction(text), a, b, {dim: "B" if flip else "A"}, source="synthetic"))
                    k += 1
    return pairs
