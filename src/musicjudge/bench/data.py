"""Load a task's items (preference pairs or rated clips) in the reward schema.

Every layout (JSONL / CSV / Parquet / Hugging Face dataset folders) is read by
:func:`musicjudge.data.sources.read_table` (the one loader, shared with the probe), and rows
become records through the reward schema (``musicjudge.reward.data.pair_from_row`` /
``rated_from_row`` / ``unified_rows_to_records``). This module adds the task filters, the built-in held-out pairs and the missing-clip bookkeeping: a
clip that does not exist is recorded (id, path, reason) and its item dropped, never fatal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from musicjudge.bench.tasks import Task
from musicjudge.errors import ConfigError, ManifestError


@dataclass
class TaskData:
    task: Task
    kind: str  # "pairs" | "rated"
    items: list[Any]  # PreferencePair | RatedClip
    missing: list[dict[str, Any]] = field(default_factory=list)
    manifest: str = ""
    looked_in: list[str] = field(default_factory=list)  # folders relative audio paths were resolved in


def _builtin_pairs_manifest(spec: str) -> Path:
    """``builtin:<split>?n=<N>&seed=<S>[&corpus_limit=<P>][&corpus=<manifest>]`` -> the reward package's cached held-out manifest."""
    body = spec[len("builtin:"):]
    split, _, query = body.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        n = int(params.get("n", 640))
        seed = int(params.get("seed", 0))
        corpus_limit = int(params["corpus_limit"]) if "corpus_limit" in params else None
        corpus = params.get("corpus")  # an existing corpus manifest instead of the cached build
    except ValueError:
        raise ConfigError(f"{spec!r}: n, seed and corpus_limit must be integers, e.g. builtin:heldout?n=640&seed=0") from None
    try:
        from musicjudge.reward.builtin_pairs import build_builtin_pairs
    except ImportError as e:
        raise ConfigError(f"{spec}: the built-in pair builder is unavailable ({e}); install musicjudge fully") from None
    # The reward package keys its cache folder on (split, n, seed, pieces), so the pairs follow
    # the corpus actually built; results.json records the manifest's sha256.
    return Path(build_builtin_pairs(None, split=split or "heldout", n=n, seed=seed, corpus_limit=corpus_limit,
                                    corpus_manifest=corpus))


def _is_local(path: str | None) -> bool:
    return bool(path) and "://" not in str(path)


def _missing_paths(item: Any) -> list[str]:
    paths = [item.audio_a, item.audio_b] if hasattr(item, "audio_a") else [item.audio]
    paths.append(item.instruction.ref_audio)
    return [p for p in paths if _is_local(p) and not os.path.exists(p)]


_TABLES: dict[tuple, Any] = {}


def _detect_format(rows: list[dict[str, Any]]) -> str:
    first = rows[0] if rows else {}
    return "cmi-rewardbench" if "audio-path" in first else ("pairs" if "audio_a" in first else "rated")


def _read_items(task: Task) -> tuple[str, list[Any], str, list[str]]:
    """(kind, items, manifest, folders relative paths were looked for in)."""
    from musicjudge.data.sources import read_table
    from musicjudge.reward import data as rdata

    fmt = task.format
    manifest = task.data
    if fmt == "builtin-pairs" or str(task.data).startswith("builtin:"):
        manifest = str(_builtin_pairs_manifest(task.data))
        return "pairs", rdata.read_pairs(manifest), manifest, [str(Path(manifest).parent)]
    path = Path(manifest)
    if not path.exists():
        raise ManifestError(f"{path}: data file of task {task.name!r} not found; check 'data' in the benchmark")
    # every layout (JSONL / CSV / Parquet / Hugging Face folders) is read by data.sources, once
    # per (file, split, root): the tasks of one benchmark usually share a file
    st = path.stat()
    key = (str(path.resolve()), task.split, task.root, st.st_mtime_ns, st.st_size)
    table = _TABLES.get(key)
    if table is None:
        table = read_table(path, split=task.split, root=task.root)
        _TABLES.clear()  # keep one: bounded memory when a sweep walks many files
        _TABLES[key] = table
    looked_in = [str(p) for p in table.looked_in]
    if fmt == "auto":
        fmt = _detect_format(table.rows)
    if fmt == "cmi-rewardbench":
        kept = [j for j, r in enumerate(table.rows) if task.source is None or r.get("source") == task.source]
        # ids keep the row's position in the file, whatever the split/source filters left out
        recs = rdata.unified_rows_to_records([table.rows[j] for j in kept], root=table.base, label=table.label,
                                             numbers=[table.numbers[j] for j in kept])
        if task.metric == "accuracy":
            return "pairs", recs.pairs, manifest, looked_in
        return "rated", recs.rated, manifest, looked_in
    convert = rdata.pair_from_row if fmt == "pairs" else rdata.rated_from_row
    items = [convert(r, root=table.base, where=f"{table.label}: row {n}") for r, n in zip(table.rows, table.numbers)]
    rdata.check_unique_ids(path, [it.id for it in items])
    return ("pairs" if fmt == "pairs" else "rated"), items, manifest, looked_in


def load_task_data(task: Task, limit: int | None = None) -> TaskData:
    """Items of ``task`` labelled for its dimension, after its filters; clips that are missing on
    disk are recorded in ``missing`` and left out. ``limit`` keeps an evenly spaced subset."""
    kind, items, manifest, looked_in = _read_items(task)
    if kind == "pairs" and task.metric != "accuracy":
        raise ConfigError(f"task {task.name!r}: preference pairs are scored with metric 'accuracy', not {task.metric!r}")
    if kind == "rated" and task.metric != "correlation":
        raise ConfigError(f"task {task.name!r}: rated clips are scored with metric 'correlation', not {task.metric!r}")
    dim = task.dimension
    kept = []
    for it in items:
        labelled = dim in (it.preference if kind == "pairs" else it.scores)
        if not labelled:
            continue
        if task.source is not None and it.source != task.source:
            continue
        # the split was applied when reading (data.sources: a dataset split or the split column)
        if task.instruction_kind is not None and it.instruction.kind != task.instruction_kind:
            continue
        kept.append(it)
    if limit is not None and len(kept) > limit:
        step = len(kept) / limit
        kept = [kept[int(i * step)] for i in range(limit)]
    present, missing = [], []
    for it in kept:
        gone = _missing_paths(it)
        if gone:
            missing.append({"task": task.name, "id": it.id, "path": gone[0], "reason": "audio file not found"})
        else:
            present.append(it)
    return TaskData(task=task, kind=kind, items=present, missing=missing, manifest=manifest, looked_in=looked_in)
