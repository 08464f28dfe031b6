"""Scoring clips under a music LM: the perturbation specs of a grid or of one clip's plan,
:class:`ClipScorer` (the original once, every perturbation, region metrics, curve rows) and
:func:`profile_scores`, the batch driver behind ``probe profile`` (and the loss-profile reward
and ``eval``). Run-directory bookkeeping lives in :mod:`musicjudge.probe.rundir`, the run loop
in :mod:`musicjudge.probe.runner`, pure curve analysis in :mod:`musicjudge.probe.profile`."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from musicjudge.errors import AudioError, ConfigError, MusicjudgeError
from musicjudge.io import stable_hash
from musicjudge.probe.config import Analysis, ClipPlan, ProbeConfig
from musicjudge.probe.profile import (ProfileScoreSpec, check_profile_settings, clip_profiles, fitting_onsets,
                                      region_metrics)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


# --------------------------------------------------------------------------------------------
# Perturbation specs
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


def plan_specs(plan: ClipPlan, config: ProbeConfig) -> list[tuple]:
    """``(spec, group)`` for every perturbation of a clip's plan (noise, then shuffles), each
    spec at the group's actual onset; a shuffle range keeps its length (moves with the onset)."""
    from musicjudge.perturb import build_grid

    out = []
    for group in plan.groups:
        fr = group.frame_rate
        if group.family == "noise":
            n = config.noise
            specs = build_grid(colours=n.colours, levels=n.levels_db, onsets=[group.onset_frame],
                               lengths=list(group.lengths_frames), modes=n.modes, shuffle_kinds=(), unit="frames",
                               frame_rate=fr, level_ref=n.level_ref)
        else:
            s = config.shuffle
            range_end = None
            if s.range_end_s is not None:
                range_end = group.onset_frame + round((s.range_end_s - s.onset_s) * fr)
            specs = build_grid(modes=(), shuffle_kinds=s.kinds, shuffle_blocks=list(group.lengths_frames),
                               onsets=[group.onset_frame], unit="frames", frame_rate=fr, shuffle_range_end=range_end)
        out += [(spec, group) for spec in specs]
    return out


