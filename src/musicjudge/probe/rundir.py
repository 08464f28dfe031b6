"""A probe run directory: its files, per-clip shards (the resume points), the errors log,
consolidation into the documented tidy tables and reading them back.

Layout (documented in docs/probe.md)::

    RUN_DIR/config.json            effective ProbeConfig (+ fingerprint checked on resume)
    RUN_DIR/run.json               versions, start/end time, counts (runs.jsonl: every invocation)
    RUN_DIR/shards/<model>/<hash>.results.parquet   one per finished clip (the resume marker)
    RUN_DIR/shards/<model>/<hash>.curves.parquet    its per-frame curves
    RUN_DIR/errors.jsonl           skipped clips / perturbations (path, reason); errors.csv deduped
    RUN_DIR/results.parquet        consolidated: one row per (model, dataset, clip, perturbation, seed)
    RUN_DIR/clips.parquet          one row per (model, dataset, clip): original loss, plan
    RUN_DIR/curves.parquet         long format: (..., codebook, frame) -> loss_orig, loss_pert, d"""

from __future__ import annotations

import datetime as _dt
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musicjudge.errors import ConfigError
from musicjudge.io import append_jsonl, atomic_write_bytes, atomic_write_json, read_jsonl, stable_hash
from musicjudge.probe.config import ProbeConfig

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

RESULT_COLUMNS = [
    "model", "dataset", "clip_id", "path", "perturbation", "kind", "colour", "mode", "level_db", "level_ref",
    "shuffle_kind", "onset_s", "onset_frame", "end_frame", "length_frames", "length_s", "seed", "noise_seed",
    "n_frames", "frame_rate", "loss_orig", "loss_pert", "D", "orig_loss_std", "condition", "metadata",
    # region metrics (noise only; NaN for shuffles)
    "peak_start", "peak_end", "assim_end", "baseline", "peak_mean", "peak_height", "peak_area", "peak_duration",
    "assim_mean", "assim_depth", "smooth_peak_end", "smooth_peak_mean", "smooth_peak_height", "smooth_peak_area",
    "smooth_peak_duration", "smooth_assim_mean", "smooth_assim_depth", "recovery_mean", "recovery_time",
    "recovered", "recovery_var", "offset_spike", "perturbation_spec",
    # what the clip actually ran (musicjudge.probe.config.plan_perturbations / crop_window)
    "grid_onset_s", "adapted", "plan", "dropped", "crop_start_s", "source_duration_s",
]
CURVE_COLUMNS = ["model", "dataset", "clip_id", "perturbation", "seed", "codebook", "frame", "loss_orig", "loss_pert", "d"]
CLIP_COLUMNS = ["model", "dataset", "clip_id", "path", "n_frames", "frame_rate", "duration_s", "loss_orig", "orig_loss_std",
                "condition", "metadata", "crop_start_s", "source_duration_s", "adapted", "plan", "dropped"]



@dataclass(frozen=True)
class WorkKey:
    """One clip under one model: the unit of work, resume and sharding."""

    model: str  # label
    model_spec: str
    dataset: str
    clip_id: str
    path: str
    text: str | None = None
    metadata: str | None = None  # JSON object of the manifest row's other fields

    @property
    def key(self) -> str:
        return f"{self.model}/{self.dataset}/{self.clip_id}"

    @property
    def shard_stem(self) -> str:
        return stable_hash([self.dataset, self.clip_id])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_spec": self.model_spec, "dataset": self.dataset,
                "clip_id": self.clip_id, "path": self.path, "text": self.text, "metadata": self.metadata}


def shard_paths(out_dir: Path, key: WorkKey) -> tuple[Path, Path]:
    """(results shard, curves shard) of one clip; the results shard marks it as done."""
    base = Path(out_dir) / "shards" / re.sub(r"[^A-Za-z0-9_.-]+", "_", key.model)
    return base / f"{key.shard_stem}.results.parquet", base / f"{key.shard_stem}.curves.parquet"


