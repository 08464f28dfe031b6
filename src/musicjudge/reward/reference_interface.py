"""Models written for the reference CMI-RewardBench interface, used as musicjudge reward models.

Such a model has an ``sr`` property and ``score_batch(inputs, batch_size, max_dur) -> [N, 2]``
(column 0 alignment, column 1 musicality), each input ``{"audio", "text", "lyrics",
"ref_audio"}``. (The opposite direction, a musicjudge model behind that interface, is
:class:`musicjudge.reward.adapters.ReferenceBenchmarkAdapter`.)"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, MusicjudgeError
from musicjudge.reward.base import ScoreItem


class FromReferenceInterface:
    """A reference-interface model (``score_batch`` -> [N, 2]) as a musicjudge reward model.
    Items that make the wrapped model raise are retried one by one; failures get NaN."""

    def __init__(self, model: Any, *, batch_size: int = 8, max_dur: float | None = 120.0) -> None:
        if not hasattr(model, "score_batch"):
            raise ConfigError(f"{type(model).__name__}: has no score_batch(inputs, batch_size, max_dur)")
        self.model = model
        self.batch_size = batch_size
        self.max_dur = max_dur
        self.fingerprint = getattr(model, "fingerprint", None)
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
