"""Reference points for reward models, each existing once (same ``score(items)`` interface).
Their spec names (``musicjudge.reward.registry``) say what they are:

- ``random[:SEED]`` :class:`RandomReward`: a fixed pseudo-random score per (seed, item), drawn
  from a hash, so it does not depend on the batch or its order (expected accuracy 50 %).
- ``text-ridge[:ENCODER]`` :class:`TextRidgeBaseline`: no trained head. Alignment = cosine
  between the clip's standardised audio features and (a) the text embedding mapped into the
  audio-feature space by a closed-form ridge regression fitted on (text, better clip) examples,
  (b) the reference clip's features when there is one (mean of the available cosines).
  Musicality = cosine to the mean fitting clip ("sounds typical").
- ``clap-cosine[:ENCODER]`` :class:`JointCosineBaseline`: zero-shot, for encoders with one
  audio/text space (CLAP, MuQ-MuLan). Alignment = cosine of the clip to the text and to the
  reference clip; musicality = cosine to a "good music" prompt minus cosine to a "bad music"
  prompt.
- ``loss-profile[:LM]`` :class:`LossProfileReward`: the probe pillar's label-free profile score
  under a music LM, as a musicality-only score (alignment NaN).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ModelLoadError
from musicjudge.io import stable_hash
from musicjudge.reward.base import ScoreItem, item_key
from musicjudge.reward.data import DIMENSIONS, PreferencePair
from musicjudge.reward.model import embed_for_items, instruction_inputs, instruction_texts


def _unit(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class RandomReward:
    """Chance baseline: uniform scores in [0, 1) from a hash of (seed, dimension, item)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.name = f"random:{self.seed}"
        self.fingerprint = f"random-{self.seed}"
        self.failures: dict[str, str] = {}

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        out = {}
        for dim in DIMENSIONS:
            vals = []
            for it in items:
                h = hashlib.sha256(f"{self.seed}|{dim}|{item_key(it)}".encode()).digest()
                vals.append(int.from_bytes(h[:8], "little") / 2**64)
            out[dim] = np.asarray(vals, dtype=np.float64)
        return out


class TextRidgeBaseline:
    """Ridge map from text embeddings to standardised audio features, fitted in closed form."""

    def __init__(self, encoder, ridge: float = 1.0, name: str = "text-ridge") -> None:
        self.encoder = encoder
        self.ridge = ridge
        self.name = name
        self.failures: dict[str, str] = {}
        self.mean = self.std = self.map = self.centroid = None

    def fit(self, pairs: Sequence[PreferencePair]) -> "TextRidgeBaseline":
        """Fit feature statistics and the text->audio ridge map on the better clip of each pair
        (for alignment pairs the better clip is the one that matches the text)."""
        clips, texts = [], []
        for p in pairs:
            pref = p.preference.get("alignment") or p.preference.get("musicality")
            if pref in ("A", "B") and p.instruction.text:
                clips.append(p.audio_a if pref == "A" else p.audio_b)
                texts.append(p.instruction.text)
        if not clips:
            raise ModelLoadError(f"{self.name}: no labelled pair with a text to fit on; pass pairs with preferences and prompts")
        audio = self.encoder.embed_audio(clips)
        ok = np.all(np.isfinite(audio), axis=1)
        audio, texts = audio[ok], [t for t, k in zip(texts, ok) if k]
        text = self.encoder.embed_text(texts)
        self.mean, self.std = audio.mean(0), audio.std(0) + 1e-4
        z = (audio - self.mean) / self.std
        gram = text.T @ text + self.ridge * np.eye(text.shape[1])
        self.map = np.linalg.solve(gram, text.T @ z)
        self.centroid = z.mean(0)
        return self

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        if self.map is None:
            raise RuntimeError("TextRidgeBaseline.fit(pairs) must be called before score()")
        items = list(items)
        self.encoder.failures.clear()
        paths = [it.audio for it in items] + [it.instruction.ref_audio for it in items if it.instruction.ref_audio]
        feats = embed_for_items(self.encoder, paths, instruction_texts([it.instruction for it in items]))
        clip = np.stack([feats.audio[feats.audio_index[it.audio]] for it in items])
        text, _, ref, present = instruction_inputs(feats, [it.instruction for it in items], clip.shape[1],
                                                   feats.text.shape[1] if feats.text.size else 384)
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


