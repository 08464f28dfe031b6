"""Bridges between musicjudge's reward-model interface and the reference CMI-RewardBench one.

Reference interface: a class with an ``sr`` property and
``score_batch(inputs, batch_size, max_dur, **kw) -> array [N, 2]`` (column 0 alignment, column 1
musicality); each input has ``audio`` (path or waveform tensor), ``text``, ``lyrics``,
``ref_audio`` (path or None); the constructor accepts ``checkpoint`` and ``device``.

- :class:`ReferenceBenchmarkAdapter` exposes any musicjudge reward model that way
  (``--model musicjudge.reward.adapters:ReferenceBenchmarkAdapter`` in the reference code).
- :class:`FromReferenceInterface` wraps such a class so musicjudge can use it (done
  automatically by ``load_reward_model("module:Class")``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, MusicjudgeError
from musicjudge.reward.base import ScoreItem, check_scores, load_reward_model
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


class FromReferenceInterface:
    """A reference-interface model (``score_batch`` -> [N, 2]) as a musicjudge reward model.
    Items that make the wrapped model raise are retried one by one; failures get NaN."""

    def __init__(self, model: Any, *, batch_size: int = 8, max_dur: float | None = None) -> None:
        if not hasattr(model, "score_batch"):
            raise ConfigError(f"{type(model).__name__}: has no score_batch(inputs, batch_size, max_dur)")
        self.model = model
        self.batch_size = batch_size
        self.max_dur = max_dur
        self.failures: dict[str, str] = {}

    @property
    def name(self) -> str:
        return type(self.model).__name__

    def _call(self, items: list[ScoreItem]) -> np.ndarray:
        inputs = [{"audio": it.audio, "text": it.instruction.text, "lyrics": it.instruction.lyrics,
                   "ref_audio": it.instruction.ref_audio} for it in items]
        out = np.asarray(self.model.score_batch(inputs, batch_size=self.batch_size, max_dur=self.max_dur), dtype=np.float64)
        if out.shape != (len(items), 2):
            raise MusicjudgeError(f"{self.name}.score_batch returned shape {out.shape}, expected ({len(items)}, 2)")
        return out

    def score(self, items: Sequence[ScoreItem]) -> dict[str, np.ndarray]:
        items = list(items)
        self.failures = {}
        try:
            out = self._call(items) if items else np.zeros((0, 2))
        except Exception:  # noqa: BLE001 - reference models abort the batch on one bad clip: isolate it
            out = np.full((len(items), 2), np.nan)
            for i, item in enumerate(items):
                try:
                    out[i] = self._call([item])[0]
                except Exception as e:  # noqa: BLE001
                    self.failures[item.audio] = f"{item.audio}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return {"alignment": out[:, 0], "musicality": out[:, 1]}


__all__ = ["ReferenceBenchmarkAdapter", "FromReferenceInterface", "DIMENSIONS"]
