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


def parse_floats(name: str, value: Any) -> list[float]:
    """``value`` (a number or a list) as finite floats; ConfigError naming ``name`` otherwise."""
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


def parse_ints(name: str, value: Any, minimum: int = 1) -> list[int]:
    """``value`` as whole numbers >= ``minimum``; ConfigError naming ``name`` otherwise."""
    out = []
    for f in parse_floats(name, value):
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
        self.onsets_s = parse_floats("noise.onsets_s", self.onsets_s)
        if any(o < 0 for o in self.onsets_s):
            raise ConfigError(f"noise.onsets_s={self.onsets_s}: onsets must be >= 0 s")
        self.lengths_frames = parse_ints("noise.lengths_frames", self.lengths_frames)
        self.levels_db = parse_floats("noise.levels_db", self.levels_db)


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
        self.onset_s = parse_floats("shuffle.onset_s", self.onset_s)[0]
        self.blocks_frames = parse_ints("shuffle.blocks_frames", self.blocks_frames)
        if self.range_end_s is not None:
            self.range_end_s = parse_floats("shuffle.range_end_s", self.range_end_s)[0]


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
    # how the grid meets each clip (plan_perturbations): strict = the configured grid exactly
    # (clips that cannot hold all of it are skipped); otherwise onsets move earlier and lengths
    # that do not fit are dropped, per clip
    strict: bool = False
    min_baseline_s: float = 1.0  # an onset never comes earlier: the pre-onset baseline window
    onset_step_s: float = 1.0  # a moved onset is rounded down to a multiple of this (few distinct plans)
    long_clip_s: float | None = 60.0  # clips this long or longer: crop window centred (crop_window); None: from crop_start_s
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
        self.seeds = parse_ints("seeds", self.seeds, minimum=0)
        self.crop_start_s = parse_floats("crop_start_s", self.crop_start_s)[0]
        if self.crop_start_s < 0:
            raise ConfigError(f"crop_start_s={self.crop_start_s:g}: must be >= 0 seconds (the crop starts that far into each clip)")
        if self.crop_duration_s is not None:
            self.crop_duration_s = parse_floats("crop_duration_s", self.crop_duration_s)[0]
            if self.crop_duration_s <= 0:
                raise ConfigError(f"crop_duration_s={self.crop_duration_s}: must be > 0 (or null for the whole clip)")
        self.min_recovery_s = parse_floats("min_recovery_s", self.min_recovery_s)[0]
        if self.min_recovery_s < 0:
            raise ConfigError(f"min_recovery_s={self.min_recovery_s:g}: must be >= 0 seconds (--min-recovery)")
        self.min_baseline_s = parse_floats("min_baseline_s", self.min_baseline_s)[0]
        if self.min_baseline_s < 0:
            raise ConfigError(f"min_baseline_s={self.min_baseline_s:g}: must be >= 0 seconds (--min-baseline)")
        self.onset_step_s = parse_floats("onset_step_s", self.onset_step_s)[0]
        if self.onset_step_s <= 0:
            raise ConfigError(f"onset_step_s={self.onset_step_s:g}: must be > 0 seconds")
        if self.long_clip_s is not None:
            self.long_clip_s = parse_floats("long_clip_s", self.long_clip_s)[0]
            if self.long_clip_s <= 0:
                raise ConfigError(f"long_clip_s={self.long_clip_s:g}: must be > 0 seconds (or null: always crop "
                                  "from crop_start_s)")
        if not isinstance(self.strict, bool):
            raise ConfigError(f"strict={self.strict!r}: expected true or false")
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
                                         "noise", "shuffle", "save_curves", "min_recovery_s", "strict",
                                         "min_baseline_s", "onset_step_s", "long_clip_s")}
        if d["melody"]:  # only when set, so run folders made before the field existed still resume
            fingerprint["melody"] = d["melody"]
        return fingerprint


# --------------------------------------------------------------------------------------------
# What a clip actually runs: the crop window and the perturbation plan (pure functions)
# --------------------------------------------------------------------------------------------
def crop_window(source_duration_s: float, config: ProbeConfig) -> tuple[float, float]:
    """``(start_s, duration_s)`` of the part of a clip of ``source_duration_s`` that is scored.

    From ``crop_start_s``, ``crop_duration_s`` seconds (or the rest of the clip when shorter or
    when ``crop_duration_s`` is None). A clip of ``long_clip_s`` (60 s) or more -- a whole track
    rather than a generated excerpt -- is cropped in its middle instead: the window is centred
    in the part after ``crop_start_s``, its start rounded down to a whole second, so intros and
    fade-outs are skipped (MusicGen trains on random excerpts of tracks, so a mid-track window
    is what it knows). The duration may be <= 0 when ``crop_start_s`` is past the end."""
    start = float(config.crop_start_s)
    available = float(source_duration_s) - start
    crop = config.crop_duration_s
    if crop is None or available <= crop:
        return start, available
    if config.long_clip_s is not None and source_duration_s + 1e-9 >= config.long_clip_s:
        start += math.floor((available - crop) / 2)
    return start, float(crop)