def parquet_bytes(df: "pd.DataFrame") -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def results_frame(rows: list[dict]) -> "pd.DataFrame":
    """Result rows as a frame with exactly RESULT_COLUMNS and stable dtypes."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df = df[RESULT_COLUMNS]
    for col in ("colour", "mode", "level_ref", "shuffle_kind", "condition", "path", "metadata", "plan", "dropped"):
        df[col] = df[col].astype("string")
    for col in ("peak_start", "peak_end", "assim_end", "peak_duration", "smooth_peak_end", "smooth_peak_duration",
                "level_db", "recovery_time", "recovered", "baseline", "grid_onset_s", "crop_start_s",
                "source_duration_s"):
        df[col] = df[col].astype("float64")
    df["adapted"] = df["adapted"].astype("boolean")
    return df


def write_clip(out_dir: Path, key: WorkKey, rows: list[dict], curves: "pd.DataFrame | None",
               curve_columns: list[str] | None = None) -> None:
    """Write one finished clip's shards, curves first: the results shard marks it as done."""
    res_path, curve_path = shard_paths(out_dir, key)
    if curves is not None:
        curves.insert(0, "clip_id", key.clip_id)
        curves.insert(0, "dataset", key.dataset)
        curves.insert(0, "model", key.model)
        atomic_write_bytes(curve_path, parquet_bytes(curves[curve_columns or CURVE_COLUMNS]))
    atomic_write_bytes(res_path, parquet_bytes(results_frame(rows)))


def record_error(out_dir: Path, key: WorkKey, reason: str, perturbation: str | None = None) -> None:
    """Append a skipped clip (``perturbation`` None) or perturbation to ``errors.jsonl``."""
    append_jsonl(Path(out_dir) / "errors.jsonl", {
        "key": key.key, "model": key.model, "dataset": key.dataset, "clip_id": key.clip_id, "path": key.path,
        "perturbation": perturbation, "reason": str(reason)})


def errored_keys(out_dir: Path) -> set[str]:
    """Keys of the clips recorded as skipped (not single perturbations)."""
    path = Path(out_dir) / "errors.jsonl"
    if not path.exists():
        return set()
    return {r["key"] for r in read_jsonl(path) if r.get("key") and not r.get("perturbation")}


def check_run_dir(out_dir: Path, config: ProbeConfig) -> None:
    """ConfigError when ``out_dir`` holds computed results of different scoring settings."""
    cfg_path = out_dir / "config.json"
    if not cfg_path.exists():
        return
    try:
        previous = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return
    fp_prev = stable_hash(previous.get("scoring_fingerprint"))
    computed = (out_dir / "errors.jsonl").exists() or any((out_dir / "shards").glob("*/*.results.parquet"))
    if computed and fp_prev != stable_hash(config.scoring_fingerprint()):  # an attempt that scored nothing is no run
        raise ConfigError(
            f"{out_dir}: holds a run with different perturbation/crop/seed settings; use a new --out directory "
            "(or the same settings to resume)"
        )


def write_config(out_dir: Path, config: ProbeConfig) -> None:
    atomic_write_json(out_dir / "config.json", {**config.to_dict(), "scoring_fingerprint": config.scoring_fingerprint()})


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_run_info(out_dir: Path, started: str, counts: dict[str, Any]) -> None:
    """``run.json`` (this invocation) and a line of ``runs.jsonl`` (history of every resume)."""
    from musicjudge.report import library_versions

    run_info = {"started": started, "finished": now(), "counts": counts, "versions": library_versions()}
    atomic_write_json(out_dir / "run.json", run_info)
    append_jsonl(out_dir / "runs.jsonl", run_info)


