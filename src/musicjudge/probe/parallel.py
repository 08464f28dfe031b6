"""Data-parallel ``probe run``: each process scores its share of the clips with the probe
runner (which keeps its per-clip resume shards); the last to finish consolidates."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from musicjudge.distributed import (completion_marker, begin_shard, current_process, finishing_shard, launch_device,
                                    shard_items)
from musicjudge.io import atomic_write_json, read_jsonl

log = logging.getLogger(__name__)

def run_probe_parallel(config: Any, out_dir: str | os.PathLike, *, shard: str | None = None,
                       progress: bool = True) -> tuple[Path, bool]:
    """``musicjudge probe run`` on this process's share of the clips.

    Single process: exactly :func:`musicjudge.probe.runner.run_probe`. Several processes
    (launcher or ``shard="i/n"``): each scores its share of :func:`work_keys` (round-robin by
    ``model/dataset/clip`` key) without consolidating; the last to finish consolidates and
    writes the summed counts to ``run.json``. Returns ``(run_dir, consolidated)``."""
    from musicjudge.probe.rundir import consolidate, shard_paths
    from musicjudge.probe.runner import run_probe, work_keys

    proc = current_process(shard)
    if not proc.is_distributed:
        return Path(run_probe(config, out_dir, progress=progress)), True
    out_dir = Path(out_dir)
    config.device = launch_device(proc, config.device)
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
