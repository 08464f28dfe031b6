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


def check_device(device: str | None, what: str = "--device") -> str | None:
    """``device`` if torch can place tensors there (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...),
    else a one-line :class:`ConfigError` (unknown name, or CUDA/MPS not available here).
    ``None`` / ``""`` (= pick the best available) pass through without importing torch."""
    if not device:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what} {device!r}: unknown device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"{what} {device!r}: no CUDA GPU is available on this machine; use --device cpu "
                              "(or leave --device out to pick the best available)")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{what} {device!r}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1}); "
                              "pick one of them")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{what} {device!r}: MPS is not available on this machine; use --device cpu")
    return device


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


# --------------------------------------------------------------------------------------------
# Integrations: data-parallel front ends for the package runners (each keeps its own per-item
# resume files; this layer only splits the work and decides who consolidates).
# --------------------------------------------------------------------------------------------
def _launch_device(proc: ProcessInfo, requested: str | None) -> str | None:
    """Under a multi-GPU launcher every process must use its own GPU, not cuda:0."""
    if proc.launcher == "launched" and proc.device.startswith("cuda") and requested in (None, "cuda"):
        return proc.device
    return requested


def run_probe_parallel(config: Any, out_dir: str | os.PathLike, *, shard: str | None = None,
                       progress: bool = True) -> tuple[Path, bool]:
    """``musicjudge probe run`` on this process's share of the clips.

    Single process: exactly :func:`musicjudge.probe.runner.run_probe`. Several processes
    (launcher or ``shard="i/n"``): each scores its share of :func:`work_keys` (round-robin by
    ``model/dataset/clip`` key) without consolidating; the last to finish consolidates and
    writes the summed counts to ``run.json``. Returns ``(run_dir, consolidated)``."""
    from musicjudge.probe.runner import consolidate, run_probe, shard_paths, work_keys

    proc = current_process(shard)
    if not proc.is_distributed:
        return Path(run_probe(config, out_dir, progress=progress)), True
    out_dir = Path(out_dir)
    config.device = _launch_device(proc, config.device)
    marker_dir = out_dir / "shards"
    marker_dir.mkdir(parents=True, exist_ok=True)
    stem = "probe"
    begin_shard(marker_dir, stem, proc)
    mine = shard_items(work_keys(config), proc, key=lambda k: k.key)

    def state() -> tuple[set[str], set[str]]:
        done = {k.key for k in mine if shard_paths(out_dir, k)[0].exists()}
        errors_path = out_dir / "errors.jsonl"
        own = {k.key for k in mine}
        errored = {r["key"] for r in read_jsonl(errors_path) if r.get("key") in own and not r.get("perturbation")} \
            if errors_path.exists() else set()
        return done, errored - done

    done_before, errored_before = state()
    log.info("%s: %d of %d clips", proc.describe(), len(mine), len(mine) * proc.world_size)
    run_probe(config, out_dir, keys=mine, consolidate_results=False, progress=progress)
    done_after, errored_after = state()
    skipped_errored = 0 if getattr(config, "retry_errors", False) else len(errored_before)
    counts = {
        "keys": len(mine),
        "skipped_done": len(done_before),
        "skipped_errored": skipped_errored,
        "scored": len(done_after - done_before),
        "errors": len(errored_after) - skipped_errored,
    }
    with finishing_shard(marker_dir, stem, proc, counts=counts) as last:
        if not last:
            return out_dir, False
        consolidate(out_dir)
        total = {name: 0 for name in counts}
        for r in range(proc.world_size):
            marker = completion_marker(marker_dir, stem, r, proc.world_size)
            try:
                shard_counts = json.loads(marker.read_text(encoding="utf-8")).get("counts", {})
            except (OSError, ValueError):
                continue
            for name in total:
                total[name] += int(shard_counts.get(name, 0))
        run_json = out_dir / "run.json"
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        info.update({"counts": total, "processes": proc.world_size})
        atomic_write_json(run_json, info)
    return out_dir, True


