"""Bridges between musicjudge's reward-model interface and the reference CMI-RewardBench one.

Reference interface: a class with an ``sr`` property and
``score_batch(inputs, batch_size, max_dur, **kw) -> array [N, 2]`` (column 0 alignment, column 1
musicality); each input has ``audio`` (path or waveform tensor), ``text``, ``lyrics``,
``ref_audio`` (path or None); the constructor accepts ``checkpoint`` and ``device``.

- :class:`ReferenceBenchmarkAdapter` exposes any musicjudge reward model that way
  (``--model musicjudge.reward.adapters:ReferenceBenchmarkAdapter`` in the reference code).
- :class:`musicjudge.reward.reference_interface.FromReferenceInterface` wraps such a class so
  musicjudge can use it (done automatically by ``load_reward_model("module:Class")``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError
from musicjudge.reward.base import ScoreItem, check_scores
from musicjudge.reward.registry import load_reward_model
from musicjudge.reward.data import DIMENSIONS, Instruction


class ReferenceBenchmarkAdapter:
    """A musicjudge reward model with the reference benchmark's ``score_batch`` interface."""

    def __init__(self, checkpoint: str = "builtin", device: str | None = None, model: Any = None, **kwargs: Any) -> None:
        self.model = model if model is not None else load_reward_model(checkpoint, device=device, **kwargs)
        self._tmp = tempfile.TemporaryDirectory(prefix="musicjudge-adapter-")

    @property
    def sr(self) -> int:
        encoder = getattr(self.model, "encoder", None)
        return int(getattr(encoder, "sample_rate", 32000))

    def _audio_path(self, audio: Any) -> str:
        """Paths pass through; waveforms (tensor/array at ``self.sr``) are written to a temp WAV."""
        if isinstance(audio, (str, Path)):
            return str(audio)
        import soundfile as sf

        wave = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim > 1:
            wave = wave.reshape(-1, wave.shape[-1]).mean(axis=0)
        import hashlib

        path = Path(self._tmp.name) / f"{hashlib.sha256(wave.tobytes()).hexdigest()[:20]}.wav"
        if not path.exists():
            sf.write(path, wave, self.sr)
        return str(path)

    def score_batch(self, inputs: Sequence[dict[str, Any]], batch_size: int = 8, max_dur: float | None = None, **kwargs: Any) -> np.ndarray:
        """[N, 2] float array: column 0 alignment, column 1 musicality (NaN for unreadable clips)."""
        encoder = getattr(self.model, "encoder", None)
        if max_dur is not None and encoder is not None and hasattr(encoder, "windowing"):
            encoder.windowing.max_seconds = float(max_dur)
        items = []
        for i, inp in enumerate(inputs):
            if "audio" not in inp:
                raise ConfigError(f"input {i}: missing 'audio'; give a path or a waveform")
            ref = inp.get("ref_audio")
            items.append(ScoreItem(self._audio_path(inp["audio"]), Instruction(
                text=inp.get("text") or None, lyrics=inp.get("lyrics") or None,
                ref_audio=self._audio_path(ref) if ref is not None and not isinstance(ref, str) else (ref or None))))
        out = np.full((len(items), 2), np.nan)
        for start in range(0, len(items), max(1, int(batch_size))):
            scores = check_scores(self.model.score(items[start:start + batch_size]), len(items[start:start + batch_size]))
            out[start:start + batch_size, 0] = scores["alignment"]
            out[start:start + batch_size, 1] = scores["musicality"]
        return out


__all__ = ["ReferenceBenchmarkAdapter", "DIMENSIONS"]