GOOD_MUSIC_PROMPT = "a high quality, well played, pleasant piece of music"
BAD_MUSIC_PROMPT = "a low quality, noisy, out of tune, badly played recording"


class JointCosineBaseline:
    """Zero-shot cosine over an encoder with ``embed_audio(paths) -> [N, D]`` and
    ``embed_text(texts) -> [N, D]`` in one shared space (CLAP-style)."""

    def __init__(self, encoder: Any, name: str = "clap-cosine") -> None:
        for method in ("embed_audio", "embed_text"):
            if not hasattr(encoder, method):
                raise ModelLoadError(f"{name}: encoder {type(encoder).__name__} has no {method}(); "
                                     "the joint cosine baseline needs a joint audio/text encoder")
        self.encoder = encoder
        self.name = name
        self.fingerprint = f"{name}-{getattr(encoder, 'fingerprint', type(encoder).__name__)}"
        self.failures: dict[str, str] = {}

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        n = len(items)
        audio = _unit(self.encoder.embed_audio([it.audio for it in items]))
        if audio.shape[0] != n:
            raise ModelLoadError(f"{type(self.encoder).__name__}.embed_audio returned {audio.shape[0]} rows for {n} clips")
        prompts = _unit(self.encoder.embed_text([GOOD_MUSIC_PROMPT, BAD_MUSIC_PROMPT]))
        if prompts.shape[1] != audio.shape[1]:
            raise ModelLoadError(f"{self.name}: text ({prompts.shape[1]}-d) and audio ({audio.shape[1]}-d) embeddings "
                                 "differ in size; use a joint encoder such as CLAP")
        musicality = audio @ prompts[0] - audio @ prompts[1]
        sims = np.zeros(n)
        counts = np.zeros(n)
        text_idx = [i for i, it in enumerate(items) if it.instruction.text]
        if text_idx:
            t = _unit(self.encoder.embed_text([items[i].instruction.text for i in text_idx]))
            sims[text_idx] += np.sum(audio[text_idx] * t, axis=1)
            counts[text_idx] += 1
        ref_idx = [i for i, it in enumerate(items) if it.instruction.ref_audio]
        if ref_idx:
            r = _unit(self.encoder.embed_audio([items[i].instruction.ref_audio for i in ref_idx]))
            sims[ref_idx] += np.sum(audio[ref_idx] * r, axis=1)
            counts[ref_idx] += 1
        alignment = np.where(counts > 0, sims / np.maximum(counts, 1), np.nan)
        self.failures = dict(getattr(self.encoder, "failures", {}) or {})
        return {"musicality": musicality, "alignment": alignment}


class LossProfileReward:
    """Label-free musicality: the probe pillar's profile score (peak sensitivity of a music LM
    to short noise injections, normalised by the clip's own loss variability). Higher = the LM
    reacts more sharply to a break in the music, read as "more structured"."""

    def __init__(self, lm_spec: str = "builtin", **profile_kwargs: Any) -> None:
        from musicjudge.lm.loader import load_music_lm

        self.lm = load_music_lm(lm_spec)
        self.profile_kwargs = profile_kwargs
        self.name = f"loss-profile:{lm_spec}"
        self.fingerprint = stable_hash(f"loss-profile-{lm_spec}-{stable_hash(profile_kwargs)}")
        self.failures: dict[str, str] = {}
        # The score ignores the instruction: one clip under several instructions is scored once.
        self._by_path: dict[str, float] = {}

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        from musicjudge.probe.scoring import profile_scores

        todo = list(dict.fromkeys(it.audio for it in items if it.audio not in self._by_path))
        if todo:
            frame = profile_scores(self.lm, todo, progress=False, **self.profile_kwargs)
            errors = frame["error"] if "error" in frame else [None] * len(todo)
            for p, v, err in zip(todo, frame["profile_score"].to_numpy(dtype=np.float64), errors):
                self._by_path[p] = float(v)
                if isinstance(err, str) and err:
                    self.failures[p] = err
        vals = np.array([self._by_path[it.audio] for it in items], dtype=np.float64)
        return {"musicality": vals, "alignment": np.full(len(items), np.nan)}
