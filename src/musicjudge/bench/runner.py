"""Run one model over one benchmark: score every clip once (cached per model + item, so a re-run
or an interrupted run costs nothing already done), compute the metrics with bootstrap CIs and
breakdowns, and write tidy results.

Files in the run folder:

* ``results.json``   - per-task headline metrics + CIs, model/data/code versions (lm-eval style)
* ``breakdowns.csv`` - task, dimension, breakdown, group, metric, value, ci_low, ci_high, n
* ``predictions.parquet`` - one row per evaluated item (scores, truth, instruction kind, ...)
* ``errors.jsonl``   - missing clips and clips the model could not score (id, path, reason)
"""

from __future__ import annotations

import datetime as _dt
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from musicjudge.bench import metrics as M
from musicjudge.bench.data import TaskData, load_task_data
from musicjudge.bench.models import BenchModel, bench_model, resolve_model
from musicjudge.reward.base import item_key
from musicjudge.bench.tasks import Benchmark, load_benchmark, select_tasks
from musicjudge.errors import ConfigError, ManifestError, ModelLoadError, MusicjudgeError
from musicjudge.io import append_jsonl, atomic_write_bytes, atomic_write_json, atomic_write_text, cache_dir, read_jsonl

HEADLINE_TIE_POLICY = "half"
# (tie policy, metric name in breakdowns.csv) reported for every breakdown group
BREAKDOWN_TIE_POLICIES = (("half", "accuracy"), ("as_b", "accuracy_ties_as_b"))
QUICK_ITEMS_PER_TASK = 16
QUICK_N_BOOT = 200
DIMS = ("musicality", "alignment")


# ------------------------------------------------------------------------------------------
# Score cache
# ------------------------------------------------------------------------------------------


class ScoreCache:
    """Append-only JSONL of ``{key, musicality, alignment}`` per model fingerprint under
    ``cache_dir("bench", "scores")``. Each scored batch is fsync'd before the next starts."""

    def __init__(self, fingerprint: str, root: Path | None = None) -> None:
        root = root or cache_dir("bench", "scores")
        self.path = Path(root) / f"{fingerprint}.jsonl"
        self.scores: dict[str, dict[str, float]] = {}
        if self.path.exists():
            for row in read_jsonl(self.path):
                self.scores[row["key"]] = {d: row.get(d) for d in DIMS}

    def __contains__(self, key: str) -> bool:
        return key in self.scores

    def get(self, key: str, dim: str) -> float:
        v = self.scores.get(key, {}).get(dim)
        return float("nan") if v is None else float(v)

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        append_jsonl(self.path, rows)
        for r in rows:
            self.scores[r["key"]] = {d: r.get(d) for d in DIMS}


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, MusicjudgeError) else f"{type(e).__name__}: {text}"[:300]


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def score_items(model: BenchModel, items: Sequence[Any], cache: ScoreCache, *, batch_size: int = 16,
                progress: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """Score the items not yet in ``cache``; returns (number scored now, failures). A batch that
    raises is retried item by item so one bad clip only costs itself."""
    todo: dict[str, Any] = {}
    for it in items:
        k = item_key(it)
        if k not in cache and k not in todo:
            todo[k] = it
    failures: list[dict[str, Any]] = []
    keys = list(todo)
    bar = None
    if progress and keys:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), desc=f"scoring ({model.name})", unit="clip")
    scored = 0
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        batch = [todo[k] for k in chunk]
        try:
            outs = [(chunk, batch, model.score(batch))]
        except Exception:  # noqa: BLE001 - plugins raise anything; find the bad clip(s) one by one
            outs = []
            for k, it in zip(chunk, batch):
                try:
                    outs.append(([k], [it], model.score([it])))
                except Exception as e:  # noqa: BLE001
                    failures.append({"path": it.audio, "reason": _one_line(e)})
        rows = []
        for ks, its, out in outs:
            for i, (k, it) in enumerate(zip(ks, its)):
                vals = {d: _finite_or_none(out[d][i]) if d in out else None for d in DIMS}
                if all(vals[d] is None for d in DIMS):
                    reason = model.failures.get(it.audio, "model returned no finite score")
                    failures.append({"path": it.audio, "reason": reason})
                    continue  # not cached: a fixed file is retried next run
                rows.append({"key": k, **vals})
        cache.add(rows)
        scored += len(rows)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if keys and scored == 0:
        # Nothing at all could be scored: a broken model, not bad clips. Say so instead of
        # writing a results file full of n/a.
        raise ModelLoadError(f"{model.spec}: no clip could be scored (first: {failures[0]['path']}: {failures[0]['reason']}); check the model")
    return scored, failures


