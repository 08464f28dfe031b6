"""Benchmark task registry.

A *task* names its data (a manifest in the reward schema, a CMI-RewardBench unified JSONL, or
the built-in world's held-out pairs), the dimension it judges (musicality or alignment), its
metric (pairwise ``accuracy`` for preference pairs, ``correlation`` for rated clips) and
optional filters (source, split, instruction kind). A *benchmark* is a named list of tasks:
registered in Python (``builtin``), or a YAML file::

    name: my-bench
    tasks:
      - name: cmi-pref/musicality
        data: ${CMI_REWARDBENCH_ROOT}/unified.jsonl   # env vars expand; relative to the YAML
        format: cmi-rewardbench                        # pairs | rated | cmi-rewardbench | auto
        root: ${CMI_REWARDBENCH_ROOT}                  # dataset root for relative audio paths
        source: cmi-arena-annotation
        split: test
        dimension: musicality
        metric: accuracy
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from musicjudge.errors import ConfigError, ManifestError

METRICS = ("accuracy", "correlation")
FORMATS = ("auto", "pairs", "rated", "cmi-rewardbench", "builtin-pairs")
DIMENSIONS = ("musicality", "alignment")
BUILTIN_KINDS = ("text", "text+lyrics", "text+ref", "text+lyrics+ref")
# Held-out built-in pairs: the reward package's held-out evaluation set (n=800, seed 0), 100 per
# (kind, dimension) task, so CIs are roughly +-8 points.
BUILTIN_PAIRS_FULL = 800
BUILTIN_PAIRS_QUICK = 32
# --quick renders only the first pieces of the corpus (about 1 in 7 is held out).
BUILTIN_QUICK_CORPUS_LIMIT = 30


@dataclass(frozen=True)
class Task:
    name: str
    data: str
    dimension: str
    metric: str
    format: str = "auto"
    root: str | None = None
    source: str | None = None
    split: str | None = None
    instruction_kind: str | None = None
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise ConfigError(f"task {self.name!r}: dimension {self.dimension!r}; use one of {', '.join(DIMENSIONS)}")
        if self.metric not in METRICS:
            raise ConfigError(f"task {self.name!r}: metric {self.metric!r}; use one of {', '.join(METRICS)}")
        if self.format not in FORMATS:
            raise ConfigError(f"task {self.name!r}: format {self.format!r}; use one of {', '.join(FORMATS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Benchmark:
    name: str
    tasks: tuple[Task, ...]
    description: str = ""
    source: str = "registry"  # "registry" or the YAML path it came from

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "tasks": [t.to_dict() for t in self.tasks]}


# ------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[bool], Benchmark]] = {}


def register_benchmark(name: str):
    """Decorator: register ``factory(quick: bool) -> Benchmark`` under ``name``."""

    def deco(factory: Callable[[bool], Benchmark]):
        _REGISTRY[name] = factory
        return factory

    return deco


def benchmark_names() -> list[str]:
    return sorted(_REGISTRY)


@register_benchmark("builtin")
def builtin_benchmark(quick: bool = False) -> Benchmark:
    """The offline benchmark made from the built-in world's held-out preference pairs (pieces
    never seen in training), split by instruction type x dimension: 8 accuracy tasks."""
    n = BUILTIN_PAIRS_QUICK if quick else BUILTIN_PAIRS_FULL
    data = f"builtin:heldout?n={n}&seed=0" + (f"&corpus_limit={BUILTIN_QUICK_CORPUS_LIMIT}" if quick else "")
    tasks = []
    for dim in DIMENSIONS:
        for kind in BUILTIN_KINDS:
            tasks.append(Task(
                name=f"builtin/{dim}/{kind}", data=data, format="builtin-pairs",
                dimension=dim, metric="accuracy", instruction_kind=kind,
                description=f"built-in held-out pairs, {kind} instructions, {dim} preference",
                options={"metadata_breakdowns": ["pair_type", "collection"]},
            ))
    return Benchmark(name="builtin-quick" if quick else "builtin", tasks=tuple(tasks),
                     description="Built-in offline world: held-out pairs with known truth, by instruction type.")


# ------------------------------------------------------------------------------------------
# YAML benchmarks and direct data files
# ------------------------------------------------------------------------------------------


def _expand(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    text = os.path.expandvars(os.path.expanduser(str(value)))
    if "$" in text:
        raise ConfigError(f"{value!r}: an environment variable in this path is not set; export it or write the path")
    if text.startswith("builtin:") or "://" in text:
        return text
    path = Path(text)
    return str(path if path.is_absolute() else (base / path).resolve())


def benchmark_from_yaml(path: str | os.PathLike, quick: bool = False) -> Benchmark:
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({problem}); fix the file (quote values that start with '$' or '{{')") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("tasks"), list) or not spec["tasks"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'tasks' list; see configs/bench_example.yaml")
    base = path.resolve().parent
    known = {f for f in Task.__dataclass_fields__}
    tasks = []
    for i, entry in enumerate(spec["tasks"], 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: task {i} is not a mapping; write 'name:', 'data:', 'dimension:', 'metric:'")
        unknown = set(entry) - known
        if unknown:
            raise ConfigError(f"{path}: task {i} has unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(known))}")
        missing = [k for k in ("data", "dimension") if k not in entry]
        if missing:
            raise ConfigError(f"{path}: task {i} lacks {', '.join(missing)}; every task needs data and dimension")
        entry = dict(entry)
        entry.setdefault("name", f"task{i}/{entry['dimension']}")
        entry.setdefault("metric", "accuracy")
        entry["data"] = _expand(entry["data"], base)
        entry["root"] = _expand(entry.get("root"), base)
        tasks.append(Task(**entry))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: task names repeat; give each task a unique 'name'")
    return Benchmark(name=str(spec.get("name", path.stem)), tasks=tuple(tasks),
                     description=str(spec.get("description", "")), source=str(path))


def benchmark_from_data_file(path: str | os.PathLike, *, root: str | None = None, split: str | None = None) -> Benchmark:
    """A manifest (pairs/rated), a CMI-RewardBench unified file or a Hugging Face dataset folder
    given directly: one task per (source, dimension) that carries labels.

    Like the reference evaluation, a direct run keeps ``split == test`` when the data has
    splits (a ``split`` column or dataset splits); ``split="all"`` keeps every row, another
    name that split. ``root``: folder the relative audio paths start from (default: the
    file's folder or its parent, whichever holds the clips)."""
    from musicjudge.data.sources import read_table

    path = Path(path).expanduser().resolve()
    table = read_table(path, split=split, root=root, default_split="test")
    rows = table.rows
    if not rows:
        raise ManifestError(f"{table.label}: no rows; a benchmark file needs at least one labelled item")
    task_split = split if split == "all" else table.split
    common = {"data": str(path), "root": str(Path(root).expanduser().resolve()) if root else None, "split": task_split}
    if "audio-path" in rows[0]:
        fmt = "cmi-rewardbench"
        combos: dict[tuple[str, str], str] = {}
        for r in rows:
            src = r.get("source") or "unknown"
            pairwise = r.get("audio2") not in (None, "")
            for dim, cols in (("musicality", ("preference-musicality", "preference", "musicality")),
                              ("alignment", ("preference-alignment", "text-music alignment"))):
                if any(r.get(c) not in (None, "") for c in cols):
                    combos[(src, dim)] = "accuracy" if pairwise else "correlation"
        tasks = [Task(name=f"{src}/{dim}", format=fmt, source=src, dimension=dim, metric=metric, **common)
                 for (src, dim), metric in sorted(combos.items())]
    else:
        pairwise = "audio_a" in rows[0]
        fmt = "pairs" if pairwise else "rated"
        tasks = [Task(name=f"{path.stem}/{dim}", format=fmt, dimension=dim,
                      metric="accuracy" if pairwise else "correlation", **common)
                 for dim in DIMENSIONS if any(r.get(dim) not in (None, "") for r in rows)]
    if not tasks:
        raise ManifestError(f"{table.label}: no row carries a musicality or alignment label; nothing to evaluate")
    return Benchmark(name=path.stem, tasks=tuple(tasks), source=str(path))


def load_benchmark(spec: str, quick: bool = False, *, root: str | None = None, split: str | None = None) -> Benchmark:
    """A registered name (``builtin``), a YAML file listing tasks, or a data file / dataset
    folder (``root``/``split`` apply to the latter only)."""
    path = Path(spec).expanduser()
    is_data = path.suffix.lower() in (".jsonl", ".csv", ".parquet", ".arrow") or path.is_dir()
    if (root is not None or split is not None) and (spec in _REGISTRY or not is_data):
        raise ConfigError(f"--root/--split apply to a data file or dataset given with -b, not to {spec!r}; "
                          "in a benchmark YAML set 'root:' and 'split:' per task")
    if spec in _REGISTRY:
        return _REGISTRY[spec](quick)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"{spec}: benchmark YAML not found; check the path")
        return benchmark_from_yaml(path, quick)
    if is_data:
        if not path.exists():
            raise ConfigError(f"{spec}: data file or folder not found; check the path")
        return benchmark_from_data_file(path, root=root, split=split)
    raise ConfigError(f"{spec!r}: unknown benchmark; use one of {', '.join(benchmark_names())}, a YAML file, a manifest "
                      "or a dataset folder")


def select_tasks(bench: Benchmark, patterns: list[str] | None) -> Benchmark:
    """Keep tasks whose name matches any glob pattern (``--task 'builtin/alignment/*'``)."""
    if not patterns:
        return bench
    from fnmatch import fnmatch

    kept = tuple(t for t in bench.tasks if any(fnmatch(t.name, p) for p in patterns))
    if not kept:
        raise ConfigError(f"--task {' '.join(patterns)}: matches no task of {bench.name}; tasks are {', '.join(t.name for t in bench.tasks)}")
    return replace(bench, tasks=kept)
