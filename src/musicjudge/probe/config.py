"""Experiment spec of a probe run (``ProbeConfig``): models, data sets, crop, perturbation
grid, seeds, conditioning and analysis settings. Loaded from YAML (``configs/probe_*.yaml``),
overridden by CLI flags, and saved with every run (``RUN_DIR/config.json``).

Defaults follow the protocol: mono audio at the model's rate (32 kHz for MusicGen), 15 s
crops, white noise *replacing* the music from 5.0 s for L in {5, 10, 50, 100, 150, 200}
frames, and adjacent-block swaps at 5.0 s with blocks {1, 2, 5, 10, 35, 50, 70, 100, 150, 200}."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from musicjudge.errors import ConfigError

PAPER_NOISE_LENGTHS = [5, 10, 50, 100, 150, 200]
PAPER_SHUFFLE_BLOCKS = [1, 2, 5, 10, 35, 50, 70, 100, 150, 200]
SAVE_CURVES = ("codebooks", "mean", "none")


def _floats(name: str, value: Any) -> list[float]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r}: expected numbers") from None
        if not math.isfinite(f):
            raise ConfigError(f"{name}={value!r}: values must be finite")
        out.append(f)
    return out


def _ints(name: str, value: Any, minimum: int = 1) -> list[int]:
    out = []
    for f in _floats(name, value):
        if f != int(f) or f < minimum:
            raise ConfigError(f"{name}={value!r}: expected whole numbers >= {minimum}")
        out.append(int(f))
    return out


def _strs(name: str, value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"{name}={value!r}: expected non-empty strings")
    return list(items)


@dataclass
class NoiseGrid:
    """Noise injections: every colour x mode x level x onset x length (lengths in frames)."""

    enabled: bool = True
    colours: list[str] = field(default_factory=lambda: ["white"])
    modes: list[str] = field(default_factory=lambda: ["replace"])
    onsets_s: list[float] = field(default_factory=lambda: [5.0])
    lengths_frames: list[int] = field(default_factory=lambda: list(PAPER_NOISE_LENGTHS))
    levels_db: list[float] = field(default_factory=lambda: [-20.0])
    level_ref: str = "dbfs"

    def __post_init__(self) -> None:
        self.colours = _strs("noise.colours", self.colours)
        self.modes = _strs("noise.modes", self.modes)
        self.onsets_s = _floats("noise.onsets_s", self.onsets_s)
        if any(o < 0 for o in self.onsets_s):
            raise ConfigError(f"noise.onsets_s={self.onsets_s}: onsets must be >= 0 s")
        self.lengths_frames = _ints("noise.lengths_frames", self.lengths_frames)
        self.levels_db = _floats("noise.levels_db", self.levels_db)


@dataclass
class ShuffleGrid:
    """Block shuffles: every kind x block size (frames), starting at ``onset_s``."""

    enabled: bool = True
    kinds: list[str] = field(default_factory=lambda: ["swap_adjacent"])
    onset_s: float = 5.0
    blocks_frames: list[int] = field(default_factory=lambda: list(PAPER_SHUFFLE_BLOCKS))
    range_end_s: float | None = None

    def __post_init__(self) -> None:
        self.kinds = _strs("shuffle.kinds", self.kinds)
        self.onset_s = _floats("shuffle.onset_s", self.onset_s)[0]
        self.blocks_frames = _ints("shuffle.blocks_frames", self.blocks_frames)
        if self.range_end_s is not None:
            self.range_end_s = _floats("shuffle.range_end_s", self.range_end_s)[0]


@dataclass
class Analysis:
    """Profile-analysis settings (see musicjudge.probe.profile)."""

    consecutive: int = 5
    smooth_window: int = 9
    tol_frac: float = 0.1
    offset_window: int = 5
    short_max_frames: int = 10
    long_min_frames: int = 50


@dataclass
class DatasetSpec:
    """A data set: a folder of audio files or a JSONL manifest (``path``, optional ``id``,
    ``text``, anything else is kept as metadata; relative paths are relative to the manifest)."""

    name: str
    path: str
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None:
            try:
                ok = float(self.limit) == int(self.limit) and int(self.limit) >= 1
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError(f"dataset {self.name!r}: limit={self.limit!r}: use a whole number of clips >= 1 "
                                  "(or leave it out for every clip)")
            self.limit = int(self.limit)

    @classmethod
    def parse(cls, value: Any) -> "DatasetSpec":
        """From ``{"name": .., "path": ..}``, ``"name=path"`` or a bare path (name = its stem)."""
        if isinstance(value, DatasetSpec):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown or "path" not in value:
                raise ConfigError(f"dataset {value!r}: expected keys name, path (and optional limit)")
            path = str(value["path"])
            return cls(name=str(value.get("name") or _default_name(path)), path=path, limit=value.get("limit"))
        if isinstance(value, (str, os.PathLike)):
            text = str(value)
            m = re.match(r"^([A-Za-z0-9_.-]+)=(.+)$", text)
            if m:
                return cls(name=m.group(1), path=m.group(2))
            return cls(name=_default_name(text), path=text)
        raise ConfigError(f"dataset {value!r}: expected 'name=path', a path or a mapping with name/path")


def _default_name(path: str) -> str:
    p = Path(path.rstrip("/"))
    return (p.stem if p.suffix == ".jsonl" else p.name) or "data"


def model_label(spec: str) -> tuple[str, str]:
    """(label, spec) of a ``--model`` value: ``label=spec`` or a spec whose label is derived
    (``builtin``; the last part of a hub id / path; the class name of ``module:Class``)."""
    m = re.match(r"^([A-Za-z0-9_.-]+)=(.+)$", spec)
    if m:
        return m.group(1), m.group(2)
    if ":" in spec and not os.path.exists(spec):
        return spec.rsplit(":", 1)[1].split(".")[-1], spec
    return Path(spec.rstrip("/")).name or spec, spec


@dataclass
class ProbeConfig:
    """Everything that defines a probe run. ``to_dict()`` is what the run saves."""

    name: str = "probe"
    models: list[str] = field(default_factory=lambda: ["builtin"])
    datasets: list[DatasetSpec] = field(default_factory=list)
    crop_start_s: float = 0.0
    crop_duration_s: float | None = 15.0
    min_recovery_s: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0])
    condition: str | None = None
    condition_from_manifest: bool = False
    melody: str | None = None  # reference audio file whose chroma conditions MusicGen-Melody (all clips)
    noise: NoiseGrid = field(default_factory=NoiseGrid)
    shuffle: ShuffleGrid = field(default_factory=ShuffleGrid)
    analysis: Analysis = field(default_factory=Analysis)
    save_curves: str = "codebooks"
    batch_size: int | None = None  # None: the engine picks (1 on CPU, 8 on GPU)
    device: str | None = None
    dtype: str | None = None
    retry_errors: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.noise, dict):
            self.noise = _build(NoiseGrid, self.noise, "noise")
        if isinstance(self.shuffle, dict):
            self.shuffle = _build(ShuffleGrid, self.shuffle, "shuffle")
        if isinstance(self.analysis, dict):
            self.analysis = _build(Analysis, self.analysis, "analysis")
        self.models = _strs("models", self.models) if self.models else []
        self.datasets = [DatasetSpec.parse(d) for d in (self.datasets or [])]
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ConfigError(f"datasets {names}: names must be unique; name them with name=path")
        labels = [model_label(m)[0] for m in self.models]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"models {self.models}: labels must be unique; name them with label=spec")
        self.seeds = _ints("seeds", self.seeds, minimum=0)
        self.crop_start_s = _floats("crop_start_s", self.crop_start_s)[0]
        if self.crop_start_s < 0:
            raise ConfigError(f"crop_start_s={self.crop_start_s:g}: must be >= 0 seconds (the crop starts that far into each clip)")
        if self.crop_duration_s is not None:
            self.crop_duration_s = _floats("crop_duration_s", self.crop_duration_s)[0]
            if self.crop_duration_s <= 0:
                raise ConfigError(f"crop_duration_s={self.crop_duration_s}: must be > 0 (or null for the whole clip)")
        if self.save_curves not in SAVE_CURVES:
            raise ConfigError(f"save_curves={self.save_curves!r}: expected one of {', '.join(SAVE_CURVES)}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ConfigError(f"batch_size={self.batch_size}: must be >= 1")
        if not (self.noise.enabled or self.shuffle.enabled):
            raise ConfigError("noise and shuffle are both disabled; enable at least one perturbation family")

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "ProbeConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        return _build(cls, copy.deepcopy(data), source)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ProbeConfig":
        path = Path(path)
        data = read_yaml_file(path, not_found="config file not found; check the path (examples in configs/probe_*.yaml)")
        cfg = cls.from_dict(data, source=str(path))
        # relative data paths in a config file are relative to the file
        for d in cfg.datasets:
            if not Path(d.path).is_absolute() and not Path(d.path).exists() and (path.parent / d.path).exists():
                d.path = str(path.parent / d.path)
        return cfg

    def override(self, **changes: Any) -> "ProbeConfig":
        """Copy with the given non-None fields replaced (what CLI flags do)."""
        data = self.to_dict()
        for key, value in changes.items():
            if value is None:
                continue
            if "." in key:
                group, sub = key.split(".", 1)
                data[group][sub] = value
            else:
                data[key] = value
        return ProbeConfig.from_dict(data)

    def scoring_fingerprint(self) -> dict[str, Any]:
        """Settings that change scored numbers; a run directory only resumes under the same."""
        d = self.to_dict()
        fingerprint = {k: d[k] for k in ("crop_start_s", "crop_duration_s", "seeds", "condition", "condition_from_manifest",
                                         "noise", "shuffle", "save_curves")}
        if d["melody"]:  # only when set, so run folders made before the field existed still resume
            fingerprint["melody"] = d["melody"]
        return fingerprint


def read_yaml_file(path: str | os.PathLike, *, not_found: str) -> Any:
    """The parsed YAML document of a settings file (``{}`` when empty). Every way a user can get
    the file wrong is one ConfigError naming it: missing (``"<path>: <not_found>"``), not
    UTF-8 text (an audio or binary file passed by mistake) or invalid YAML."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {not_found}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file; pass the YAML settings file here") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]}); fix the syntax") from None


def _build(cls, data: dict, source: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} in {cls.__name__}; allowed: {', '.join(sorted(allowed))}")
    try:
        return cls(**data)
    except TypeError as e:
        raise ConfigError(f"{source}: {e}; check the config keys") from None
