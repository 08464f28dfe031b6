"""``musicjudge score``: per-token NLL of audio files under a music LM."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from musicjudge.errors import ConfigError, MusicjudgeError


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

    from musicjudge.audio import load_audio
    from musicjudge.lm import load_music_lm
    from musicjudge.lm.base import make_condition

    lm = load_music_lm(model, device=device, dtype=dtype)
    condition = make_condition(condition, None if melody is None else str(melody))
    if condition is not None and hasattr(lm, "prepare_condition"):
        lm.prepare_condition(condition)  # a condition the model rejects stops here, not once per file
    failures: list[str] = []
    for path in audio:
        target = _curve_path(path, out, multiple=len(audio) > 1)
        if skip_existing and target.exists():
            mean = _stored_mean(target)
            if mean is not None:
                typer.echo(f"{path}\tmean_nll={mean:.4f} nats/token\t(kept from {target})")
                continue
        try:
            wave = load_audio(path, sample_rate=lm.sample_rate)  # AudioError for missing/dangling/unreadable
            lm.check_wave(wave, str(path))
            result = lm.token_nll(lm.encode(wave), condition=condition)
        except MusicjudgeError as e:
            if len(audio) == 1:
                raise
            failures.append(str(e))
            typer.echo(f"skipped: {e}", err=True)
            continue
        _write_table(result.to_frame_table(lm.frame_rate), target)
        typer.echo(f"{path}\tmean_nll={result.mean():.4f} nats/token\tframes={result.num_frames}\tcurve={target}")
    if failures:
        typer.echo(f"{len(failures)} of {len(audio)} file(s) skipped (see messages above)", err=True)
        raise typer.Exit(1)


def _curve_path(audio: Path, out: Optional[Path], multiple: bool) -> Path:
    if out is None:
        return Path.cwd() / f"{audio.stem}.nll.csv"
    if multiple or out.is_dir() or out.suffix.lower() not in (".csv", ".parquet"):
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{audio.stem}.nll.csv"
    return out


def _stored_mean(target: Path) -> Optional[float]:
    """Mean NLL over valid tokens of a curve written earlier (None if unreadable)."""
    import pandas as pd

    try:
        table = pd.read_parquet(target) if target.suffix.lower() == ".parquet" else pd.read_csv(target)
        values = table[[c for c in table.columns if c.startswith("nll_cb")]].to_numpy().ravel()
    except Exception:  # noqa: BLE001 - a torn/foreign file is simply recomputed
        return None
    values = values[~pd.isna(values)]
    return float(values.mean()) if values.size else None


def _write_table(table, target: Path) -> None:
    from musicjudge.io import atomic_write_bytes, atomic_write_text

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".parquet":
        import io

        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(target, buf.getvalue())
    else:
        atomic_write_text(target, table.to_csv(index=False))


def register(app: typer.Typer) -> None:
    """Add the top-level ``score`` command."""
    app.command("score")(score)