@dataclass(frozen=True)
class PlannedGroup:
    """The perturbations of one family run at one onset of a clip: noise lengths or shuffle
    block sizes (``lengths_frames``), at ``onset_frame`` (frames of the model), standing for
    the configured onset ``grid_onset_s``."""

    family: str  # "noise" | "shuffle"
    grid_onset_s: float
    onset_frame: int
    lengths_frames: tuple[int, ...]
    frame_rate: float

    @property
    def onset_s(self) -> float:
        return self.onset_frame / self.frame_rate

    @property
    def moved(self) -> bool:
        return self.onset_frame != round(self.grid_onset_s * self.frame_rate)


@dataclass(frozen=True)
class DroppedPerturbation:
    """A configured (family, onset, length) that this clip does not run, and why."""

    family: str
    grid_onset_s: float
    length_frames: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ClipPlan:
    """The perturbation plan one clip runs (:func:`plan_perturbations`)."""

    duration_s: float  # the scored window
    strict: bool
    groups: tuple[PlannedGroup, ...]
    dropped: tuple[DroppedPerturbation, ...] = ()
    required_s: float = 0.0  # the window the plan needs (latest end + min_recovery_s)
    skip_reason: str | None = None  # the clip runs nothing: "shorter than the required ... s ..."

    @property
    def adapted(self) -> bool:
        """True when the clip does not run the configured grid as it is (moved or dropped)."""
        return bool(self.dropped) or any(g.moved for g in self.groups)

    def describe(self) -> str:
        """One line, e.g. ``noise@5s L=5,10,50; shuffle@1s B=1,2 (moved from 5s)``."""
        parts = []
        for g in self.groups:
            letter = "L" if g.family == "noise" else "B"
            moved = f" (moved from {g.grid_onset_s:g}s)" if g.moved else ""
            parts.append(f"{g.family}@{g.onset_s:g}s {letter}={','.join(map(str, g.lengths_frames))}{moved}")
        return "; ".join(parts)


def _spans(config: ProbeConfig, frame_rate: float) -> list[tuple[str, float, list[tuple[int, int]]]]:
    """(family, configured onset, [(length, frames it spans)]) of the configured grid. A shuffle
    spans its two blocks, or to ``range_end_s`` when that is further."""
    grids = []
    if config.noise.enabled:
        for onset in config.noise.onsets_s:
            grids.append(("noise", onset, [(L, L) for L in config.noise.lengths_frames]))
    if config.shuffle.enabled:
        s = config.shuffle
        reach = 0 if s.range_end_s is None else round((s.range_end_s - s.onset_s) * frame_rate)
        grids.append(("shuffle", s.onset_s, [(B, max(2 * B, reach)) for B in s.blocks_frames]))
    return grids


_TOL_FRAMES = 0.5  # a window half a frame short of a fit still fits (decoders round lengths)


def minimum_duration_s(config: ProbeConfig, frame_rate: float) -> float:
    """Shortest window in which a clip runs anything: under ``strict`` the whole configured grid
    (latest end + ``min_recovery_s``), otherwise the shortest perturbation at the earliest onset
    allowed (``min_baseline_s``, or the configured onset when earlier) + ``min_recovery_s``."""
    fr = float(frame_rate)
    rec = config.min_recovery_s * fr
    ends = []
    for _family, grid_onset, items in _spans(config, fr):
        onset = round(grid_onset * fr)
        if not config.strict:
            onset = min(onset, math.ceil(config.min_baseline_s * fr - 1e-9))
        ends += [onset + span for _, span in items]
    if not ends:
        return rec / fr
    return ((max(ends) if config.strict else min(ends)) + rec) / fr