def consolidate(out_dir: str | Path) -> dict[str, Path]:
    """Merge every shard into ``results.parquet``, ``clips.parquet`` and ``curves.parquet``
    (streamed, so curves never need to fit in memory twice) and dedupe ``errors.jsonl`` into
    ``errors.csv``. Safe to call any time; returns the written paths."""
    import pandas as pd
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    result_files = sorted((out_dir / "shards").glob("*/*.results.parquet"))
    written: dict[str, Path] = {}
    if result_files:  # shards of runs made before a column existed get it empty
        results = pd.concat([pd.read_parquet(p) for p in result_files], ignore_index=True)
        results = results.reindex(columns=RESULT_COLUMNS)
    else:
        results = results_frame([])
    results = results.sort_values(["model", "dataset", "clip_id", "kind", "perturbation", "seed"], kind="stable")
    results = results.reset_index(drop=True)
    atomic_write_bytes(out_dir / "results.parquet", parquet_bytes(results))
    written["results"] = out_dir / "results.parquet"
    clips = (results.groupby(["model", "dataset", "clip_id"], sort=True)
             .agg(path=("path", "first"), n_frames=("n_frames", "max"), loss_orig=("loss_orig", "first"),
                  orig_loss_std=("orig_loss_std", "first"), condition=("condition", "first"),
                  metadata=("metadata", "first"), frame_rate=("frame_rate", "first"),
                  crop_start_s=("crop_start_s", "first"), source_duration_s=("source_duration_s", "first"),
                  adapted=("adapted", "max"), plan=("plan", "first"), dropped=("dropped", "first")).reset_index())
    clips["duration_s"] = clips["n_frames"] / clips["frame_rate"]
    # a clip is adapted when an onset moved (a row says so) or a configured length was dropped
    clips["adapted"] = clips["adapted"].fillna(False).astype(bool) | (clips["dropped"].fillna("") != "")
    atomic_write_bytes(out_dir / "clips.parquet", parquet_bytes(clips[CLIP_COLUMNS] if len(clips) else pd.DataFrame(columns=CLIP_COLUMNS)))
    written["clips"] = out_dir / "clips.parquet"
    curve_files = sorted((out_dir / "shards").glob("*/*.curves.parquet"))
    tmp = out_dir / ".curves.parquet.tmp"
    if curve_files:
        writer = None
        try:
            for p in curve_files:
                table = pq.read_table(p)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        tmp.replace(out_dir / "curves.parquet")
        written["curves"] = out_dir / "curves.parquet"
    errors_path = out_dir / "errors.jsonl"
    if errors_path.exists():
        errs = pd.DataFrame(read_jsonl(errors_path))
        if not errs.empty:
            errs = errs.drop_duplicates(subset=["key", "perturbation"], keep="last")
            # a clip that failed once and succeeded on --retry-errors is no longer an error
            done = {f"{m}/{d}/{c}" for m, d, c in zip(results["model"], results["dataset"], results["clip_id"])}
            errs = errs[~(errs["perturbation"].isna() & errs["key"].isin(done))]
            errs.to_csv(out_dir / "errors.csv", index=False)
            written["errors"] = out_dir / "errors.csv"
    return written


def load_results(run_dir: str | Path) -> dict[str, "pd.DataFrame"]:
    """The consolidated tables of a run (``results``, ``clips``; ``errors`` if any). Runs
    :func:`consolidate` first when shards are newer than the consolidated files."""
    import pandas as pd

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir}: not a probe run directory (no config.json); run 'musicjudge probe run' first")
    res = run_dir / "results.parquet"
    shards = list((run_dir / "shards").glob("*/*.results.parquet"))
    if not res.exists() or any(p.stat().st_mtime > res.stat().st_mtime for p in shards):
        consolidate(run_dir)
    out = {"results": pd.read_parquet(res), "clips": pd.read_parquet(run_dir / "clips.parquet")}
    if (run_dir / "errors.csv").exists():
        out["errors"] = pd.read_csv(run_dir / "errors.csv")
    return out
