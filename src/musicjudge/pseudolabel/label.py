"""Position-consistent pseudo-labelling.

Every pair is judged twice, once per display order (A/B and B/A). A dimension's label is kept
only when both answers name the same clip (after mapping the swapped answer back); pairs with
at least one kept dimension go to the output manifest, the rest are recorded as inconsistent.

Files under ``out_dir``:
- ``verdicts.jsonl``  append-only log of raw verdicts, one row per (pair, order), fsync'd as
  soon as it arrives. It is the run's state: a re-run skips (pair, order) already answered
  ("ok" or "malformed") and retries errors. Deleting it starts over.
- ``pseudo_pairs.jsonl``  the kept pairs in the reward schema (source "pseudo:<judge>").
- ``inconsistent.jsonl``  pairs/dimensions that were dropped and why.
- ``summary.json``  counts, kept share, position-bias rate, tie share, malformed/error counts
  and, if the input pairs carried labels, the judge's accuracy with and without the filter.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from musicjudge.errors import ConfigError
from musicjudge.pseudolabel.judges import (
    DEFAULT_DIMENSIONS,
    ORDERS,
    Judge,
    Verdict,
    judge_dimensions,
    to_manifest_label,
)

if TYPE_CHECKING:
    from musicjudge.reward.data import PreferencePair

log = logging.getLogger(__name__)

VERDICTS_FILE = "verdicts.jsonl"
PAIRS_FILE = "pseudo_pairs.jsonl"
INCONSISTENT_FILE = "inconsistent.jsonl"
SUMMARY_FILE = "summary.json"
DONE_STATUSES = ("ok", "malformed")  # "error" rows are retried on the next run


@dataclass
class LabelResult:
    out_dir: Path
    pairs_path: Path
    summary: dict[str, Any]
    kept: list["PreferencePair"] = field(default_factory=list)


def read_verdicts(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Latest usable verdict per (pair_id, order); an "error" row never hides a later answer."""
    from musicjudge.io import read_jsonl

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    if not path.exists():
        return latest
    for row in read_jsonl(path):
        key = (str(row.get("pair_id")), str(row.get("order")))
        if key not in latest or latest[key].get("status") not in DONE_STATUSES:
            latest[key] = row
    return latest