def too_short_reason(config: ProbeConfig, frame_rate: float) -> str:
    """Why a clip below :func:`minimum_duration_s` runs nothing, naming the flags that change it."""
    need = minimum_duration_s(config, frame_rate)
    if config.strict:
        return (f"shorter than the required {need:.2f} s of the configured grid under --strict (latest perturbation "
                f"end + min_recovery_s={config.min_recovery_s:g} s); pass --adapt (or drop --strict / strict: true) "
                "to fit the grid to each clip, or use shorter --lengths/--blocks or a lower --min-recovery")
    return (f"shorter than the required {need:.2f} s for any perturbation (an onset no earlier than "
            f"min_baseline_s={config.min_baseline_s:g} s, the shortest perturbation, then "
            f"min_recovery_s={config.min_recovery_s:g} s); lower --min-baseline or --min-recovery, or use a longer clip")


def plan_perturbations(duration_s: float, config: ProbeConfig, frame_rate: float) -> ClipPlan:
    """The perturbations a clip whose scored window is ``duration_s`` long actually runs.

    A perturbation fits at onset ``o`` when ``o + its span + min_recovery_s <= duration_s``.
    ``strict``: the configured grid exactly, or nothing (``skip_reason``) when any of it does
    not fit. Otherwise, for each configured onset (noise onsets, the shuffle onset):

    1. every length fits at the configured onset: kept as configured;
    2. else the lengths that fit at the earliest onset allowed (``min_baseline_s``, the
       pre-onset baseline window; the configured onset when that is earlier) are kept, the
       others dropped with a reason (lengths are never stretched or shortened), and the kept
       lengths share one onset: the latest that holds the longest of them, rounded down to a
       multiple of ``onset_step_s`` (so clips of similar length share a plan) and never
       later than the configured one;
    3. a (family, onset, length) already planned from another configured onset is dropped as
       a duplicate.

    A clip that keeps nothing gets ``skip_reason`` (:func:`too_short_reason`)."""
    fr = float(frame_rate)
    total = float(duration_s) * fr
    rec = config.min_recovery_s * fr

    def fits(onset: int, span: int) -> bool:
        return onset + span + rec <= total + _TOL_FRAMES

    grids = _spans(config, fr)
    groups: list[PlannedGroup] = []
    dropped: list[DroppedPerturbation] = []
    ends: list[int] = []
    if config.strict:
        for family, grid_onset, items in grids:
            onset = round(grid_onset * fr)
            groups.append(PlannedGroup(family, grid_onset, onset, tuple(L for L, _ in items), fr))
            ends += [onset + span for _, span in items]
        required = (max(ends, default=0) + rec) / fr
        if not all(fits(round(g * fr), span) for _, g, items in grids for _, span in items):
            return ClipPlan(duration_s, True, (), required_s=required, skip_reason=too_short_reason(config, fr))
        return ClipPlan(duration_s, True, tuple(groups), required_s=required)
    seen: set[tuple[str, int, int]] = set()
    min_onset = math.ceil(config.min_baseline_s * fr - 1e-9)
    for family, grid_onset, items in grids:
        onset = round(grid_onset * fr)
        if all(fits(onset, span) for _, span in items):
            kept = items
        else:
            earliest = min(onset, min_onset)
            kept = [(L, span) for L, span in items if fits(earliest, span)]
            for L, span in items:
                if (L, span) not in kept:
                    dropped.append(DroppedPerturbation(family, grid_onset, L, (
                        f"needs {(earliest + span + rec) / fr:.2f} s (onset >= {earliest / fr:g} s + {span} frames + "
                        f"min_recovery_s={config.min_recovery_s:g} s); the window is {duration_s:.2f} s")))
            if kept:
                longest = max(span for _, span in kept)
                latest_s = (total + _TOL_FRAMES - rec - longest) / fr
                stepped = round(math.floor(latest_s / config.onset_step_s + 1e-9) * config.onset_step_s * fr)
                moved = min(onset, max(earliest, stepped))
                while moved > earliest and not fits(moved, longest):
                    moved -= 1
                onset = moved
        lengths = []
        for L, span in kept:
            if (family, onset, L) in seen:
                dropped.append(DroppedPerturbation(family, grid_onset, L,
                                                   f"same onset ({onset / fr:g} s) as another configured onset"))
                continue
            seen.add((family, onset, L))
            lengths.append(L)
            ends.append(onset + span)
        if lengths:
            groups.append(PlannedGroup(family, grid_onset, onset, tuple(lengths), fr))
    required = (max(ends, default=0) + rec) / fr
    if not groups:
        return ClipPlan(duration_s, False, (), tuple(dropped), required, too_short_reason(config, fr))
    return ClipPlan(duration_s, False, tuple(groups), tuple(dropped), required)


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
