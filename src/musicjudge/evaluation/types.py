"""The values ``musicjudge eval`` shares between scoring (:mod:`musicjudge.evaluation.runner`)
and its outputs (:mod:`musicjudge.evaluation.report`): the metric names, the profile-score
settings and the result. A leaf module (imports nothing else of musicjudge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "musicjudge-eval/1"
# Per-clip metrics; higher is better for all but orig_loss (lower = more familiar to the LM).
METRICS = ("musicality", "alignment", "profile_score", "profile_adjusted", "orig_loss")
WIN_METRICS = ("musicality", "alignment", "profile_score", "profile_adjusted")


@dataclass(frozen=True)
class ProfileSettings:
    """The profile-score protocol (as ``musicjudge probe profile``)."""

    onsets_s: tuple[float, ...] = (3.0, 5.0, 7.0)
    lengths_frames: tuple[int, ...] = (5, 10)
    level_db: float = -20.0
    crop_duration: float | None = None


@dataclass
class EvalResult:
    """What :func:`evaluate` wrote (paths) and the headline numbers (``results``)."""

    out_dir: Path
    report: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str):
        """One of the written tables as a DataFrame: ``clips``, ``systems``, ``winrates``,
        ``distances``, ``validity`` or ``errors``."""
        import pandas as pd

        tables = ("clips", "systems", "winrates", "distances", "validity", "errors")
        if name not in tables or name not in self.files:
            raise KeyError(f"{name!r}: no such table; one of {', '.join(tables)}")
        path = Path(self.files[name])
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True) if path.stat().st_size else pd.DataFrame()
        return pd.read_csv(path)
