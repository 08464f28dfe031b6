"""CLI: ``musicjudge probe run|report|compare|profile`` (loss-profile probes of music LMs)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from musicjudge.errors import ConfigError

probe_app = typer.Typer(
    help="Loss-profile probes: inject noise / shuffle blocks, score with music LMs, analyse and report.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _numbers(text: Optional[str], name: str, cast=float) -> Optional[list]:
    if text is None:
        return None
    try:
        values = [cast(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"--{name} {text!r}: expected comma-separated numbers, e.g. 5,10,50") from None
    if not values:
        raise ConfigError(f"--{name} {text!r}: give at least one value")
    return values


def _words(text: Optional[str]) -> Optional[list[str]]:
    return None if text is None else [v for v in text.replace(" ", "").split(",") if v]


@probe_app.command("run")
def run_cmd(
    config: Optional[Path] = typer.Argument(None, help="YAML experiment spec (e.g. configs/probe_paper.yaml); flags override it."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Model: builtin, a MusicGen hub id or local path, or module:Class; label=spec to name it. Repeatable."),
    audio: Optional[List[str]] = typer.Option(None, "--audio", "-a", help="Data set: a folder of audio, a JSONL/CSV/Parquet manifest or a Hugging Face dataset folder (docs/data.md); name=path to name it. Repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created; re-running resumes it)."),
    lengths: Optional[str] = typer.Option(None, help="Noise lengths in frames, comma-separated (default 5,10,50,100,150,200)."),
    onsets: Optional[str] = typer.Option(None, help="Noise onsets in seconds, comma-separated (default 5.0)."),
    colours: Optional[str] = typer.Option(None, help="Noise colours: white,pink,brown,blue,violet."),
    levels: Optional[str] = typer.Option(None, help="Noise levels in dB, comma-separated (default -20)."),
    level_ref: Optional[str] = typer.Option(None, help="Level reference: dbfs | snr_span | snr_clip."),
    blocks: Optional[str] = typer.Option(None, help="Shuffle block sizes in frames, comma-separated."),
    shuffle_onset: Optional[float] = typer.Option(None, help="Shuffle onset in seconds (default 5.0)."),
    noise: Optional[bool] = typer.Option(None, "--noise/--no-noise", help="Run the noise injections."),
    shuffle: Optional[bool] = typer.Option(None, "--shuffle/--no-shuffle", help="Run the shuffles."),
    crop_start: Optional[float] = typer.Option(None, help="Crop start in seconds."),
    crop_duration: Optional[float] = typer.Option(None, help="Crop duration in seconds (0 = whole clip)."),
    strict: Optional[bool] = typer.Option(None, "--strict/--adapt", help="--strict: run the configured (paper) grid exactly; a clip that cannot hold all of it is recorded and skipped. Default --adapt: per clip, move onsets earlier and drop lengths that do not fit (docs/probe.md)."),
    min_recovery: Optional[float] = typer.Option(None, help="Seconds a clip must continue after a perturbation (default 1.0)."),
    min_baseline: Optional[float] = typer.Option(None, help="Earliest onset, in seconds, a moved onset may take: the pre-onset baseline window (default 1.0)."),
    long_clip: Optional[float] = typer.Option(None, help="Clips this long (s) or longer are cropped in their middle (default 60; 0 = always from --crop-start)."),
    seeds: Optional[str] = typer.Option(None, help="Noise seeds, comma-separated."),
    condition: Optional[str] = typer.Option(None, help="Text condition (default: unconditional / null condition)."),
    melody: Optional[Path] = typer.Option(None, "--melody", "--reference-audio", help="Reference audio whose chroma conditions MusicGen-Melody (every clip; with or without --condition)."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N clips of each data set."),
    save_curves: Optional[str] = typer.Option(None, help="Per-frame curves to keep: codebooks | mean | none."),
    batch_size: Optional[int] = typer.Option(None, help="Perturbed sequences per forward pass (default: 1 on CPU, 8 on GPU)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1, mps (default: best available)."),
    dtype: Optional[str] = typer.Option(None, help="float32, float16, bfloat16."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Retry clips that failed in an earlier run."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write RUN_DIR/report.html at the end."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run only shard INDEX/COUNT of the clips (0-based, e.g. $SLURM_ARRAY_TASK_ID/8); under accelerate launch/torchrun shards are automatic."),
    root: Optional[str] = typer.Option(None, "--root", help="Folder the relative paths of an --audio manifest start from (default: its folder or its parent, whichever holds the clips)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of an --audio dataset or manifest with a split column ('all' for every row)."),
) -> None:
    """Score every clip and perturbation; write results.parquet, curves.parquet, errors, report."""
    from musicjudge.probe.config import DatasetSpec, ProbeConfig

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: use a whole number of clips >= 1 (leave it out for every clip)")
    if melody is not None and not melody.is_file():
        raise ConfigError(f"--melody {melody}: file not found; pass the reference audio file")
    if (root or split) and not audio:
        raise ConfigError("--root/--split apply to the --audio data sets; pass --audio PATH with them")
    cfg = ProbeConfig.from_yaml(config) if config else ProbeConfig()
    datasets = None
    if audio:
        datasets = [DatasetSpec.parse(a).__dict__ for a in audio]
        if root or split:  # carried in the data set's path (musicjudge.data.sources.with_options)
            from musicjudge.data.sources import with_options

            for d in datasets:
                d["path"] = with_options(d["path"], root=root, split=split)
        if limit:
            for d in datasets:
                d["limit"] = limit
    elif limit:
        datasets = [{**d.__dict__, "limit": limit} for d in cfg.datasets]
    cfg = cfg.override(**{
        "models": list(model) if model else None,
        "datasets": datasets,
        "noise.lengths_frames": _numbers(lengths, "lengths", float),
        "noise.onsets_s": _numbers(onsets, "onsets"),
        "noise.colours": _words(colours),
        "noise.levels_db": _numbers(levels, "levels"),
        "noise.level_ref": level_ref,
        "noise.enabled": noise,
        "shuffle.blocks_frames": _numbers(blocks, "blocks", float),
        "shuffle.onset_s": shuffle_onset,
        "shuffle.enabled": shuffle,
        "crop_start_s": crop_start,
        "strict": strict,
        "min_recovery_s": min_recovery,
        "min_baseline_s": min_baseline,
        "seeds": _numbers(seeds, "seeds", float),
        "condition": condition,
        "melody": None if melody is None else str(melody),
        "save_curves": save_curves,
        "batch_size": batch_size,
        "device": device,
        "dtype": dtype,
        "retry_errors": retry_errors or None,
    })
    if crop_duration is not None:
        cfg.crop_duration_s = crop_duration if crop_duration > 0 else None
    if long_clip is not None:
        cfg.long_clip_s = long_clip if long_clip > 0 else None
    # data-parallel (musicjudge.distributed): one process = plain run_probe; several = a share
    # each, and only the last one to finish consolidates, summarises and reports
    from musicjudge.device import check_device
    from musicjudge.distributed import current_process, shutdown
    from musicjudge.probe.parallel import run_probe_parallel

    check_device(cfg.device, "device" if cfg.device != device else "--device")
    run_dir, consolidated = run_probe_parallel(cfg, out, shard=shard)
    shutdown()
    if not consolidated:
        typer.echo(f"{out}: {current_process(shard).describe()} finished its share; the last shard to finish consolidates")
        return
    _print_summary(run_dir)
    if report:
        from musicjudge.probe.report import write_report

        try:
            path = write_report(run_dir)
            typer.echo(f"report: {path}")
        except ConfigError as e:
            typer.echo(f"no report: {e}", err=True)


def _print_summary(run_dir: Path) -> None:
    import json

    info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    c = info["counts"]
    typer.echo(f"{run_dir}: {c['scored']} clip(s) scored, {c['skipped_done']} already done, "
               f"{c['errors']} skipped as bad, {c['skipped_errored']} bad in an earlier run (of {c['keys']})")
    if c.get("adapted"):
        typer.echo(f"{c['adapted']} of the scored clip(s) ran an adapted grid (onset moved or lengths dropped: "
                   "clips.parquet columns plan, dropped; --strict for the configured grid only)")
    if c["errors"] or c["skipped_errored"]:
        typer.echo(f"bad clips and reasons: {Path(run_dir) / 'errors.jsonl'}", err=True)


@probe_app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A probe run directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML path (default RUN_DIR/report.html)."),
) -> None:
    """Statistics (CSV), figures (PNG) and a self-contained HTML report for a run."""
    from musicjudge.probe.report import write_report

    typer.echo(str(write_report(run_dir, out)))


@probe_app.command("compare")
def compare_cmd(
    run_dirs: List[Path] = typer.Argument(..., help="Two or more probe run directories."),
    out: Path = typer.Option(Path("probe-compare"), "--out", "-o", help="Output folder (compare.html, figures/, stats/)."),
) -> None:
    """Compare the models of several runs side by side in one report."""
    from musicjudge.probe.report import compare_runs

    typer.echo(str(compare_runs(run_dirs, out)))


@probe_app.command("profile")
def profile_cmd(
    audio: List[Path] = typer.Argument(..., help="Audio files or folders."),
    model: str = typer.Option("builtin", "--model", "-m", help="builtin, a MusicGen hub id / path, or module:Class."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV or Parquet file for the scores."),
    onsets: str = typer.Option("3,5,7", help="Noise onsets in seconds, comma-separated."),
    lengths: str = typer.Option("5,10", help="Short noise lengths in frames, comma-separated."),
    level: float = typer.Option(-20.0, help="Noise level (dBFS)."),
    crop_duration: Optional[float] = typer.Option(None, help="Crop duration in seconds (default or 0: whole clip)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, mps."),
) -> None:
    """Label-free musicality baseline: the profile score of each clip under one model."""
    from musicjudge.audio import list_audio_files
    from musicjudge.lm.loader import load_music_lm
    from musicjudge.probe.profile import check_profile_settings
    from musicjudge.probe.scoring import profile_scores

    paths: list[str] = []
    for a in audio:
        if a.is_dir():
            found = [str(p) for p in list_audio_files(a)]
            if not found:
                raise ConfigError(f"{a}: no audio files found; point it at a folder of .wav/.flac/... files")
            paths += found
        elif a.exists() or a.is_symlink():  # a dangling link is recorded as a bad clip, with its target
            paths.append(str(a))
        else:
            raise ConfigError(f"{a}: no such file or folder; check the path")
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"{out}: use a .csv or .parquet file name")
    onsets_s, lengths_frames = _numbers(onsets, "onsets"), _numbers(lengths, "lengths", int)
    crop_duration = None if crop_duration == 0 else crop_duration  # 0 = whole clip, as in 'probe run'
    check_profile_settings(onsets_s=onsets_s, lengths_frames=lengths_frames, crop_duration=crop_duration)
    from musicjudge.device import check_device

    lm = load_music_lm(model, device=check_device(device))
    df = profile_scores(lm, paths, onsets_s=onsets_s, lengths_frames=lengths_frames, level_db=level,
                        crop_duration=crop_duration)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False) if out.suffix.lower() == ".csv" else df.to_parquet(out, index=False)
    bad = int((df["error"] != "").sum())
    typer.echo(f"{out}: {len(df) - bad} clip(s) scored, {bad} failed (see the error column)")


def register(app: typer.Typer) -> None:
    """Add ``probe`` to the root app."""
    app.add_typer(probe_app, name="probe")