# ------------------------------------------------------------------------------------------
# Metrics per task
# ------------------------------------------------------------------------------------------

_DURATIONS: dict[str, float] = {}


def _duration(path: str) -> float:
    if path not in _DURATIONS:
        try:
            import soundfile as sf

            _DURATIONS[path] = float(sf.info(path).duration)
        except Exception:  # unreadable -> unknown length bucket, the score already tells
            _DURATIONS[path] = float("nan")
    return _DURATIONS[path]


def score_items_of(data: TaskData) -> list[Any]:
    from musicjudge.reward.base import ScoreItem

    out = []
    for it in data.items:
        if data.kind == "pairs":
            out += [ScoreItem(it.audio_a, it.instruction), ScoreItem(it.audio_b, it.instruction)]
        else:
            out.append(ScoreItem(it.audio, it.instruction))
    return out


def _system_of(clip: Any) -> str | None:
    if clip.system:
        return clip.system
    for k in ("system", "model", "model_name", "generator"):
        if clip.metadata.get(k):
            return str(clip.metadata[k])
    return None


def _month_of(metadata: dict[str, Any]) -> str | None:
    """YYYY-MM from a date-like metadata field (Music Arena battles carry timestamps)."""
    for k in ("month", "date", "timestamp", "created", "time"):
        v = metadata.get(k)
        if v is None or v == "":
            continue
        try:
            import pandas as pd

            ts = pd.to_datetime(v, unit="s") if isinstance(v, (int, float)) else pd.to_datetime(str(v))
            return ts.strftime("%Y-%m")
        except (ValueError, TypeError, OverflowError):
            continue
    return None


def predictions_frame(data: TaskData, cache: ScoreCache):
    """One row per evaluated item with the model's scores and everything breakdowns need."""
    import pandas as pd
    from musicjudge.reward.base import ScoreItem

    dim = data.task.dimension
    meta_keys = metadata_breakdowns(data.task)
    rows = []
    for it in data.items:
        base = {"task": data.task.name, "id": it.id, "dimension": dim, "kind": it.instruction.kind,
                "vocal": "vocal" if it.instruction.lyrics else "instrumental", "month": _month_of(it.metadata)}
        for key in meta_keys:
            v = it.metadata.get(key)
            base[f"meta_{key}"] = None if v is None else str(v)
        if data.kind == "pairs":
            ka = item_key(ScoreItem(it.audio_a, it.instruction))
            kb = item_key(ScoreItem(it.audio_b, it.instruction))
            rows.append({**base, "score_a": cache.get(ka, dim), "score_b": cache.get(kb, dim),
                         "truth": it.preference[dim], "confidence": it.confidence.get(dim, np.nan),
                         "system_a": it.system_a or it.metadata.get("model_a"),
                         "system_b": it.system_b or it.metadata.get("model_b"),
                         "duration_s": np.nanmax([_duration(it.audio_a), _duration(it.audio_b)])})
        else:
            k = item_key(ScoreItem(it.audio, it.instruction))
            rows.append({**base, "score": cache.get(k, dim), "truth": float(it.scores[dim]),
                         "system": _system_of(it), "duration_s": _duration(it.audio)})
    return pd.DataFrame(rows)


