"""Data-parallel ``reward score``: a :class:`~musicjudge.distributed.ShardWriter` over the clip ids;
the last process to finish writes OUT with the one-process columns and row order."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from musicjudge.distributed import ShardWriter, current_process, launch_device
from musicjudge.errors import ConfigError
from musicjudge.io import atomic_write_json, read_jsonl, stable_hash

log = logging.getLogger(__name__)

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
    from musicjudge.reward.registry import load_reward_model
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
        reward_model = load_reward_model(model, device=launch_device(proc, device)) if isinstance(model, (str, os.PathLike)) else model
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