# --------------------------------------------------------------------------------------------
# Scoring one clip
# --------------------------------------------------------------------------------------------
def noise_seed(seed: int, clip_id: str) -> int:
    """The noise seed of ``clip_id`` under run seed ``seed``: each clip gets its own noise draw
    (independent clips), reproducible from (seed, clip id)."""
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

    def load(self, path: str, *, crop_start: float = 0.0, crop_duration: float | None = None,
             min_duration: float | None = None) -> np.ndarray:
        """Mono wave at the model's rate, cropped (the decoder seeks: only the window is decoded);
        AudioError if unreadable/silent/shorter than ``min_duration`` (default: what this
        scorer's grid needs)."""
        from musicjudge.audio import audio_info, load_audio

        duration = crop_duration
        if crop_duration is not None:
            # a clip shorter than the crop is fine as long as it holds the perturbations
            available = audio_info(path).duration - crop_start
            duration = min(crop_duration, max(available, 0.0))
        return load_audio(path, self.lm.sample_rate, offset=crop_start, duration=duration or None,
                          min_duration=self.min_duration_s if min_duration is None else min_duration)

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
              curves: bool | str = True, on_error=None,
              perturbations: Sequence | None = None) -> tuple[list[dict], "pd.DataFrame | None"]:
        """Result rows (one per perturbation x seed) and, if ``curves``, the long-format curve
        rows (``"codebooks"``/True: per codebook + mean (codebook -1); ``"mean"``: mean only).
        ``perturbations``: this clip's specs (its plan), default the scorer's grid. A
        perturbation that cannot be applied to this clip is passed to ``on_error(spec, err)``
        (or raised if None) and the rest go on."""
        import pandas as pd

        lm = self.lm
        sr, fr = lm.sample_rate, float(lm.frame_rate)
        condition = condition if condition is not None else self.condition
        jobs, waves = [], []
        for spec in (self.perturbations if perturbations is None else perturbations):
            for seed in self.seeds:
                nseed = noise_seed(seed, clip_id)
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
                "onset_s": round(info["start"] / sr, 6), "onset_frame": onset_frame, "end_frame": end_frame,
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
# Profile scores of a batch of files
# --------------------------------------------------------------------------------------------
def profile_scores(
    lm,
    paths: Sequence[str] | Iterable[str],
    *,
    onsets_s: Sequence[float] = (3.0, 5.0, 7.0),
    lengths_frames: Sequence[int] = (5, 10),
    colour: str = "white",
    level_db: float = -20.0,
    level_ref: str = "dbfs",
    crop_start: float = 0.0,
    crop_duration: float | None = None,
    seeds: Sequence[int] = (0,),
    condition: str | None = None,
    spec: ProfileScoreSpec | None = None,
    fit_onsets: bool = True,
    min_recovery_s: float = 1.0,
    progress: bool = True,
) -> "pd.DataFrame":
    """Label-free musicality baseline: the profile score of each audio file under ``lm``.

    For each file: load (mono, ``lm.sample_rate``), crop, replace [onset, onset + L) with
    ``colour`` noise at ``level_db`` for every onset x L, score original and perturbed with
    ``lm`` and apply :func:`clip_profiles`. With ``fit_onsets`` a clip too short for some onsets
    uses those that fit (noise + ``min_recovery_s`` before its end), or a single onset as late
    as fits (>= 0.5 s) when none does; ``n_short`` says how many injections were averaged.
    Bad files do not stop the batch: their row has ``profile_score`` NaN and the reason in
    ``error``.

    Returns one row per path: ``path, profile_score, n_short, orig_loss_mean, orig_loss_std,
    peak_height_mean, error`` (in the order of ``paths``)."""
    import pandas as pd

    from musicjudge.audio import audio_info

    check_profile_settings(onsets_s=onsets_s, lengths_frames=lengths_frames, crop_start=crop_start,
                           crop_duration=crop_duration)
    spec = spec or ProfileScoreSpec()
    scorers: dict[tuple[float, ...], ClipScorer] = {}

    def scorer_for(onsets: tuple[float, ...]) -> ClipScorer:
        if onsets not in scorers:
            grid = noise_grid(colours=[colour], onsets_s=list(onsets), lengths_frames=list(lengths_frames),
                              levels_db=[level_db], level_ref=level_ref, frame_rate=lm.frame_rate)
            scorers[onsets] = ClipScorer(lm, grid, seeds=list(seeds), condition=condition,
                                         min_recovery_s=min_recovery_s)
        return scorers[onsets]

    longest_s = max(lengths_frames) / float(lm.frame_rate)
    rows = []
    paths = [str(p) for p in paths]
    iterator = paths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(paths, desc="profile scores", unit="clip")
    for path in iterator:
        try:
            onsets = tuple(onsets_s)
            if fit_onsets:
                available = audio_info(path).duration - crop_start
                if crop_duration is not None:
                    available = min(available, crop_duration)
                onsets = fitting_onsets(onsets_s, available, longest_s, min_recovery_s)
            scorer = scorer_for(onsets)
            wave = scorer.load(path, crop_start=crop_start, crop_duration=crop_duration)
            clip_rows, _ = scorer.score(wave, clip_id=path, curves=False)
        except MusicjudgeError as e:
            rows.append({"path": path, "profile_score": float("nan"), "n_short": 0, "orig_loss_mean": float("nan"),
                         "orig_loss_std": float("nan"), "peak_height_mean": float("nan"), "error": str(e)})
            continue
        df = pd.DataFrame(clip_rows)
        df["model"], df["dataset"] = getattr(lm, "name", "model"), "input"
        prof = clip_profiles(df, spec).iloc[0]
        rows.append({
            "path": path, "profile_score": float(prof["profile_score"]), "n_short": int(prof["n_short"]),
            "orig_loss_mean": float(prof["orig_loss_mean"]), "orig_loss_std": float(prof["orig_loss_std"]),
            "peak_height_mean": float(df.loc[df["length_frames"] <= spec.short_max_frames, "smooth_peak_height"].mean()),
            "error": "",
        })
    return pd.DataFrame(rows, columns=["path", "profile_score", "n_short", "orig_loss_mean", "orig_loss_std",
                                       "peak_height_mean", "error"])