def _estimate_row(task: str, dim: str, breakdown: str, group: str, metric: str, est: M.Estimate) -> dict[str, Any]:
    return {"task": task, "dimension": dim, "breakdown": breakdown, "group": group, "metric": metric, **est.to_dict()}


def metadata_breakdowns(task) -> list[str]:
    """Metadata keys a task asks to break results down by (``options: {metadata_breakdowns: [...]}``)."""
    keys = task.options.get("metadata_breakdowns") or []
    return [str(k) for k in ([keys] if isinstance(keys, str) else keys)]


def _meta_columns(df) -> list[str]:
    return [c for c in df.columns if c.startswith("meta_")]


def pair_metrics(df, task: str, dim: str, *, n_boot: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Headline accuracies (three tie policies) and breakdowns for a pairwise task."""
    res: dict[str, Any] = {"metric": "accuracy", "dimension": dim}
    rows: list[dict[str, Any]] = []
    scored = df[np.isfinite(df["score_a"]) & np.isfinite(df["score_b"])] if len(df) else df
    res["n_unscored"] = int(len(df) - len(scored))
    for policy in M.TIE_POLICIES:
        est = M.accuracy_estimate(scored["score_a"], scored["score_b"], scored["truth"], policy, n_boot=n_boot, seed=seed)
        name = "accuracy" if policy == HEADLINE_TIE_POLICY else f"accuracy_ties_{policy}"
        res[name] = est.value
        res[f"{name}_ci"] = [est.ci_low, est.ci_high]
        if policy == HEADLINE_TIE_POLICY:
            res["n"] = est.n
        rows.append(_estimate_row(task, dim, "all", "all", name, est))
    pred_ties = int(((scored["score_a"] == scored["score_b"]) & (scored["truth"] != "tie")).sum()) if len(scored) else 0
    res["n_predicted_ties"] = pred_ties

    def add(breakdown: str, groups: Iterable[tuple[str, Any]]) -> None:
        # every group under both conventions: the headline (a predicted tie counts 0.5) and the
        # reference evaluation's (a predicted tie is a vote for B), so published tables reproduce
        for group, sub in groups:
            for policy, metric in BREAKDOWN_TIE_POLICIES:
                est = M.accuracy_estimate(sub["score_a"], sub["score_b"], sub["truth"], policy, n_boot=n_boot, seed=seed)
                rows.append(_estimate_row(task, dim, breakdown, str(group), metric, est))

    if len(scored):
        add("instruction_kind", scored.groupby("kind"))
        add("vocal", scored.groupby("vocal"))
        for col in _meta_columns(scored):
            sub = scored[scored[col].notna()]
            if len(sub):
                add(col[len("meta_"):], sub.groupby(col))
        if scored["month"].notna().any():
            add("month", scored[scored["month"].notna()].groupby("month"))
        buckets = scored["duration_s"].map(M.length_bucket)
        add("audio_length", scored.groupby(buckets))
        conf = scored["confidence"].map(M.confidence_bucket)
        if conf.notna().any():
            add("confidence", scored[conf.notna()].groupby(conf[conf.notna()]))
        systems = sorted({s for s in list(scored["system_a"]) + list(scored["system_b"]) if isinstance(s, str) and s})
        if systems:
            add("system", ((s, scored[(scored["system_a"] == s) | (scored["system_b"] == s)]) for s in systems))
    return res, rows


def rated_metrics(df, task: str, dim: str, *, n_boot: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Clip- and system-level Spearman/Kendall/Pearson with CIs, and breakdowns (Spearman)."""
    res: dict[str, Any] = {"metric": "correlation", "dimension": dim}
    rows: list[dict[str, Any]] = []
    scored = df[np.isfinite(df["score"])] if len(df) else df
    res["n_unscored"] = int(len(df) - len(scored))
    res["n"] = int(len(scored))
    for method in M.CORRELATIONS:
        est = M.correlation_estimate(scored["score"], scored["truth"], method, n_boot=n_boot, seed=seed)
        res[method] = est.value
        res[f"{method}_ci"] = [est.ci_low, est.ci_high]
        rows.append(_estimate_row(task, dim, "all", "all", method, est))
    systems = scored["system"] if len(scored) else None
    if systems is not None and systems.notna().all() and systems.nunique() >= 3:
        res["n_systems"] = int(systems.nunique())
        for method in M.CORRELATIONS:
            est = M.correlation_estimate(scored["score"], scored["truth"], method, systems=systems, n_boot=n_boot, seed=seed)
            res[f"system_{method}"] = est.value
            res[f"system_{method}_ci"] = [est.ci_low, est.ci_high]
            rows.append(_estimate_row(task, dim, "all", "all", f"system_{method}", est))
    if len(scored):
        groupings = [("instruction_kind", scored["kind"]), ("vocal", scored["vocal"]),
                     ("audio_length", scored["duration_s"].map(M.length_bucket))]
        groupings += [(c[len("meta_"):], scored[c].fillna("n/a")) for c in _meta_columns(scored)]
        for breakdown, keys in groupings:
            for group, sub in scored.groupby(keys):
                est = M.correlation_estimate(sub["score"], sub["truth"], "spearman", n_boot=n_boot, seed=seed)
                rows.append(_estimate_row(task, dim, breakdown, str(group), "spearman", est))
    return res, rows


# ------------------------------------------------------------------------------------------
# Versions
# ------------------------------------------------------------------------------------------


def code_versions() -> dict[str, Any]:
    from musicjudge import __version__
    from musicjudge.report import library_versions

    versions = library_versions()
    versions["musicjudge"] = __version__
    try:
        here = Path(__file__).resolve().parent
        versions["git_hash"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        versions["git_hash"] = None
    return versions


def _data_version(manifest: str) -> dict[str, Any]:
    from musicjudge.io import file_sha256

    p = Path(manifest)
    return {"manifest": manifest, "sha256": file_sha256(p) if p.is_file() else None}


# ------------------------------------------------------------------------------------------
# Runner
# ------------------------------------------------------------------------------------------


def run_benchmark(model: str | BenchModel, benchmark: str | Benchmark, out_dir: str | Path, *, quick: bool = False,
                  tasks: list[str] | None = None, n_boot: int | None = None, seed: int = 0, batch_size: int = 16,
                  model_args: dict[str, Any] | None = None, progress: bool = True, limit: int | None = None,
                  root: str | None = None, split: str | None = None) -> Path:
    """Evaluate ``model`` on ``benchmark`` and write the run folder; returns results.json's path.
    ``limit``: at most this many items per task (evenly spaced; for expensive models).
    ``root``/``split``: for a data file or dataset given directly (see
    :func:`musicjudge.bench.tasks.benchmark_from_data_file`)."""
    import pandas as pd

    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench = load_benchmark(benchmark, quick=quick, root=root, split=split) if isinstance(benchmark, str) else benchmark
    bench = select_tasks(bench, tasks)
    # a spec, a BenchModel, or any object with the reward interface (a model a Python user holds)
    bm = resolve_model(model, model_args) if isinstance(model, str) else bench_model(model)
    n_boot = n_boot if n_boot is not None else (QUICK_N_BOOT if quick else M.DEFAULT_N_BOOT)
    if limit is None:
        limit = QUICK_ITEMS_PER_TASK if quick else None
    elif limit < 1:
        raise ConfigError(f"--limit {limit}: must be a positive number of items per task")

    datas = [load_task_data(t, limit=limit) for t in bench.tasks]
    check_some_present(bench, datas)
    errors: list[dict[str, Any]] = [m for d in datas for m in d.missing]
    all_items = [si for d in datas for si in score_items_of(d)]
    cache = ScoreCache(bm.fingerprint)
    n_scored, failures = score_items(bm, all_items, cache, batch_size=batch_size, progress=progress)
    errors += failure_rows(datas, failures)

    results: dict[str, Any] = {}
    breakdown_rows: list[dict[str, Any]] = []
    frames = []
    for d in datas:
        df = predictions_frame(d, cache)
        if d.kind == "pairs":
            if len(df) == 0:
                df = pd.DataFrame(columns=["score_a", "score_b", "truth", "kind", "vocal", "month", "duration_s", "confidence", "system_a", "system_b"])
            res, rows = pair_metrics(df, d.task.name, d.task.dimension, n_boot=n_boot, seed=seed)
        else:
            if len(df) == 0:
                df = pd.DataFrame(columns=["score", "truth", "kind", "vocal", "month", "duration_s", "system"])
            res, rows = rated_metrics(df, d.task.name, d.task.dimension, n_boot=n_boot, seed=seed)
        res["n_missing"] = len(d.missing)
        results[d.task.name] = res
        breakdown_rows += rows
        frames.append(df.assign(task=d.task.name) if len(df) else df)

    preds = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame()
    import io as _io

    buf = _io.BytesIO()
    preds.astype({c: "string" for c in ("truth", "system", "system_a", "system_b", "month", *_meta_columns(preds)) if c in preds}).to_parquet(buf, index=False)
    atomic_write_bytes(out / "predictions.parquet", buf.getvalue())
    pd_rows = pd.DataFrame(breakdown_rows, columns=["task", "dimension", "breakdown", "group", "metric", "value", "ci_low", "ci_high", "n"])
    atomic_write_text(out / "breakdowns.csv", pd_rows.to_csv(index=False))
    import json

    from musicjudge.io import json_default

    atomic_write_text(out / "errors.jsonl", "".join(json.dumps(e, default=json_default) + "\n" for e in errors))
    doc = {
        "results": results,
        "model": {"spec": bm.spec, "name": bm.name, "fingerprint": bm.fingerprint, "args": model_args or {}},
        "benchmark": {**bench.to_dict(), "data": {d.task.name: _data_version(d.manifest) for d in datas}},
        "config": {"quick": quick, "n_boot": n_boot, "seed": seed, "batch_size": batch_size,
                   "headline_tie_policy": HEADLINE_TIE_POLICY, "items_per_task_limit": limit,
                   "confidence_level": 0.95, "ci_method": "percentile bootstrap (scipy.stats.bootstrap)"},
        "versions": code_versions(),
        "n_items_scored_now": n_scored,
        "n_items_total": len({item_key(i) for i in all_items}),
        "n_errors": len(errors),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "total_time_s": round(time.time() - t0, 3),
    }
    atomic_write_json(out / "results.json", _json_clean(doc))
    return out / "results.json"


def check_some_present(bench: Benchmark, datas: Sequence[TaskData]) -> None:
    """A run in which every item's audio is missing is a wrong path, not bad clips: stop with
    one line saying where the relative paths were looked for."""
    if any(d.items for d in datas) or not any(d.missing for d in datas):
        return
    first = next(m for d in datas for m in d.missing)
    looked = sorted({p for d in datas for p in d.looked_in})
    n = sum(len(d.missing) for d in datas)
    raise ManifestError(f"{bench.source}: the audio of all {n} items is missing (first: {first['path']}); "
                        f"relative paths were looked for under {', '.join(looked) or 'the data file folder'}; "
                        "pass --root FOLDER (the folder the paths start from) or fix 'root:' in the benchmark")


def failure_rows(datas: Sequence[TaskData], failures: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """errors.jsonl rows of clips the model could not score: one per (task, item) that uses the clip."""
    users: dict[str, list[tuple[str, str]]] = {}
    for d in datas:
        for it in d.items:
            for path in ([it.audio_a, it.audio_b] if d.kind == "pairs" else [it.audio]):
                users.setdefault(path, []).append((d.task.name, it.id))
    rows = []
    for f in failures:
        for task, item_id in users.get(f["path"], [(None, None)]):
            rows.append({"task": task, "id": item_id, "path": f["path"], "reason": f["reason"]})
    return rows


def _json_clean(obj: Any) -> Any:
    """NaN/inf -> null so results.json is strict JSON (n/a metrics are null)."""
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
