"""Data-parallel execution of batch jobs (probe sweeps, reward scoring, benchmarks).

Model: a job is a list of *work keys* (e.g. clip ids). Every process takes a deterministic
share of the sorted keys (round-robin, or by stable hash), writes its results to its own append-
only shard ``<stem>.rank{r}-of-{n}.jsonl`` and, when done, a marker ``...complete``. The
process that finishes last (decided under a file lock) merges every shard into ``<stem>.jsonl``
(+ ``.parquet``), deduplicated by work key — no barrier or collective is needed, so the same
code runs

* on one process (nothing to configure),
* under ``accelerate launch`` / ``torchrun`` (rank and world size from accelerate's
  ``PartialState``, which also picks this process's GPU),
* as independent jobs, e.g. a SLURM array, with ``shard="i/n"`` (no process group at all).

Resume: each shard line is one whole work item (``{"key", "rows"}`` or ``{"key", "error"}``),
written with one fsync'd append, so an interrupted run loses at most the item in flight. On
restart each process skips keys found in *any* shard, so resuming with a different number of
processes is fine too. ``merge_shards`` is idempotent: run it again at any time."""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from musicjudge.errors import ConfigError, ManifestError, MusicjudgeError
from musicjudge.io import append_jsonl, atomic_write_bytes, atomic_write_json, read_jsonl, stable_hash

log = logging.getLogger(__name__)

SHARD_RE = re.compile(r"^(?P<stem>.+)\.rank(?P<rank>\d+)-of-(?P<world>\d+)\.jsonl$")


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits in a data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"  # single | launched (accelerate launch/torchrun) | manual (--shard)
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        return f"process {self.rank + 1}/{self.world_size} ({self.launcher}, {self.device})"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based shard index i of n) -> ``(i, n)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ConfigError(f"--shard {text!r}: expected INDEX/COUNT with a 0-based index, e.g. 0/4")
    rank, world = int(m.group(1)), int(m.group(2))
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"--shard {text!r}: index must be in 0..COUNT-1 (e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    return rank, world


def _launched() -> bool:
    """True when a launcher (accelerate launch, torchrun, mpirun) started several processes."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


def current_process(shard: str | None = None, *, cpu: bool | None = None) -> ProcessInfo:
    """Rank/world size of this process.

    ``shard="i/n"`` wins (independent jobs such as SLURM arrays). Otherwise, under a launcher,
    accelerate's ``PartialState`` supplies rank, world size and device (gloo on CPU). Without
    either, a single process. ``cpu=None`` means: CPU when CUDA is absent or ACCELERATE_USE_CPU."""
    if shard is not None:
        rank, world = parse_shard(shard)
        return ProcessInfo(rank=rank, world_size=world, local_rank=0, launcher="manual", device=_default_device(cpu))
    if not _launched():
        return ProcessInfo(device=_default_device(cpu))
    import torch
    from accelerate import PartialState

    if cpu is None:
        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    device = str(state.device)
    return ProcessInfo(
        rank=int(state.process_index),
        world_size=int(state.num_processes),
        local_rank=int(state.local_process_index),
        launcher="launched",
        device="cpu" if device.startswith("cpu") else device,
    )


def shutdown() -> None:
    """Tear down the process group a launcher set up (avoids torch's exit-time warning)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _default_device(cpu: bool | None) -> str:
    if cpu:
        return "cpu"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"


def shard_keys(keys: Iterable[str], rank: int, world_size: int, *, strategy: str = "round_robin") -> list[str]:
    """This rank's share of ``keys`` (independent of what is already done, so every process
    computes the same split without talking to the others).

    ``round_robin``: the i-th key of the sorted, de-duplicated list goes to rank ``i % n``
    (balanced). ``hash``: by stable hash of the key, so a key keeps its rank when the key list
    grows. Returned in sorted order."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
    ordered = sorted(set(keys))
    if strategy == "round_robin":
        return ordered[rank::world_size]
    if strategy == "hash":
        return [k for k in ordered if int(stable_hash(k), 16) % world_size == rank]
    raise ConfigError(f"strategy={strategy!r}: expected 'round_robin' or 'hash'")


def shard_items(
    items: Iterable[Any],
    proc: ProcessInfo,
    *,
    key: Callable[[Any], str] = str,
    strategy: str = "round_robin",
) -> list[Any]:
    """This process's share of arbitrary work items (split by ``key(item)`` exactly like
    :func:`shard_keys`), in the items' original order."""
    items = list(items)
    keys = [str(key(item)) for item in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"work key {dup!r} occurs twice; work keys must be unique")
    mine = set(shard_keys(keys, proc.rank, proc.world_size, strategy=strategy))
    return [item for item, k in zip(items, keys) if k in mine]


