"""Probe runner: for every (model, data set, clip) score the original once and every
perturbation of the grid, analyse the loss-difference curves and write tidy results.

Layout of a run directory (documented in docs/probe.md)::

    RUN_DIR/config.json            effective ProbeConfig (+ fingerprint checked on resume)
    RUN_DIR/run.json               versions, start/end time, counts
    RUN_DIR/shards/<model>/<hash>.results.parquet   one per finished clip (the resume marker)
    RUN_DIR/shards/<model>/<hash>.curves.parquet    its per-frame curves
    RUN_DIR/errors.jsonl           skipped clips / perturbations (path, reason)
    RUN_DIR/results.parquet        consolidated: one row per (model, dataset, clip, perturbation, seed)
    RUN_DIR/clips.parquet          one row per (model, dataset, clip): original loss
    RUN_DIR/curves.parquet         long format: (..., codebook, frame) -> loss_orig, loss_pert, d

The unit of work is a clip (:class:`WorkKey`); :func:`work_keys` lists them explicitly so a
launcher can shard the list across processes (``run_probe(..., keys=my_share,
consolidate=False)`` per process, then :func:`consolidate` once). A clip's shard is written
atomically when the clip is done, so an interrupted run loses at most the clip in flight and
a re-run skips every finished key."""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from musicjudge.errors import AudioError, ConfigError, ManifestError, MusicjudgeError
from musicjudge.io import append_jsonl, atomic_write_bytes, atomic_write_json, read_jsonl, stable_hash
from musicjudge.probe.config import Analysis, ProbeConfig, model_label
from musicjudge.probe.profile import region_metrics

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "model", "dataset", "clip_id", "path", "perturbation", "kind", "colour", "mode", "level_db", "level_ref",
    "shuffle_kind", "onset_s", "onset_frame", "end_frame", "length_frames", "length_s", "seed", "noise_seed",
    "n_frames", "frame_rate", "loss_orig", "loss_pert", "D", "orig_loss_std", "condition", "metadata",
    # region metrics (noise only; NaN for shuffles)
    "peak_start", "peak_end", "assim_end", "baseline", "peak_mean", "peak_height", "peak_area", "peak_duration",
    "assim_mean", "assim_depth", "smooth_peak_end", "smooth_peak_mean", "smooth_peak_height", "smooth_peak_area",
    "smooth_peak_duration", "smooth_assim_mean", "smooth_assim_depth", "recovery_mean", "recovery_time",
    "recovered", "recovery_var", "offset_spike", "perturbation_spec",
]
CURVE_COLUMNS = ["model", "dataset", "clip_id", "perturbation", "seed", "codebook", "frame", "loss_orig", "loss_pert", "d"]
CLIP_COLUMNS = ["model", "dataset", "clip_id", "path", "n_frames", "frame_rate", "duration_s", "loss_orig", "orig_loss_std",
                "condition", "metadata"]


# --------------------------------------------------------------------------------------------
# Work keys
# --------------------------------------------------------------------------------------------
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


def list_clips(dataset_path: str, limit: int | None = None) -> list[tuple[str, str, str | None, str | None]]:
    """(clip_id, path, text, metadata JSON) of a data set: a folder (ids = relative paths), a
    JSONL/CSV/Parquet manifest or a Hugging Face dataset folder, read by the one loader of user
    data layouts (:func:`musicjudge.data.sources.list_audio_items`; ``PATH?split=..&root=..``
    carries ``--split``/``--root``)."""
    from musicjudge.data.sources import list_audio_items

    return [(it.id, it.path, it.text, it.metadata) for it in list_audio_items(dataset_path, limit=limit)]


