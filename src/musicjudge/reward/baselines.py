"""Simple reference points for reward models (same ``score(items)`` interface).

- :class:`RandomBaseline`: seeded random scores (expected pairwise accuracy 50 %).
- :class:`CosineBaseline`: no trained head. Alignment = cosine between the clip's standardised
  audio features and (a) the MiniLM text embedding mapped into the audio-feature space by a
  closed-form ridge regression fitted on (text, clip) examples, and (b) the reference clip's
  features when there is one (the mean of the available cosines). Musicality = cosine between the
  clip's features and the mean features of the fitting clips ("sounds typical").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from musicjudge.reward.base import ScoreItem
from musicjudge.reward.data import DIMENSIONS, PreferencePair
from musicjudge.reward.model import embed_for_items, instruction_inputs, instruction_texts


class RandomBaseline:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.failures: dict[str, str] = {}

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        return {d: self.rng.standard_normal(len(items)) for d in DIMENSIONS}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


class CosineBaseline:
    name = "cosine"

    def __init__(self, encoder, ridge: float = 1.0) -> None:
        self.encoder = encoder
        self.ridge = ridge
        self.failures: dict[str, str] = {}
        self.mean = self.std = self.map = self.centroid = None

    def fit(self, pairs: Sequence[PreferencePair]) -> "CosineBaseline":
        """Fit feature statistics and the text->audio ridge map on the better clip of each pair
        (for alignment pairs the better clip is the one that matches the text)."""
        clips, texts = [], []
        for p in pairs:
            pref = p.preference.get("alignment") or p.preference.get("musicality")
            if pref in ("A", "B") and p.instruction.text:
                clips.append(p.audio_a if pref == "A" else p.audio_b)
                texts.append(p.instruction.text)
        audio = self.encoder.embed_audio(clips)
        ok = np.all(np.isfinite(audio), axis=1)
        audio, texts = audio[ok], [t for t, k in zip(texts, ok) if k]
        text = self.encoder.embed_text(texts)
        self.mean, self.std = audio.mean(0), audio.std(0) + 1e-4
        z = (audio - self.mean) / self.std
        # ridge regression text -> standardised audio features (closed form)
        gram = text.T @ text + self.ridge * np.eye(text.shape[1])
        self.map = np.linalg.solve(gram, text.T @ z)
        self.centroid = z.mean(0)
        return self

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        if self.map is None:
            raise RuntimeError("CosineBaseline.fit(pairs) must be called before score()")
        items = list(items)
        self.encoder.failures.clear()
        paths = [it.audio for it in items] + [it.instruction.ref_audio for it in items if it.instruction.ref_audio]
        feats = embed_for_items(self.encoder, paths, instruction_texts([it.instruction for it in items]))
        clip = np.stack([feats.audio[feats.audio_index[it.audio]] for it in items])
        text, _, ref, present = instruction_inputs(feats, [it.instruction for it in items], clip.shape[1], feats.text.shape[1] if feats.text.size else 384)
        z = _unit((clip - self.mean) / self.std)
        sims = np.zeros((len(items), 2))
        count = np.zeros(len(items))
        if present[:, 0].any():
            t = _unit(text @ self.map)
            sims[:, 0] = np.where(present[:, 0], np.sum(z * t, -1), 0.0)
            count += present[:, 0]
        if present[:, 2].any():
            r = _unit((ref - self.mean) / self.std)
            sims[:, 1] = np.where(present[:, 2], np.sum(z * r, -1), 0.0)
            count += present[:, 2]
        alignment = sims.sum(1) / np.maximum(count, 1)
        musicality = z @ _unit(self.centroid[None])[0]
        self.failures = dict(self.encoder.failures)
        return {"musicality": musicality, "alignment": alignment}