def completion_marker(marker_dir: str | os.PathLike, stem: str, rank: int, world_size: int) -> Path:
    return Path(marker_dir) / f"{stem}.rank{rank}-of-{world_size}.complete"


def begin_shard(marker_dir: str | os.PathLike, stem: str, proc: ProcessInfo) -> None:
    """Forget this shard's completion from an earlier run: it is running again."""
    completion_marker(marker_dir, stem, proc.rank, proc.world_size).unlink(missing_ok=True)


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Advisory exclusive lock (POSIX flock) so two processes never merge at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock; merges stay idempotent
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def finishing_shard(marker_dir: str | os.PathLike, stem: str, proc: ProcessInfo, **info: Any) -> Iterator[bool]:
    """Mark this shard complete and yield True when every shard of this world size is complete.

    Marker, check and whatever the caller does inside the ``with`` block run under one file
    lock, so of several processes finishing at the same instant exactly one sees True (the last
    to take the lock) and merges; the others see a missing marker and leave::

        with finishing_shard(dir, "probe", proc) as last:
            if last:
                consolidate(...)
    """
    marker_dir = Path(marker_dir)
    with _exclusive_lock(marker_dir / f"{stem}.merge.lock"):
        atomic_write_json(
            completion_marker(marker_dir, stem, proc.rank, proc.world_size),
            {"rank": proc.rank, "world_size": proc.world_size, **info},
        )
        n = proc.world_size
        yield all(completion_marker(marker_dir, stem, r, n).exists() for r in range(n))


def shard_path(out_dir: str | os.PathLike, stem: str, rank: int, world_size: int) -> Path:
    return Path(out_dir) / f"{stem}.rank{rank}-of-{world_size}.jsonl"


def list_shards(out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """All shard files of ``stem`` (any world size), ordered by (world size, rank)."""
    out_dir = Path(out_dir)
    found = []
    for p in out_dir.glob(f"{stem}.rank*-of-*.jsonl"):
        m = SHARD_RE.match(p.name)
        if m and m.group("stem") == stem:
            found.append((int(m.group("world")), int(m.group("rank")), p))
    return [p for _, _, p in sorted(found)]


def _read_records(path: Path) -> list[dict[str, Any]]:
    records = read_jsonl(path)
    for i, rec in enumerate(records, 1):
        if "key" not in rec or ("rows" not in rec and "error" not in rec):
            raise ManifestError(f"{path}: record {i} lacks 'key' and 'rows'/'error'; this is not a musicjudge shard file")
    return records


@dataclass
class MergeResult:
    jsonl: Path
    parquet: Path | None
    errors: Path | None
    n_rows: int
    n_items: int
    n_errors: int
    missing: list[str] = field(default_factory=list)


def merge_shards(
    out_dir: str | os.PathLike,
    stem: str,
    keys: Sequence[str] | None = None,
    *,
    parquet: bool = True,
) -> MergeResult:
    """Merge every shard of ``stem`` into ``<stem>.jsonl`` (+ ``<stem>.parquet``) and failed
    items into ``<stem>.errors.jsonl``. Items are deduplicated by work key (a successful record
    beats an error; otherwise the first shard in (world, rank) order wins) and written in sorted
    key order. With ``keys``, only those keys are kept and absent ones are listed in
    ``missing``. Idempotent: same shards -> byte-identical output."""
    out_dir = Path(out_dir)
    best: dict[str, dict[str, Any]] = {}
    for path in list_shards(out_dir, stem):
        for rec in _read_records(path):
            k = str(rec["key"])
            if k not in best or ("error" in best[k] and "rows" in rec):
                best[k] = rec
    wanted = sorted(best) if keys is None else sorted(set(map(str, keys)))
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    missing: list[str] = []
    for k in wanted:
        rec = best.get(k)
        if rec is None:
            missing.append(k)
        elif "rows" in rec:
            rows.extend(rec["rows"])
        else:
            errors.append({"key": k, "error": rec["error"]})

    jsonl = out_dir / f"{stem}.jsonl"
    atomic_write_bytes(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    err_path = out_dir / f"{stem}.errors.jsonl"
    if errors:
        atomic_write_bytes(err_path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors).encode("utf-8"))
    elif err_path.exists():
        err_path.unlink()
    pq_path = None
    if parquet and rows:
        import pandas as pd

        pq_path = out_dir / f"{stem}.parquet"
        tmp = out_dir / f".{stem}.parquet.tmp"
        try:
            pd.DataFrame(rows).to_parquet(tmp, index=False)
            os.replace(tmp, pq_path)
        except (ValueError, TypeError, ImportError) as e:  # ragged/mixed columns: JSONL still has everything
            log.warning("%s: could not write Parquet (%s); the JSONL is complete", pq_path, e)
            if tmp.exists():
                tmp.unlink()
            pq_path = None
    return MergeResult(jsonl, pq_path, err_path if errors else None, len(rows), len(wanted) - len(missing), len(errors), missing)


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a crash mid-append) off our own shard, so the next append
    starts on a fresh line instead of gluing onto the fragment."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        log.warning("%s: dropping a torn last record (%d bytes) left by an interrupted run", path, len(data) - cut)
        with open(path, "r+b") as f:
            f.truncate(cut)


