"""``musicjudge lm ...``: train, inspect and sample the built-in music LM."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

lm_app = typer.Typer(help="The built-in music LM: train it on the corpus, sample from it, show its card.",
                     no_args_is_help=True)


@lm_app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for tokenizer + LM weights, MODEL_CARD.md and metrics."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus manifest (default: build/reuse the cached corpus)."),
    corpus_limit: Optional[int] = typer.Option(None, "--corpus-limit", help="Build/use only the first N corpus pieces."),
    steps: int = typer.Option(320, help="Optimisation steps."),
    batch_size: int = typer.Option(4, help="Crops per step."),
    crop_frames: int = typer.Option(250, help="Frames per crop (50 frames/s); every 4th step uses 2 crops of 750."),
    lr: float = typer.Option(3e-3, help="Peak learning rate (AdamW, warm-up then cosine)."),
    hidden_size: int = typer.Option(192, help="Decoder width."),
    layers: int = typer.Option(4, help="Decoder layers."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop training after this many seconds (checkpointed)."),
    threads: int = typer.Option(2, help="torch CPU threads."),
    seed: int = typer.Option(0, help="Seed (same corpus + seed + settings = same weights)."),
) -> None:
    """Fit the mel residual-VQ tokenizer and train the MusicGen-architecture LM on the corpus.
    Resumable: re-run the same command after an interruption."""
    import math

    from musicjudge.data.corpus import build_corpus
    from musicjudge.errors import ConfigError
    from musicjudge.lm.train import TrainConfig, train_builtin

    if corpus is not None and corpus_limit is not None:
        raise ConfigError("--corpus and --corpus-limit: give one (the limit applies to the cached corpus)")
    heads = TrainConfig.num_heads
    for flag, value, ok, need in (
        ("--threads", threads, threads >= 1, "must be >= 1"),
        ("--lr", lr, lr > 0 and math.isfinite(lr), "must be a positive learning rate, e.g. 3e-3"),
        ("--layers", layers, layers >= 1, "must be >= 1"),
        ("--hidden-size", hidden_size, hidden_size >= heads and hidden_size % heads == 0,
         f"must be a positive multiple of the {heads} attention heads, e.g. 192"),
        ("--time-budget", time_budget, time_budget is None or time_budget > 0, "must be > 0 seconds (or left out)"),
    ):
        if not ok:
            raise ConfigError(f"{flag} {value:g}: {need}")
    manifest = corpus or build_corpus(limit=corpus_limit)
    cfg = TrainConfig(seed=seed, steps=steps, batch_size=batch_size, crop_frames=crop_frames, lr=lr,
                      hidden_size=hidden_size, num_layers=layers, ffn_dim=4 * hidden_size, time_budget_s=time_budget,
                      threads=threads, corpus_limit=corpus_limit)
    m = train_builtin(manifest, out, cfg)
    typer.echo(f"held-out loss {m['heldout_loss_mean']:.3f} nats/token (uniform {m['uniform_loss']:.3f}); "
               f"shuffled audio higher for {m['audio_shuffle_higher_fraction']:.0%} of clips; card: {out / 'MODEL_CARD.md'}")


@lm_app.command("sample")
def sample_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Output audio file (.wav or .flac)."),
    seconds: float = typer.Option(10.0, help="Duration in seconds."),
    top_k: int = typer.Option(250, "--top-k", help="Sample from the k most likely codes (>= codebook size: no truncation)."),
    temperature: float = typer.Option(1.0, help="Softmax temperature."),
    seed: int = typer.Option(0, help="Sampling seed."),
    model: str = typer.Option("builtin", "--model", help="'builtin' or a folder made by 'musicjudge lm train'."),
) -> None:
    """Sample unconditional music from the built-in LM and decode it to audio."""
    from musicjudge.audio import write_audio
    from musicjudge.errors import ConfigError
    from musicjudge.lm.builtin import BuiltinLM

    if seconds <= 0:
        raise ConfigError(f"--seconds {seconds}: must be > 0")
    if out.suffix.lower() not in (".wav", ".flac"):
        raise ConfigError(f"--out {out}: use a .wav or .flac file name")
    lm = BuiltinLM.from_pretrained(None if model == "builtin" else model)
    wave = lm.generate_audio(seconds, top_k=top_k, temperature=temperature, seed=seed)[0]
    peak = write_audio(out, wave, lm.sample_rate)  # atomic; a peak above full scale is scaled down, never clipped
    scaled = f", scaled down from peak {peak:.2f}" if peak > 1 else ""
    typer.echo(f"wrote {out} ({wave.size / lm.sample_rate:.1f} s, top-k {top_k}, seed {seed}{scaled})")


@lm_app.command("card")
def card_cmd() -> None:
    """Print the built-in LM's model card (data, hyper-parameters, held-out loss)."""
    from musicjudge.lm.builtin import builtin_dir

    path = builtin_dir() / "MODEL_CARD.md"
    if not path.exists():
        from musicjudge.errors import ModelLoadError

        raise ModelLoadError(f"{path}: no model card; reinstall musicjudge")
    typer.echo(path.read_text())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(lm_app, name="lm")
