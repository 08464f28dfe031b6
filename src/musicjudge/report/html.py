"""Generic self-contained HTML report builder (used by ``probe report`` and the benchmark)."""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import platform
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from musicjudge.errors import ConfigError
from musicjudge.io import atomic_write_text

# Distributions whose versions a report records (looked up without importing them, so a report
# never pays for importing torch).
DEFAULT_PACKAGES = (
    "musicjudge", "torch", "transformers", "numpy", "scipy", "pandas", "pyarrow",
    "matplotlib", "soundfile", "soxr", "librosa", "safetensors",
)


def library_versions(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Python/platform plus the installed version of each distribution ("absent" if missing)."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class _Section:
    kind: str  # text | table | figure | config | versions | html
    title: str
    anchor: str
    body: Any = None
    caption: str = ""
    extra: dict = field(default_factory=dict)


class HtmlReport:
    """Accumulate sections, then :meth:`write` one HTML file with everything inlined."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[_Section] = []
        self._anchors: set[str] = set()

    # -- building ---------------------------------------------------------------------------
    def _anchor(self, title: str) -> str:
        base = _slug(title)
        anchor, i = base, 2
        while anchor in self._anchors:
            anchor, i = f"{base}-{i}", i + 1
        self._anchors.add(anchor)
        return anchor

    def add_text(self, title: str, text: str | Iterable[str]) -> "HtmlReport":
        """A section of plain text; blank lines (or list items) separate paragraphs."""
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)] if isinstance(text, str) else list(text)
        self.sections.append(_Section("text", title, self._anchor(title), [p for p in paragraphs if p]))
        return self

    def add_table(self, title: str, df, caption: str = "", max_rows: int = 200, float_format: str = "{:.4g}") -> "HtmlReport":
        """A table from a pandas DataFrame (index dropped unless it is named); long tables are cut
        to ``max_rows`` with a note, the full data belongs in a CSV/Parquet next to the report."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise ConfigError(f"report table {title!r}: expected a pandas DataFrame, got {type(df).__name__}")
        shown = df if any(n is not None for n in df.index.names) else df.reset_index(drop=True)
        if any(n is not None for n in shown.index.names):
            shown = shown.reset_index()
        note = ""
        if len(shown) > max_rows:
            note = f"showing the first {max_rows} of {len(shown)} rows"
            shown = shown.head(max_rows)
        columns = [str(c) for c in shown.columns]
        rows = [[_fmt_cell(v, float_format) for v in rec] for rec in shown.itertuples(index=False, name=None)]
        self.sections.append(
            _Section("table", title, self._anchor(title), {"columns": columns, "rows": rows}, caption, {"note": note})
        )
        return self

    def add_figure(self, title: str, figure, caption: str = "") -> "HtmlReport":
        """A PNG figure: a path to a .png file, raw PNG bytes, or a matplotlib Figure."""
        if isinstance(figure, (str, Path)):
            path = Path(figure)
            if not path.is_file():
                raise ConfigError(f"{path}: figure file not found; create it before adding it to the report")
            png = path.read_bytes()
            source = path.name
        elif isinstance(figure, (bytes, bytearray)):
            png, source = bytes(figure), ""
        elif hasattr(figure, "savefig"):
            buf = io.BytesIO()
            figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            png, source = buf.getvalue(), ""
        else:
            raise ConfigError(f"report figure {title!r}: expected a PNG path, PNG bytes or a matplotlib Figure")
        if not png.startswith(b"\x89PNG"):
            raise ConfigError(f"report figure {title!r}: data is not a PNG image; save figures as .png")
        data = base64.b64encode(png).decode("ascii")
        self.sections.append(_Section("figure", title, self._anchor(title), data, caption, {"source": source}))
        return self

    def add_audio(self, title: str, clips: Iterable[dict], caption: str = "") -> "HtmlReport":
        """Audio players, one row per clip: a dict with ``label``, ``audio`` (bytes, embedded as
        a base64 data URI with ``mime``, default audio/wav; or a str, used as a relative link or
        URL) and optional ``details`` (text shown next to the player)."""
        rows = []
        for clip in clips:
            audio = clip.get("audio")
            if isinstance(audio, (bytes, bytearray)):
                src = f"data:{clip.get('mime', 'audio/wav')};base64," + base64.b64encode(bytes(audio)).decode("ascii")
            elif isinstance(audio, (str, Path)):
                src = str(audio)
            else:
                raise ConfigError(f"report audio {title!r}: clip {clip.get('label')!r} needs audio bytes or a link")
            rows.append({"label": str(clip.get("label", "")), "src": src, "details": str(clip.get("details", ""))})
        self.sections.append(_Section("audio", title, self._anchor(title), rows, caption))
        return self

    def add_config(self, config: dict, title: str = "Configuration") -> "HtmlReport":
        """The effective configuration, as pretty-printed JSON."""
        text = json.dumps(config, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        self.sections.append(_Section("config", title, self._anchor(title), text))
        return self

    def add_versions(self, versions: dict[str, str] | None = None, title: str = "Versions") -> "HtmlReport":
        """Library versions (defaults to :func:`library_versions`)."""
        self.sections.append(_Section("versions", title, self._anchor(title), versions or library_versions()))
        return self

    # -- output -----------------------------------------------------------------------------
    def render(self) -> str:
        from jinja2 import Environment, PackageLoader

        env = Environment(loader=PackageLoader("musicjudge.report", "templates"), autoescape=True)  # every value is escaped
        template = env.get_template("report.html.j2")
        generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return template.render(title=self.title, subtitle=self.subtitle, sections=self.sections, generated=generated)

    def write(self, path: str | Path) -> Path:
        """Write the report atomically and return its path."""
        path = Path(path)
        atomic_write_text(path, self.render())
        return path


def _fmt_cell(value: Any, float_format: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return float_format.format(value)
    try:
        import numpy as np

        if isinstance(value, np.floating):
            return "" if np.isnan(value) else float_format.format(float(value))
    except ImportError:  # pragma: no cover
        pass
    return str(value)
