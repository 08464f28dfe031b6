"""Probe runner: for every (model, data set, clip) plan the perturbations that fit the clip
(:func:`musicjudge.probe.config.plan_perturbations`), score the original once and every
planned perturbation (:class:`musicjudge.probe.scoring.ClipScorer`) and write the clip's
shard into the run directory (:mod:`musicjudge.probe.rundir`, which documents the layout).

The unit of work is a clip (:class:`WorkKey`); :func:`work_keys` lists them explicitly so a
launcher can shard the list across processes (``run_probe(..., keys=my_share,
consolidate_results=False)`` per process, then :func:`consolidate` once). A clip's shard is
written atomically when the clip is done, so an interrupted run loses at most the clip in
flight and a re-run skips every finished key."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from musicjudge.errors import AudioError, ConfigError, MusicjudgeError
from musicjudge.probe.config import (ClipPlan, ProbeConfig, crop_window, minimum_duration_s, model_label,
                                     plan_perturbations)
from musicjudge.probe.rundir import (CLIP_COLUMNS, CURVE_COLUMNS, RESULT_COLUMNS, WorkKey, check_run_dir,
                                     consolidate, errored_keys, load_results, now, record_error, shard_paths,
                                     write_clip, write_config, write_run_info)
from musicjudge.probe.scoring import (ClipScorer, delay_pattern_lead, noise_grid, noise_seed, perturbation_grid,
                                      plan_specs, required_duration_s)

log = logging.getLogger(__name__)

__all__ = [  # the runner's face; the names from rundir / scoring stay importable from here
    "CLIP_COLUMNS", "CURVE_COLUMNS", "RESULT_COLUMNS", "ClipScorer", "WorkKey", "consolidate", "delay_pattern_lead",
    "list_clips", "load_results", "noise_grid", "noise_seed", "perturbation_grid", "required_duration_s",
    "run_probe", "score_clip", "shard_paths", "work_keys",
]


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


def check_crop_fits(config: ProbeConfig, frame_rate: float) -> None:
    """A crop shorter than any clip could use would fail every clip: say so once, up front."""
    crop = config.crop_duration_s
    need = minimum_duration_s(config, frame_rate)
    if crop is None or crop + 1e-9 >= need:
        return
    if config.strict:
        raise ConfigError(
            f"crop_duration_s={crop:g}: the perturbation grid needs {need:.2f} s per clip under --strict (latest "
            f"perturbation end + min_recovery_s={config.min_recovery_s:g} s); raise --crop-duration, pass --adapt "
            "instead of --strict, or move --onsets / --shuffle-onset earlier / use shorter --lengths")
    raise ConfigError(
        f"crop_duration_s={crop:g}: every perturbation needs at least {need:.2f} s (an onset no earlier than "
        f"min_baseline_s={config.min_baseline_s:g} s, the shortest perturbation, then min_recovery_s="
        f"{config.min_recovery_s:g} s); raise --crop-duration or lower --min-baseline / --min-recovery")


def _length_text(num_samples: int, sample_rate: int) -> str:
    seconds = num_samples / sample_rate
    return f"{seconds:.2f} s" if seconds >= 0.01 else f"{num_samples} sample(s), {seconds * 1000:.2f} ms"


def score_clip(scorer: ClipScorer, config: ProbeConfig, path: str, *, clip_id: str, condition=None, on_error=None,
               curves: bool | str = False) -> tuple[list[dict], Any, ClipPlan]:
    """One clip, end to end: its crop window (:func:`crop_window`), its plan
    (:func:`plan_perturbations`), the window decoded (only the window), every planned
    perturbation scored. Rows carry what was actually run. AudioError for a clip that cannot
    run anything (the reason names the minimum length and the flags that change it)."""
    from musicjudge.audio import audio_info

    info = audio_info(path)
    start, window = crop_window(info.duration, config)
    if window <= 0:
        raise AudioError(f"{path}: crop_start_s={config.crop_start_s:g} is past the end of the clip "
                         f"({info.duration:.2f} s); use a smaller --crop-start")
    fr = float(scorer.lm.frame_rate)
    plan = plan_perturbations(window, config, fr)
    if plan.skip_reason:
        cropped = window + 1e-9 < info.duration
        what = (f"window is {window:.2f} s after cropping (--crop-start/--crop-duration)" if cropped
                else f"clip is {_length_text(info.num_samples, info.sample_rate)}")
        raise AudioError(f"{path}: {what}, {plan.skip_reason}")
    wave = scorer.load(path, crop_start=start, crop_duration=window, min_duration=min(plan.required_s, window))
    specs = plan_specs(plan, config)
    group_of = {spec.key: group for spec, group in specs}
    rows, curve_df = scorer.score(wave, clip_id=clip_id, path=path, condition=condition, curves=curves,
                                  on_error=on_error, perturbations=[spec for spec, _ in specs])
    dropped = json.dumps([d.to_dict() for d in plan.dropped]) if plan.dropped else ""
    for r in rows:
        group = group_of[r["perturbation"]]
        r.update(grid_onset_s=float(group.grid_onset_s), adapted=bool(group.moved), plan=plan.describe(),
                 dropped=dropped, crop_start_s=float(start), source_duration_s=float(info.duration))
    return rows, curve_df, plan


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
    check_run_dir(out_dir, config)
    all_keys = list(keys) if keys is not None else work_keys(config)
    write_config(out_dir, config)
    started = now()
    errored = set() if config.retry_errors else errored_keys(out_dir)
    pending = [k for k in all_keys if not shard_paths(out_dir, k)[0].exists() and k.key not in errored]
    counts = {"keys": len(all_keys), "skipped_done": 0, "skipped_errored": 0, "scored": 0, "errors": 0, "adapted": 0}
    counts["skipped_errored"] = sum(1 for k in all_keys if k.key in errored and not shard_paths(out_dir, k)[0].exists())
    counts["skipped_done"] = len(all_keys) - len(pending) - counts["skipped_errored"]
    by_model: dict[str, list[WorkKey]] = {}
    for k in pending:
        by_model.setdefault(k.model, []).append(k)
    bar = None
    curves_mode = config.save_curves if config.save_curves != "none" else False
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
            check_crop_fits(config, float(lm.frame_rate))
            if progress and bar is None:  # started after the first model loads, so load errors print cleanly
                from tqdm.auto import tqdm

                bar = tqdm(total=len(pending), desc="probe", unit="clip")
            for key in model_keys:
                if bar is not None:
                    bar.set_postfix_str(key.key[-40:])

                def on_error(spec, err, key=key):
                    record_error(out_dir, key, str(err), perturbation=spec.key)

                text = key.text if (config.condition_from_manifest and key.text) else config.condition
                try:
                    rows, curves, plan = score_clip(scorer, config, key.path, clip_id=key.clip_id,
                                                    condition=make_condition(text, config.melody),
                                                    on_error=on_error, curves=curves_mode)
                except ConfigError:
                    raise  # a setting this model rejects (e.g. a text condition for an unconditional LM): not the clip's fault
                except MusicjudgeError as e:
                    record_error(out_dir, key, str(e))
                    counts["errors"] += 1
                    log.warning("skipped %s: %s", key.path, e)
                    if bar is not None:
                        bar.update(1)
                    continue
                for r in rows:
                    r["model"], r["dataset"], r["metadata"] = key.model, key.dataset, key.metadata
                write_clip(out_dir, key, rows, curves)
                counts["scored"] += 1
                counts["adapted"] += int(plan.adapted)
                if bar is not None:
                    bar.update(1)
            for name, value in scorer.engine_stats.items():
                counts[name] = counts.get(name, 0) + value
    finally:
        if bar is not None:
            bar.close()
        write_run_info(out_dir, started, counts)
    if consolidate_results:
        consolidate(out_dir)
    return out_dir
