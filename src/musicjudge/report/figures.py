"""Saving matplotlib figures as PNG files, the one way every package does it."""

from __future__ import annotations

import io
from pathlib import Path

from musicjudge.io import atomic_write_bytes


def save_png(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Render ``fig`` to ``path`` atomically (readers never see a half-written PNG) and release it.

    Works for pyplot figures and for bare ``matplotlib.figure.Figure`` objects."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)  # no-op for figures pyplot does not manage
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