def repair_torn_tail(path: Path) -> bool:
    """Cut a torn last line left by a crash mid-write, so the next append starts on a fresh
    line (otherwise the torn bytes and the new row would merge into one invalid line)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return False
        f.seek(0)
        data = f.read()
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)
    log.warning("%s: removed a torn last line left by an interrupted run", path)
    return True


def _verdict_row(pair: "PreferencePair", order: str, verdict: Verdict, judge_name: str) -> dict[str, Any]:
    return {
        "pair_id": pair.id,
        "order": order,
        "judge": judge_name,
        "status": verdict.status,
        "labels": verdict.labels,  # displayed terms
        "labels_manifest": {d: to_manifest_label(v, order) for d, v in verdict.labels.items()},
        "confidence": verdict.confidence,
        "reason": verdict.reason,
        "raw": verdict.raw,
        "error": verdict.error,
        "cached": verdict.cached,
        "attempts": verdict.attempts,
        "request_hash": verdict.request_hash,
        "time": time.time(),
    }


def _run_requests(judge: Judge, requests: list[tuple["PreferencePair", str]],
                  workers: int) -> Iterator[list[tuple["PreferencePair", str, Verdict]]]:
    """Yield verdicts as they arrive (completion order), in chunks that are written together:
    one chunk per batch for batching judges, one verdict per chunk otherwise."""
    judge_many = getattr(judge, "judge_many", None)
    if judge_many is not None:
        batch = max(1, int(getattr(judge, "batch_size", 16)))
        for start in range(0, len(requests), batch):
            chunk = requests[start:start + batch]
            yield [(pair, order, verdict) for (pair, order), verdict in zip(chunk, judge_many(chunk))]
        return
    if workers <= 1:
        for pair, order in requests:
            yield [(pair, order, judge.judge(pair, order))]
        return
    # Bounded in-flight work: a crash loses at most a few unanswered requests.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
        pending: dict[Any, tuple["PreferencePair", str]] = {}
        queue = iter(requests)
        try:
            for _ in range(workers * 2):
                item = next(queue, None)
                if item is None:
                    break
                pending[pool.submit(judge.judge, *item)] = item
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    pair, order = pending.pop(fut)
                    yield [(pair, order, fut.result())]
                    item = next(queue, None)
                    if item is not None:
                        pending[pool.submit(judge.judge, *item)] = item
        finally:
            for fut in pending:
                fut.cancel()


def label_pairs(
    pairs: Sequence["PreferencePair"],
    judge: Judge,
    out_dir: str | Path,
    *,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    workers: int | None = None,
    require_all: bool = False,
    keep_ties: bool = True,
    progress: bool = True,
) -> LabelResult:
    """Judge every pair in both orders (resuming from ``out_dir/verdicts.jsonl``), then write
    the position-consistent labels. See the module docstring for the files written."""
    from tqdm.auto import tqdm

    from musicjudge.io import append_jsonl

    dims = tuple(dimensions)
    unknown = [d for d in dims if d not in DEFAULT_DIMENSIONS]
    if unknown or not dims:
        raise ConfigError(f"dimensions {list(dims)}: choose from {', '.join(DEFAULT_DIMENSIONS)}")
    ids = [p.id for p in pairs]
    if len(set(ids)) != len(ids):
        raise ConfigError("pairs: ids repeat; each pair needs a unique id")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    verdicts_path = out_dir / VERDICTS_FILE
    repair_torn_tail(verdicts_path)
    existing = read_verdicts(verdicts_path)
    others = sorted({str(row.get("judge")) for row in existing.values()} - {judge.name})
    if others:
        # Mixing two judges' answers would make the consistency check meaningless.
        raise ConfigError(f"{verdicts_path}: holds verdicts of judge {others[0]!r}, not {judge.name!r}; use another --out folder")
    done = {k for k, row in existing.items() if row.get("status") in DONE_STATUSES}
    requests = [(p, o) for p in pairs for o in ORDERS if (p.id, o) not in done]
    n_workers = int(workers or getattr(judge, "concurrency", 1) or 1)
    log.info("%d pairs, %d verdicts already on disk, %d requests to make", len(pairs), len(done), len(requests))
    bar = tqdm(total=len(pairs) * 2, initial=len(pairs) * 2 - len(requests), desc=f"judging ({judge.name})",
               unit="verdict", disable=not progress)
    try:
        for chunk in _run_requests(judge, requests, n_workers):
            append_jsonl(verdicts_path, [_verdict_row(pair, order, verdict, judge.name) for pair, order, verdict in chunk])
            bar.update(len(chunk))
    finally:
        bar.close()
    return finalise(pairs, judge.name, out_dir, dimensions=dims, require_all=require_all, keep_ties=keep_ties)


def finalise(
    pairs: Sequence["PreferencePair"],
    judge_name: str,
    out_dir: str | Path,
    *,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    require_all: bool = False,
    keep_ties: bool = True,
) -> LabelResult:
    """Turn the verdict log into the kept manifest, the inconsistent list and the summary."""
    from musicjudge.io import atomic_write_json, atomic_write_text
    from musicjudge.reward.data import PreferencePair, write_pairs

    out_dir = Path(out_dir)
    verdicts = read_verdicts(out_dir / VERDICTS_FILE)
    per_dim = {d: {"judged": 0, "consistent": 0, "inconsistent": 0, "both_first": 0, "both_second": 0,
                   "first_choices": 0, "non_tie_answers": 0, "kept": 0, "kept_ties": 0} for d in dimensions}
    acc = {d: {"gold": 0, "single_correct": 0, "single_n": 0, "kept_correct": 0, "kept_n": 0} for d in dimensions}
    status_counts = {"ok": 0, "malformed": 0, "error": 0, "missing": 0}
    kept: list[PreferencePair] = []
    inconsistent_rows: list[dict[str, Any]] = []
    for pair in pairs:
        rows = {o: verdicts.get((pair.id, o)) for o in ORDERS}
        for o in ORDERS:
            status_counts[rows[o]["status"] if rows[o] else "missing"] += 1
        if not all(r and r.get("status") == "ok" for r in rows.values()):
            bad = {o: (r["status"] if r else "missing") for o, r in rows.items()}
            inconsistent_rows.append({"pair_id": pair.id, "reason": "no valid verdict in both orders", "status": bad})
            continue
        preference: dict[str, str] = {}
        confidence: dict[str, float] = {}
        dropped: dict[str, Any] = {}
        for dim in judge_dimensions(pair, dimensions):
            shown = {o: rows[o]["labels"].get(dim) for o in ORDERS}
            if any(v is None for v in shown.values()):
                continue
            mapped = {o: to_manifest_label(shown[o], o) for o in ORDERS}
            stats = per_dim[dim]
            stats["judged"] += 1
            for v in shown.values():
                if v != "tie":
                    stats["non_tie_answers"] += 1
                    stats["first_choices"] += v == "A"
            gold = pair.preference.get(dim)
            if gold is not None:
                acc[dim]["gold"] += 1
                acc[dim]["single_n"] += 1
                acc[dim]["single_correct"] += mapped["AB"] == gold
            if mapped["AB"] == mapped["BA"]:
                stats["consistent"] += 1
                if mapped["AB"] == "tie" and not keep_ties:
                    dropped[dim] = {"reason": "tie", "shown": shown}
                    continue
                preference[dim] = mapped["AB"]
                confs = [rows[o].get("confidence", {}).get(dim) for o in ORDERS]
                confs = [c for c in confs if c is not None]
                if confs:
                    confidence[dim] = sum(confs) / len(confs)
                if gold is not None:
                    acc[dim]["kept_n"] += 1
                    acc[dim]["kept_correct"] += mapped["AB"] == gold
            else:
                stats["inconsistent"] += 1
                # Same displayed slot both times = the judge followed the position, not the music.
                stats["both_first"] += shown["AB"] == shown["BA"] == "A"
                stats["both_second"] += shown["AB"] == shown["BA"] == "B"
                dropped[dim] = {"reason": "inconsistent", "shown": shown, "mapped": mapped}
        wanted = judge_dimensions(pair, dimensions)
        is_kept = bool(preference) and (not require_all or all(d in preference for d in wanted))
        if is_kept:
            for dim in preference:
                per_dim[dim]["kept"] += 1
                per_dim[dim]["kept_ties"] += preference[dim] == "tie"
            reasons = {o: rows[o].get("reason") for o in ORDERS if rows[o].get("reason")}
            meta = {"judge": judge_name, "orders": {o: rows[o]["labels"] for o in ORDERS}}
            if reasons:
                meta["reasons"] = reasons
            if pair.preference:
                meta["input_preference"] = dict(pair.preference)
            kept.append(PreferencePair(
                id=pair.id, instruction=pair.instruction, audio_a=pair.audio_a, audio_b=pair.audio_b,
                preference=preference, confidence=confidence, annotator=judge_name, source=f"pseudo:{judge_name}",
                system_a=pair.system_a, system_b=pair.system_b, metadata=meta,
            ))
        if dropped:
            inconsistent_rows.append({"pair_id": pair.id, "reason": "dropped dimensions", "dimensions": dropped,
                                      "kept_pair": is_kept})

    n = len(pairs)
    summary: dict[str, Any] = {
        "judge": judge_name,
        "pairs": n,
        "kept_pairs": len(kept),
        "kept_share": round(len(kept) / n, 4) if n else None,
        "verdicts": status_counts,
        "malformed": status_counts["malformed"],
        "errors": status_counts["error"],
        "require_all": require_all,
        "keep_ties": keep_ties,
        "dimensions": {},
    }
    for dim, s in per_dim.items():
        judged = s["judged"]
        d_summary = {
            **s,
            "consistent_share": round(s["consistent"] / judged, 4) if judged else None,
            "inconsistent_share": round(s["inconsistent"] / judged, 4) if judged else None,
            # Net rate of following the first slot: an unbiased but noisy judge lands on
            # "same slot twice" equally often for first and second, so the difference estimates
            # the probability that the judge answers by position (exactly, for the simulated judge).
            "position_bias_rate": round((s["both_first"] - s["both_second"]) / judged, 4) if judged else None,
            "first_position_share": round(s["first_choices"] / s["non_tie_answers"], 4) if s["non_tie_answers"] else None,
            "tie_share_kept": round(s["kept_ties"] / s["kept"], 4) if s["kept"] else None,
        }
        a = acc[dim]
        if a["gold"]:
            d_summary["accuracy"] = {
                "labelled_pairs": a["gold"],
                "single_order_accuracy": round(a["single_correct"] / a["single_n"], 4),
                "kept_accuracy": round(a["kept_correct"] / a["kept_n"], 4) if a["kept_n"] else None,
                "kept_labels": a["kept_n"],
            }
        summary["dimensions"][dim] = d_summary
    pairs_path = write_pairs(out_dir / PAIRS_FILE, kept)
    import json

    from musicjudge.io import json_default

    atomic_write_text(out_dir / INCONSISTENT_FILE,
                      "".join(json.dumps(r, ensure_ascii=False, default=json_default) + "\n" for r in inconsistent_rows))
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return LabelResult(out_dir=out_dir, pairs_path=pairs_path, summary=summary, kept=kept)
