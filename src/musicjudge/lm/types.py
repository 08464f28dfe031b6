"""The value types of music-LM scoring, shared by the scorer base class (:mod:`musicjudge.lm.base`),
the probe engine (:mod:`musicjudge.lm.engine`) and the adapters: :class:`Condition` (what a
model is conditioned on), :func:`make_condition` / :func:`split_condition` and :class:`TokenNLL`
(the per-token result). A leaf module: it imports nothing else of ``musicjudge.lm``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from musicjudge.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch


@dataclass(frozen=True)
class Condition:
    """What a conditional music LM is conditioned on: a text description and/or a reference
    recording (``melody``, an audio file path; MusicGen-Melody takes its chroma). Hashable, so
    a model computes each condition once. A plain ``str`` condition means text only."""

    text: str | None = None
    melody: str | None = None

    def __post_init__(self) -> None:
        if self.text is not None and not isinstance(self.text, str):
            raise ConfigError(f"condition text {self.text!r}: expected a string")
        object.__setattr__(self, "text", self.text or None)
        object.__setattr__(self, "melody", str(self.melody) if self.melody else None)

    def __str__(self) -> str:  # what result tables show in their ``condition`` column
        parts = ([self.text] if self.text else []) + ([f"melody={self.melody}"] if self.melody else [])
        return " | ".join(parts)


def make_condition(text: str | None = None, melody: str | None = None) -> "str | Condition | None":
    """The condition to pass to a model: the plain text when there is no melody reference (what
    every text-conditioned model takes), else a :class:`Condition`."""
    if not melody:
        return text or None
    return Condition(text=text, melody=str(melody))


def split_condition(condition: "str | Condition | None") -> tuple[str | None, str | None]:
    """``(text, melody path)`` of any accepted condition value."""
    if condition is None or isinstance(condition, str):
        return condition or None, None
    if isinstance(condition, Condition):
        return condition.text, condition.melody
    raise ConfigError(f"condition {condition!r}: expected text or a musicjudge.lm.base.Condition")


@dataclass
class TokenNLL:
    """Per-token NLL (nats) of one clip: ``nll`` float32 ``[K, T]`` (codebook ``k`` of frame
    ``t``) and ``mask`` bool ``[K, T]`` (valid entries; invalid ones hold NaN)."""

    nll: "torch.Tensor"
    mask: "torch.Tensor"

    @property
    def num_frames(self) -> int:
        return int(self.nll.shape[-1])

    @property
    def num_codebooks(self) -> int:
        return int(self.nll.shape[0])

    def codebook_curves(self) -> "torch.Tensor":
        """``[K, T]`` per-codebook curves, NaN where not valid."""
        import torch

        return torch.where(self.mask, self.nll, torch.full_like(self.nll, float("nan")))

    def frame_curve(self) -> "torch.Tensor":
        """``[T]`` mean over valid codebooks of each frame (the paper's per-token loss curve);
        NaN for frames with no valid codebook."""
        import torch

        valid = self.mask.float()
        total = torch.where(self.mask, self.nll, torch.zeros_like(self.nll)).sum(0)
        count = valid.sum(0)
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))

    def mean(self) -> float:
        """Mean NLL over all valid tokens (nats/token)."""
        count = int(self.mask.sum())
        if count == 0:
            return float("nan")
        return float(self.nll[self.mask].double().mean())

    def to_frame_table(self, frame_rate: float) -> "pd.DataFrame":
        """Tidy table: ``frame, time_s, nll_mean, nll_cb0 .. nll_cb{K-1}`` (NaN where not valid)."""
        import pandas as pd

        curves = self.codebook_curves().cpu().numpy()
        table = {
            "frame": np.arange(self.num_frames),
            "time_s": np.arange(self.num_frames) / float(frame_rate),
            "nll_mean": self.frame_curve().cpu().numpy(),
        }
        for k in range(self.num_codebooks):
            table[f"nll_cb{k}"] = curves[k]
        return pd.DataFrame(table)
