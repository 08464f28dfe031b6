"""Data-parallel ``bench run``: each process scores its share of the benchmark's unique items
into its own score cache; the last to finish folds them into the model's cache and evaluates."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from musicjudge.distributed import begin_shard, current_process, finishing_shard, shard_keys
from musicjudge.io import read_jsonl

log = logging.getLogger(__name__)

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
    from musicjudge.bench.models import resolve_model
    from musicjudge.reward.base import item_key
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
    bench = select_tasks(load_benchmark(benchmark, quick=quick) if isinstance(benchmark, str) else benchmark, tasks)
    bm = resolve_model(model, model_args)
    limit = bench_runner.QUICK_ITEMS_PER_TASK if quick else None
    datas = [load_task_data(t, limit=limit) for t in bench.tasks]
    items = {item_key(it): it for d in datas for it in bench_runner.score_items_of(d)}
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