def run_bench_parallel(model: str, benchmark: str, out_dir: str | os.PathLike, *, shard: str | None = None,
                       quick: bool = False, tasks: list[str] | None = None, n_boot: int | None = None,
                       seed: int = 0, batch_size: int = 16, model_args: dict[str, Any] | None = None,
                       progress: bool = True) -> tuple[Path | None, bool]:
    """``musicjudge bench run`` with the clip scoring split across processes.

    Single process: exactly :func:`musicjudge.bench.runner.run_benchmark`. Several processes:
    each scores its share of the benchmark's unique items (round-robin by item key) into its
    own score cache ``OUT/shards/<fingerprint>.rank{r}-of-{n}.jsonl`` (on the run folder, so it
    works across nodes); the last to finish folds every shard cache into the model's score
    cache and runs the benchmark, which then only computes metrics. Under a multi-GPU launcher
    accelerate has already made this process's GPU the current CUDA device, so models that use
    ``"cuda"`` land on their own GPU. Returns ``(results.json or None, evaluated)``."""
    from musicjudge.bench import runner as bench_runner
    from musicjudge.bench.data import load_task_data
    from musicjudge.bench.models import item_key, resolve_model
    from musicjudge.bench.tasks import load_benchmark, select_tasks

    proc = current_process(shard)
    if not proc.is_distributed:
        path = bench_runner.run_benchmark(model, benchmark, out_dir, quick=quick, tasks=tasks, n_boot=n_boot,
                                          seed=seed, batch_size=batch_size, model_args=model_args, progress=progress)
        return Path(path), True
    out = Path(out_dir)
    marker_dir = out / "shards"
    marker_dir.mkdir(parents=True, exist_ok=True)
    begin_shard(marker_dir, "bench", proc)
    bench = select_tasks(load_benchmark(benchmark, quick=quick), tasks)
    bm = resolve_model(model, model_args)
    limit = bench_runner.QUICK_ITEMS_PER_TASK if quick else None
    datas = [load_task_data(t, limit=limit) for t in bench.tasks]
    items = {item_key(it): it for d in datas for it in bench_runner._score_items_of(d)}
    main_cache = bench_runner.ScoreCache(bm.fingerprint)
    mine = [items[k] for k in shard_keys(items, proc.rank, proc.world_size) if k not in main_cache]
    rank_cache = bench_runner.ScoreCache(f"{bm.fingerprint}.rank{proc.rank}-of-{proc.world_size}", root=marker_dir)
    scored, failures = bench_runner.score_items(bm, mine, rank_cache, batch_size=batch_size, progress=progress)
    log.info("%s: scored %d of %d items (%d failed)", proc.describe(), scored, len(mine), len(failures))
    with finishing_shard(marker_dir, "bench", proc, scored=scored, failed=len(failures)) as last:
        if not last:
            return None, False
        for path in sorted(marker_dir.glob(f"{bm.fingerprint}.rank*-of-*.jsonl")):
            fresh: dict[str, dict[str, Any]] = {}
            for row in read_jsonl(path):
                if row.get("key") and row["key"] not in main_cache:
                    fresh.setdefault(row["key"], row)
            main_cache.add(list(fresh.values()))
        # every score is cached now (failed items are retried once here and recorded in errors.jsonl)
        path = bench_runner.run_benchmark(bm, bench, out, quick=quick, n_boot=n_boot, seed=seed,
                                          batch_size=batch_size, model_args=model_args, progress=progress)
    return Path(path), True


def score_shard_dir(out: str | os.PathLike) -> Path:
    """Where a data-parallel ``reward score --out OUT`` keeps its shards: ``OUT.shards/``."""
    out = Path(out)
    return out.parent / f"{out.name}.shards"


