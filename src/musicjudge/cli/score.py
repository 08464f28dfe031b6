"""``musicjudge score``: per-token NLL of audio files under a music LM (a thin layer over
:func:`musicjudge.lm.files.score_files`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from musicjudge.errors import ConfigError


def score(
    audio: List[Path] = typer.Argument(..., help="Audio file(s) to score (wav, flac, ogg, opus, mp3, m4a, aac, webm, ...)."),
    model: str = typer.Option(
        "builtin", "--model", "-m",
        help="'builtin', a MusicGen hub id (facebook/musicgen-small) or checkpoint directory, or module:Class.",
    ),
    condition: Optional[str] = typer.Option(
        None, "--condition", "-c", help="Text condition (MusicGen); default: the null condition."
    ),
    melody: Optional[Path] = typer.Option(
        None, "--melody", "--reference-audio",
        help="Reference recording whose chroma conditions MusicGen-Melody (with or without --condition).",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o",
        help="Curve file (.csv or .parquet) for one input, or a directory for several. "
        "Default: <audio stem>.nll.csv in the current directory.",
    ),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)."),
    dtype: Optional[str] = typer.Option(None, help="float32 (default), bfloat16, float16 or auto."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Resume: keep curves already written by an earlier run of the same command."
    ),
) -> None:
    """Score audio with a music LM: print the mean loss (nats/token) and write the per-frame
    curve (frame, time_s, nll_mean, nll_cb0..) of each file. Unreadable files are skipped and
    listed; the rest are still scored."""
    if out is not None and len(audio) > 1 and out.suffix.lower() in (".csv", ".parquet"):
        raise ConfigError(f"--out {out}: several inputs need a directory, not a single file")
    missing = [p for p in audio if not p.exists() and not p.is_symlink()]  # a dangling link: the loader says so
    if len(audio) == 1 and missing:
        raise ConfigError(f"{missing[0]}: file not found; check the path")

    if melody is not None and not melody.is_file():
        raise ConfigError(f"--melody {melody}: file not found; pass the reference audio file")

    from musicjudge.lm import load_music_lm
    from musicjudge.lm.files import score_files
    from musicjudge.lm.types import make_condition

    lm = load_music_lm(model, device=device, dtype=dtype)
    condition = make_condition(condition, None if melody is None else str(melody))

    def report(row: dict) -> None:
        if row["status"] == "kept":
            typer.echo(f"{row['path']}\tmean_nll={row['mean_nll']:.4f} nats/token\t(kept from {row['curve']})")
        elif row["status"] == "failed":
            typer.echo(f"skipped: {row['error']}", err=True)
        else:
            typer.echo(f"{row['path']}\tmean_nll={row['mean_nll']:.4f} nats/token\tframes={row['frames']}\tcurve={row['curve']}")

    # default curve folder: the current directory (<audio stem>.nll.csv)
    table = score_files(lm, [str(p) for p in audio], condition=condition, out=out if out is not None else Path.cwd(),
                        skip_existing=skip_existing, raise_errors=len(audio) == 1, on_file=report)
    failures = int((table["status"] == "failed").sum())
    if failures:
        typer.echo(f"{failures} of {len(audio)} file(s) skipped (see messages above)", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the top-level ``score`` command."""
    app.command("score")(score)