def work_keys(config: ProbeConfig) -> list[WorkKey]:
    """Every (model, dataset, clip) of the run, model-major, in a stable order."""
    if not config.models:
        raise ConfigError("no model given; pass --model builtin (or a MusicGen hub id / path, or module:Class)")
    if not config.datasets:
        raise ConfigError("no data set given; pass --audio DIR_OR_MANIFEST (repeatable, name=path allowed)")
    listed = {d.name: list_clips(d.path, d.limit) for d in config.datasets}
    keys = []
    for spec in config.models:
        label, model_spec = model_label(spec)
        for d in config.datasets:
            for clip_id, path, text, metadata in listed[d.name]:
                keys.append(WorkKey(label, model_spec, d.name, clip_id, path, text, metadata))
    return keys


# --------------------------------------------------------------------------------------------
# Perturbation grid
# --------------------------------------------------------------------------------------------
def noise_grid(*, colours, onsets_s, lengths_frames, levels_db, level_ref="dbfs", modes=("replace",), frame_rate=50.0):
    """Noise specs (onsets converted to frames of the model's rate) via perturb.build_grid."""
    from musicjudge.perturb import build_grid

    onsets = [round(o * frame_rate) for o in onsets_s]
    return build_grid(colours=colours, levels=levels_db, onsets=onsets, lengths=lengths_frames, modes=modes,
                      shuffle_kinds=(), unit="frames", frame_rate=frame_rate, level_ref=level_ref)


def perturbation_grid(config: ProbeConfig, frame_rate: float) -> list:
    """The run's perturbation specs (noise, then shuffles) for a model of ``frame_rate``."""
    from musicjudge.perturb import build_grid

    specs = []
    if config.noise.enabled:
        n = config.noise
        specs += noise_grid(colours=n.colours, onsets_s=n.onsets_s, lengths_frames=n.lengths_frames,
                            levels_db=n.levels_db, level_ref=n.level_ref, modes=n.modes, frame_rate=frame_rate)
    if config.shuffle.enabled:
        s = config.shuffle
        range_end = None if s.range_end_s is None else round(s.range_end_s * frame_rate)
        specs += build_grid(modes=(), shuffle_kinds=s.kinds, shuffle_blocks=s.blocks_frames,
                            onsets=[round(s.onset_s * frame_rate)], unit="frames", frame_rate=frame_rate,
                            shuffle_range_end=range_end)
    return specs


def required_duration_s(perturbations: Sequence, frame_rate: float, min_recovery_s: float) -> float:
    """Shortest clip (s) that holds every perturbation plus ``min_recovery_s`` after it."""
    ends = []
    for p in perturbations:
        onset_s = p.onset / frame_rate if p.unit == "frames" else p.onset
        if p.type == "noise":
            length_s = p.length / frame_rate if p.unit == "frames" else p.length
        elif p.range_end is not None:
            length_s = (p.range_end / frame_rate if p.unit == "frames" else p.range_end) - onset_s
        else:
            length_s = 2 * p.block / frame_rate
        ends.append(onset_s + length_s)
    return (max(ends) if ends else 0.0) + min_recovery_s


# --------------------------------------------------------------------------------------------
# Scoring one clip
# --------------------------------------------------------------------------------------------
def _noise_seed(seed: int, clip_id: str) -> int:
    # each clip gets its own noise draw (independent clips), reproducible from (seed, clip id)
    return int(stable_hash([int(seed), clip_id]), 16) % (2**31)


def delay_pattern_lead(lm) -> int:
    """Largest codebook delay of a delay-pattern LM (frames by which a code change reaches back
    to earlier frames' later codebooks); 0 for models without one."""
    decoder = getattr(lm, "decoder", None)
    if decoder is None or not hasattr(getattr(decoder, "config", None), "num_codebooks"):
        return 0
    from musicjudge.lm.scoring import codebook_delays

    return int(max(codebook_delays(decoder)))