def run_reward_score_parallel(audio: str | os.PathLike, out: str | os.PathLike, *, shard: str | None = None,
                              model: Any = "builtin", text: str | None = None,
                              lyrics_file: str | os.PathLike | None = None,
                              ref_audio: str | os.PathLike | None = None, batch_size: int = 64,
                              device: str | None = None, progress: bool = True) -> tuple[dict[str, Any], bool]:
    """``musicjudge reward score`` on this process's share of the clips.

    Single process: exactly :func:`musicjudge.reward.scoring.score_to_csv`. Several processes
    (launcher or ``shard="i/n"``): a :class:`ShardWriter` over the clip ids (round-robin) in
    ``OUT.shards/`` (``score.rank{r}-of-{n}.jsonl``, one line per clip, its output row); each
    process scores its pending clips in batches of ``batch_size`` (the model is loaded only if
    something is pending, so a finished shard re-scores nothing), and the last to finish merges
    every shard and writes ``OUT`` with the same columns and row order as a one-process run.
    ``OUT.shards/job.json`` records the input, model and instruction flags; resuming into it with
    other ones is a ConfigError (clips added to the input are simply pending). Returns
    ``(summary, merged)``: ``summary`` has ``keys``, ``skipped_done``, ``scored_now`` for this
    process and, once merged, ``scored``/``failed``/``out`` of ``OUT``."""
    from musicjudge.reward.base import load_reward_model
    from musicjudge.reward.scoring import prepare_items, score_rows, score_to_csv, write_scores

    proc = current_process(shard)
    if not proc.is_distributed:
        return score_to_csv(audio, out, model=model, text=text, lyrics_file=lyrics_file, ref_audio=ref_audio,
                            batch_size=batch_size, device=device, progress=progress), True
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    items = prepare_items(audio, text=text, lyrics_file=lyrics_file, ref_audio=ref_audio)
    ids = [item_id for item_id, _ in items]
    if len(set(ids)) != len(ids):
        dup = next(k for k in ids if ids.count(k) > 1)
        raise ConfigError(f"{audio}: clip id {dup!r} occurs twice; ids must be unique to split the clips across processes")
    shard_dir = score_shard_dir(out)
    # what makes stored scores stale (new clips are fine: they are simply pending)
    job = {"audio": str(Path(audio).resolve()),
           "model": str(model) if isinstance(model, (str, os.PathLike)) else f"{type(model).__module__}.{type(model).__qualname__}",
           "text": text,
           "lyrics": stable_hash(Path(lyrics_file).read_text(encoding="utf-8").strip()) if lyrics_file is not None else None,
           "ref_audio": str(Path(ref_audio).resolve()) if ref_audio is not None else None}
    job_path = shard_dir / "job.json"
    if job_path.exists():
        try:
            before = json.loads(job_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        if before is not None and before != job:
            changed = ", ".join(k for k in job if before.get(k) != job[k])
            raise ConfigError(f"{shard_dir}: holds the shards of a different reward score job ({changed} changed); "
                              "pass another --out or delete that folder to start over")
    shard_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job_path, job)

    writer = ShardWriter(shard_dir, "score", ids, proc)
    pending = set(writer.pending)
    todo = [(k, it) for k, it in items if k in pending]
    log.info("%s: %d of %d clips, %d already scored", proc.describe(), len(writer.mine), len(ids), len(writer.mine) - len(todo))
    if todo:
        reward_model = load_reward_model(model, device=_launch_device(proc, device)) if isinstance(model, (str, os.PathLike)) else model
        starts: Iterable[int] = range(0, len(todo), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"score [{proc.rank + 1}/{proc.world_size}]", unit="batch", position=proc.local_rank)
        for start in starts:
            chunk = todo[start:start + batch_size]
            for (key, _), row in zip(chunk, score_rows(reward_model, chunk)):
                writer.record(key, [row])
    summary: dict[str, Any] = {"keys": len(writer.mine), "skipped_done": len(writer.mine) - len(todo), "scored_now": len(todo)}
    merged = writer.finish(parquet=False)
    if merged is None:
        return summary, False
    if merged.missing:
        log.warning("%s: %d clips have no score yet (e.g. %s); run the missing shards again", out, len(merged.missing),
                    merged.missing[0])
        return {**summary, "missing": len(merged.missing)}, False
    by_id = {row["id"]: row for row in read_jsonl(merged.jsonl)}
    return {**summary, **write_scores(out, [by_id[k] for k in ids])}, True