class ShardWriter:
    """This process's view of a sharded job: its keys, what is done, and its shard file."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        stem: str,
        keys: Iterable[str],
        proc: ProcessInfo | None = None,
        *,
        strategy: str = "round_robin",
        retry_errors: bool = False,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stem = stem
        self.proc = proc or current_process()
        self.keys = sorted(set(map(str, keys)))
        self.path = shard_path(self.out_dir, stem, self.proc.rank, self.proc.world_size)
        begin_shard(self.out_dir, stem, self.proc)
        _drop_torn_tail(self.path)
        self.mine = shard_keys(self.keys, self.proc.rank, self.proc.world_size, strategy=strategy)
        self.done = self._done_keys(retry_errors)
        self.pending = [k for k in self.mine if k not in self.done]

    def _done_keys(self, retry_errors: bool) -> set[str]:
        done: set[str] = set()
        for path in list_shards(self.out_dir, self.stem):
            for rec in _read_records(path):
                if "rows" in rec or not retry_errors:
                    done.add(str(rec["key"]))
        return done

    def record(self, key: str, rows: list[dict[str, Any]]) -> None:
        """Store all rows of one work item in one crash-safe append."""
        append_jsonl(self.path, {"key": str(key), "rows": rows})
        self.done.add(str(key))

    def record_error(self, key: str, message: str) -> None:
        append_jsonl(self.path, {"key": str(key), "error": message})
        self.done.add(str(key))

    def finish(self, *, parquet: bool = True) -> MergeResult | None:
        """Mark this shard complete; the last process to finish merges every shard."""
        with finishing_shard(self.out_dir, self.stem, self.proc, keys=len(self.mine)) as last:
            return merge_shards(self.out_dir, self.stem, self.keys, parquet=parquet) if last else None


def run_sharded(
    keys: Iterable[str],
    compute: Callable[[str], list[dict[str, Any]]],
    out_dir: str | os.PathLike,
    stem: str,
    *,
    proc: ProcessInfo | None = None,
    strategy: str = "round_robin",
    retry_errors: bool = False,
    skip_errors: tuple[type[BaseException], ...] = (MusicjudgeError,),
    progress: bool = True,
    desc: str | None = None,
    parquet: bool = True,
) -> tuple[ShardWriter, MergeResult | None]:
    """Run ``compute(key) -> rows`` for this process's pending keys, append each item's rows to
    the shard, record items that raise ``skip_errors`` (batch jobs finish the rest), then
    ``finish()``. Returns the writer and the merge result (None unless this process merged)."""
    from tqdm.auto import tqdm

    writer = ShardWriter(out_dir, stem, keys, proc, strategy=strategy, retry_errors=retry_errors)
    label = desc or stem
    if writer.proc.is_distributed:
        label = f"{label} [{writer.proc.rank + 1}/{writer.proc.world_size}]"
    for key in tqdm(writer.pending, desc=label, disable=not progress, position=writer.proc.local_rank):
        try:
            rows = compute(key)
        except skip_errors as e:
            log.warning("skipping %s: %s", key, e)
            writer.record_error(key, str(e))
            continue
        writer.record(key, list(rows))
    return writer, writer.finish(parquet=parquet)


def launch_device(proc: ProcessInfo, requested: str | None) -> str | None:
    """Under a multi-GPU launcher every process must use its own GPU, not cuda:0."""
    if proc.launcher == "launched" and proc.device.startswith("cuda") and requested in (None, "cuda"):
        return proc.device
    return requested