class ClipScorer:
    """Scores one clip's original and all its perturbations under one model and turns the
    token losses into result rows and curve rows."""

    def __init__(self, lm, perturbations: Sequence, *, seeds: Sequence[int] = (0,), condition: str | None = None,
                 batch_size: int | None = None, analysis: Analysis | None = None, min_recovery_s: float = 1.0,
                 use_engine: bool = True) -> None:
        if not perturbations:
            raise ConfigError("the perturbation grid is empty; enable noise or shuffle perturbations")
        self.lm = lm
        self.perturbations = list(perturbations)
        self.seeds = list(seeds)
        self.condition = condition
        self.batch_size = None if batch_size is None else int(batch_size)
        self.analysis = analysis or Analysis()
        self.min_duration_s = required_duration_s(self.perturbations, lm.frame_rate, min_recovery_s)
        self.use_engine = use_engine
        self.lookahead = int(lm.lookahead_frames)
        self.lead = delay_pattern_lead(lm)
        self.scored_clips = 0  # how many clips this scorer actually scored (resume checks)
        self.engine_stats: dict[str, int] = {}  # decoder positions: naive vs computed with prefix sharing

    def load(self, path: str, *, crop_start: float = 0.0, crop_duration: float | None = None) -> np.ndarray:
        """Mono wave at the model's rate, cropped; AudioError if unreadable/silent/too short."""
        from musicjudge.audio import audio_info, load_audio

        duration = crop_duration
        if crop_duration is not None:
            # a clip shorter than the crop is fine as long as it holds the perturbations
            available = audio_info(path).duration - crop_start
            duration = min(crop_duration, max(available, 0.0))
        return load_audio(path, self.lm.sample_rate, offset=crop_start, duration=duration or None,
                          min_duration=self.min_duration_s)

    def _losses(self, wave: np.ndarray, perturbed: list[np.ndarray], condition: str | None):
        """TokenNLL of the original and of each perturbed wave (engine if available)."""
        lm = self.lm
        if self.use_engine and hasattr(lm, "score_perturbations"):
            try:
                import musicjudge.lm.engine  # noqa: F401
            except ImportError:
                pass
            else:
                stats: dict = {}
                orig, pert = lm.score_perturbations(wave, perturbed, condition=condition,
                                                    batch_size=self.batch_size, stats=stats)
                for name in ("positions_naive", "positions_computed"):
                    self.engine_stats[name] = self.engine_stats.get(name, 0) + int(stats.get(name, 0))
                return orig, list(pert)
        import inspect

        codes = lm.encode_batch([wave, *perturbed])
        kwargs = {"condition": condition}
        if "batch_size" in inspect.signature(lm.token_nll_batch).parameters:  # optional in the protocol
            kwargs["batch_size"] = self.batch_size or 8
        nlls = lm.token_nll_batch(codes, **kwargs)
        if len(nlls) != len(codes):
            raise ConfigError(f"{getattr(lm, 'name', 'model')}: token_nll_batch returned {len(nlls)} results for "
                              f"{len(codes)} inputs; fix the MusicLM implementation")
        return nlls[0], list(nlls[1:])

    def score(self, wave: np.ndarray, *, clip_id: str, path: str = "", condition: str | None = None,
              curves: bool | str = True, on_error=None) -> tuple[list[dict], "pd.DataFrame | None"]:
        """Result rows (one per perturbation x seed) and, if ``curves``, the long-format curve
        rows (``"codebooks"``/True: per codebook + mean (codebook -1); ``"mean"``: mean only).
        A perturbation that cannot be applied to this clip is passed to ``on_error(spec, err)``
        (or raised if None) and the rest go on."""
        import pandas as pd

        lm = self.lm
        sr, fr = lm.sample_rate, float(lm.frame_rate)
        condition = condition if condition is not None else self.condition
        jobs, waves = [], []
        for spec in self.perturbations:
            for seed in self.seeds:
                nseed = _noise_seed(seed, clip_id)
                try:
                    pert, info = spec.apply_with_info(wave, sr, nseed, clip=path or clip_id)
                except MusicjudgeError as e:
                    if on_error is None:
                        raise
                    on_error(spec, e)
                    continue
                jobs.append((spec, seed, nseed, info))
                waves.append(pert)
        if not jobs:
            raise AudioError(f"{path or clip_id}: no perturbation could be applied to this clip; see errors.jsonl")
        orig, perturbed = self._losses(wave, waves, condition)
        self.scored_clips += 1
        orig_frame = orig.frame_curve().double().numpy()
        orig_cb = orig.codebook_curves().double().numpy()
        loss_orig = orig.mean()
        finite = orig_frame[np.isfinite(orig_frame)]
        orig_std = float(np.std(finite)) if finite.size > 1 else float("nan")
        if not math.isfinite(loss_orig):
            raise ConfigError(f"{path or clip_id}: the model returned no valid token loss; is the clip long enough?")
        hop = sr / fr
        a = self.analysis
        rows, curve_parts = [], []
        for (spec, seed, nseed, info), nll in zip(jobs, perturbed):
            pert_frame = nll.frame_curve().double().numpy()
            n = min(pert_frame.size, orig_frame.size)
            d = pert_frame[:n] - orig_frame[:n]
            onset_frame = int(info["start"] // hop)
            end_frame = int(math.ceil(info["end"] / hop))
            is_noise = spec.type == "noise"
            length_frames = int(round(spec.length if spec.unit == "frames" else spec.length * fr)) if is_noise else int(spec.block)
            row = {
                "model": "", "dataset": "", "clip_id": clip_id, "path": path, "perturbation": spec.key,
                "kind": spec.type, "colour": getattr(spec, "colour", None) if is_noise else None,
                "mode": spec.mode if is_noise else None, "level_db": spec.level_db if is_noise else float("nan"),
                "level_ref": spec.level_ref if is_noise else None, "shuffle_kind": None if is_noise else spec.kind,
                "onset_s": info["start"] / sr, "onset_frame": onset_frame, "end_frame": end_frame,
                "length_frames": length_frames, "length_s": length_frames / fr, "seed": int(seed),
                "noise_seed": int(nseed), "n_frames": int(n), "frame_rate": fr, "loss_orig": loss_orig, "loss_pert": nll.mean(),
                "condition": None if condition is None else str(condition), "orig_loss_std": orig_std,
                "perturbation_spec": json.dumps(spec.to_dict(), sort_keys=True),
            }
            row["D"] = row["loss_pert"] - loss_orig
            if is_noise and onset_frame < n:
                row.update(region_metrics(d, onset_frame, end_frame, lookahead=self.lookahead, lead=self.lead,
                                          consecutive=a.consecutive, smooth_window=a.smooth_window,
                                          loss_scale=orig_std, tol_frac=a.tol_frac, offset_window=a.offset_window))
            rows.append(row)
            if curves:
                frames = np.arange(n)
                parts = [(-1, orig_frame[:n], pert_frame)]
                if curves != "mean":
                    pert_cb = nll.codebook_curves().double().numpy()
                    parts += [(k, orig_cb[k, :n], pert_cb[k, :n]) for k in range(orig_cb.shape[0])]
                for k, lo, lp in parts:
                    lp = lp[:n]
                    curve_parts.append(pd.DataFrame({
                        "perturbation": spec.key, "seed": np.int32(seed), "codebook": np.int16(k),
                        "frame": frames.astype(np.int32), "loss_orig": lo.astype(np.float32),
                        "loss_pert": lp.astype(np.float32), "d": (lp - lo).astype(np.float32),
                    }))
        curve_df = pd.concat(curve_parts, ignore_index=True) if curve_parts else None
        return rows, curve_df


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------
def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def shard_paths(out_dir: Path, key: WorkKey) -> tuple[Path, Path]:
    base = Path(out_dir) / "shards" / _safe(key.model)
    return base / f"{key.shard_stem}.results.parquet", base / f"{key.shard_stem}.curves.parquet"


def _parquet_bytes(df: "pd.DataFrame") -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _results_frame(rows: list[dict]) -> "pd.DataFrame":
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df = df[RESULT_COLUMNS]
    for col in ("colour", "mode", "level_ref", "shuffle_kind", "condition", "path", "metadata"):
        df[col] = df[col].astype("string")
    for col in ("peak_start", "peak_end", "assim_end", "peak_duration", "smooth_peak_end", "smooth_peak_duration",
                "level_db", "recovery_time", "recovered", "baseline"):
        df[col] = df[col].astype("float64")
    return df


def _versions() -> dict[str, str]:
    from musicjudge.report import library_versions

    return library_versions()


def _check_run_dir(out_dir: Path, config: ProbeConfig) -> None:
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


def _check_crop_fits(config: ProbeConfig, required_s: float) -> None:
    """A crop shorter than the perturbation grid needs would fail every clip: say so once."""
    crop = config.crop_duration_s
    if crop is not None and crop + 1e-9 < required_s:
        raise ConfigError(
            f"crop_duration_s={crop:g}: the perturbation grid needs {required_s:.2f} s per clip (latest perturbation "
            f"end + min_recovery_s={config.min_recovery_s:g} s); raise --crop-duration or move --onsets / "
            "--shuffle-onset earlier / use shorter --lengths"
        )


def _errored_keys(out_dir: Path) -> set[str]:
    path = out_dir / "errors.jsonl"
    if not path.exists():
        return set()
    return {r["key"] for r in read_jsonl(path) if r.get("key") and not r.get("perturbation")}


def run_probe(config: ProbeConfig, out_dir: str | Path, *, lms: dict[str, Any] | None = None,
              keys: Sequence[WorkKey] | None = None, consolidate_results: bool = True,
              progress: bool = True) -> Path:
    """Run (or resume) a probe experiment into ``out_dir`` and return ``out_dir``.

    ``lms``: already loaded models by label (else each model spec goes through
    :func:`musicjudge.lm.loader.load_music_lm`); ``keys``: a subset of :func:`work_keys` (a
    shard of a multi-process run); ``consolidate_results``: write results/clips/curves
    Parquet files at the end. Bad clips are recorded in ``errors.jsonl`` and skipped;
    finished clips are never recomputed. Counts land in ``run.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_run_dir(out_dir, config)
    all_keys = list(keys) if keys is not None else work_keys(config)
    atomic_write_json(out_dir / "config.json", {**config.to_dict(), "scoring_fingerprint": config.scoring_fingerprint()})
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    errored = set() if config.retry_errors else _errored_keys(out_dir)
    pending = [k for k in all_keys if not shard_paths(out_dir, k)[0].exists() and k.key not in errored]
    counts = {"keys": len(all_keys), "skipped_done": 0, "skipped_errored": 0, "scored": 0, "errors": 0}
    counts["skipped_errored"] = sum(1 for k in all_keys if k.key in errored and not shard_paths(out_dir, k)[0].exists())
    counts["skipped_done"] = len(all_keys) - len(pending) - counts["skipped_errored"]
    by_model: dict[str, list[WorkKey]] = {}
    for k in pending:
        by_model.setdefault(k.model, []).append(k)
    bar = None
    errors_path = out_dir / "errors.jsonl"
    try:
        for label, model_keys in by_model.items():
            lm = (lms or {}).get(label)
            if lm is None:
                from musicjudge.lm.loader import load_music_lm

                lm = load_music_lm(model_keys[0].model_spec, device=config.device, dtype=config.dtype)
            from musicjudge.lm.base import make_condition  # text, or text + melody reference (MusicGen-Melody)

            scorer = ClipScorer(lm, perturbation_grid(config, float(lm.frame_rate)), seeds=config.seeds,
                                condition=make_condition(config.condition, config.melody),
                                batch_size=config.batch_size, analysis=config.analysis,
                                min_recovery_s=config.min_recovery_s)
            _check_crop_fits(config, scorer.min_duration_s)
            if progress and bar is None:  # started after the first model loads, so load errors print cleanly
                from tqdm.auto import tqdm

                bar = tqdm(total=len(pending), desc="probe", unit="clip")
            for key in model_keys:
                if bar is not None:
                    bar.set_postfix_str(key.key[-40:])

                def record(spec, err, key=key):
                    append_jsonl(errors_path, {"key": key.key, "model": key.model, "dataset": key.dataset,
                                               "clip_id": key.clip_id, "path": key.path, "perturbation": spec.key,
                                               "reason": str(err)})

                condition = make_condition(key.text if (config.condition_from_manifest and key.text) else config.condition,
                                           config.melody)
                try:
                    wave = scorer.load(key.path, crop_start=config.crop_start_s, crop_duration=config.crop_duration_s)
                    rows, curves = scorer.score(wave, clip_id=key.clip_id, path=key.path, condition=condition,
                                                curves=config.save_curves if config.save_curves != "none" else False,
                                                on_error=record)
                except ConfigError:
                    raise  # a setting this model rejects (e.g. a text condition for an unconditional LM): not the clip's fault
                except MusicjudgeError as e:
                    append_jsonl(errors_path, {"key": key.key, "model": key.model, "dataset": key.dataset,
                                               "clip_id": key.clip_id, "path": key.path, "perturbation": None,
                                               "reason": str(e)})
                    counts["errors"] += 1
                    log.warning("skipped %s: %s", key.path, e)
                    if bar is not None:
                        bar.update(1)
                    continue
                for r in rows:
                    r["model"], r["dataset"], r["metadata"] = key.model, key.dataset, key.metadata
                res_path, curve_path = shard_paths(out_dir, key)
                if curves is not None:
                    curves.insert(0, "clip_id", key.clip_id)
                    curves.insert(0, "dataset", key.dataset)
                    curves.insert(0, "model", key.model)
                    atomic_write_bytes(curve_path, _parquet_bytes(curves[CURVE_COLUMNS]))
                # the results shard is written last: its existence marks the clip as done
                atomic_write_bytes(res_path, _parquet_bytes(_results_frame(rows)))
                counts["scored"] += 1
                if bar is not None:
                    bar.update(1)
            for name, value in scorer.engine_stats.items():
                counts[name] = counts.get(name, 0) + value
    finally:
        if bar is not None:
            bar.close()
        run_info = {"started": started, "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "counts": counts, "versions": _versions()}
        atomic_write_json(out_dir / "run.json", run_info)
        append_jsonl(out_dir / "runs.jsonl", run_info)  # history of every (resumed) invocation
    if consolidate_results:
        consolidate(out_dir)
    return out_dir


def consolidate(out_dir: str | Path) -> dict[str, Path]:
    """Merge every shard into ``results.parquet``, ``clips.parquet`` and ``curves.parquet``
    (streamed, so curves never need to fit in memory twice) and dedupe ``errors.jsonl`` into
    ``errors.csv``. Safe to call any time; returns the written paths."""
    import pandas as pd
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    result_files = sorted((out_dir / "shards").glob("*/*.results.parquet"))
    written: dict[str, Path] = {}
    if result_files:
        results = pd.concat([pd.read_parquet(p) for p in result_files], ignore_index=True)
    else:
        results = _results_frame([])
    results = results.sort_values(["model", "dataset", "clip_id", "kind", "perturbation", "seed"], kind="stable")
    results = results.reset_index(drop=True)
    atomic_write_bytes(out_dir / "results.parquet", _parquet_bytes(results))
    written["results"] = out_dir / "results.parquet"
    clips = (results.groupby(["model", "dataset", "clip_id"], sort=True)
             .agg(path=("path", "first"), n_frames=("n_frames", "max"), loss_orig=("loss_orig", "first"),
                  orig_loss_std=("orig_loss_std", "first"), condition=("condition", "first"),
                  metadata=("metadata", "first"),
                  frame_rate=("frame_rate", "first")).reset_index())
    clips["duration_s"] = clips["n_frames"] / clips["frame_rate"]
    atomic_write_bytes(out_dir / "clips.parquet", _parquet_bytes(clips[CLIP_COLUMNS] if len(clips) else pd.DataFrame(columns=CLIP_COLUMNS)))
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
