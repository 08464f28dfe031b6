"""CLI: ``musicjudge reward ...`` — build built-in pairs, train, evaluate and score reward models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musicjudge.errors import ConfigError

reward_app = typer.Typer(
    help="Music reward models (musicality + alignment under text / lyrics / reference-audio instructions).",
    no_args_is_help=True,
)


def _fractions(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--subsample {text!r}: give comma-separated fractions, e.g. 0.1,0.25,0.5,1") from None


def _encoder_config(backbone: str, backbone_model: str | None, features: str | None, audio_mode: str,
                    max_seconds: float, window_seconds: float) -> dict:
    cfg: dict = {"backbone": backbone, "windowing": {"mode": audio_mode, "max_seconds": max_seconds, "window_seconds": window_seconds}}
    if backbone == "builtin":
        from musicjudge.reward.encoders import STATS_FEATURES

        cfg["features"] = [f.strip() for f in features.split(",")] if features else list(STATS_FEATURES)
    elif backbone_model:
        cfg["model"] = backbone_model
    return cfg


@reward_app.command("build-pairs")
def build_pairs_cmd(
    out: Path = typer.Option(..., "--out", help="Output folder (pairs.jsonl + audio/)."),
    split: str = typer.Option("train", help="Corpus split: train or heldout."),
    n: int = typer.Option(1000, help="Number of pairs."),
    seed: int = typer.Option(0, help="Random seed (the build is deterministic given split, n, seed)."),
    clip_s: float = typer.Option(10.0, "--clip-s", help="Clip length in seconds."),
    corpus: Optional[Path] = typer.Option(None, help="Corpus manifest (default: build/reuse the built-in corpus)."),
    corpus_limit: Optional[int] = typer.Option(None, help="Build the built-in corpus with at most this many pieces."),
) -> None:
    """Make preference pairs with known truth from the built-in corpus (resumable, cached)."""
    from musicjudge.reward.builtin_pairs import build_builtin_pairs

    manifest = build_builtin_pairs(out, split, n, seed, clip_s=clip_s, corpus_manifest=corpus, corpus_limit=corpus_limit)
    typer.echo(str(manifest))


@reward_app.command("train")
def train_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="Training pairs manifest (JSONL/CSV/Parquet)."),
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoint, metrics.csv, learning_curve.png."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation pairs (default: --val-fraction of --pairs)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Held-out pairs evaluated at the end (and by --subsample)."),
    val_fraction: float = typer.Option(0.1, help="Share of --pairs (of its pieces, when pairs name one in metadata) kept for validation when --val is not given."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this checkpoint (stage 2 fine-tuning)."),
    label_smoothing: float = typer.Option(0.0, help="Label smoothing of the pairwise targets (e.g. 0.1 for pseudo-labels)."),
    epochs: int = typer.Option(60, help="Maximum epochs."),
    batch_size: int = typer.Option(64, help="Pairs per step."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    weight_decay: float = typer.Option(1e-2, help="AdamW weight decay."),
    dropout: float = typer.Option(0.1, help="Dropout inside the fusion transformer."),
    patience: int = typer.Option(10, help="Stop after this many epochs without validation improvement."),
    seed: int = typer.Option(0, help="Seed (data order, dropout, subsampling)."),
    d_model: int = typer.Option(128, help="Width of the fusion head."),
    layers: int = typer.Option(2, help="Transformer layers of the fusion head."),
    drop_text: float = typer.Option(0.2, help="Modality dropout rate for the text."),
    drop_lyrics: float = typer.Option(0.3, help="Modality dropout rate for the lyrics."),
    drop_ref: float = typer.Option(0.5, help="Modality dropout rate for the reference audio."),
    alignment_head: str = typer.Option("fusion", help="How alignment is read: fusion (transformer + matching terms) or terms "
                                       "(weighted matching terms only, warm-started by a convex Bradley-Terry fit)."),
    term_l2: float = typer.Option(1.0, help="With --alignment-head terms: inverse L2 strength of the warm-start fit (C)."),
    backbone: str = typer.Option("builtin", help="Frozen encoder: builtin, clap, mert, muq or muq-mulan."),
    backbone_model: Optional[str] = typer.Option(None, help="Local folder or hub id of the clap/mert/muq/muq-mulan model."),
    features: Optional[str] = typer.Option(None, help="Built-in audio features (comma list of mel,chroma,key,rhythm,texture,lm)."),
    audio_mode: str = typer.Option("first", help="first: the first --max-seconds; windows: mean over windows up to --max-seconds."),
    max_seconds: float = typer.Option(10.0, help="Seconds of audio used per clip."),
    window_seconds: float = typer.Option(10.0, help="Window length for --audio-mode windows."),
    subsample: Optional[str] = typer.Option(None, help="Data-size sweep: comma-separated fractions of --pairs (needs --test)."),
    device: Optional[str] = typer.Option(None, help="Torch device for the encoders."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (1 avoids thrashing on a busy machine)."),
) -> None:
    """Train a fusion reward model with a pairwise Bradley-Terry loss (resumable)."""
    import numpy as np

    from musicjudge.io import atomic_write_text
    from musicjudge.reward.data import read_pairs
    from musicjudge.reward.encoders import build_encoder
    from musicjudge.reward.model import load_checkpoint
    from musicjudge.reward.train import (
        TrainConfig,
        accuracy_table,
        embed_pairs,
        predict_pairs,
        subsample_sweep,
        train_reward_model,
    )

    from musicjudge.reward.model import ALIGNMENT_READINGS

    if alignment_head not in ALIGNMENT_READINGS:
        raise ConfigError(f"--alignment-head {alignment_head}: use one of {', '.join(ALIGNMENT_READINGS)}")
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    if init is not None:
        enc_cfg = load_checkpoint(init)[0]["encoder"]
    else:
        enc_cfg = _encoder_config(backbone, backbone_model, features, audio_mode, max_seconds, window_seconds)
    encoder = build_encoder(enc_cfg, device=device)
    train_pairs = read_pairs(pairs, require_label=True)
    if val is not None:
        val_pairs = read_pairs(val, require_label=True)
    else:
        if not 0 < val_fraction < 1:
            raise ConfigError(f"--val-fraction {val_fraction}: must be in (0, 1) (or pass --val)")
        # Hold out whole groups (metadata "piece" when pairs have it, e.g. built-in pairs), so
        # validation never sees a piece seen in training and early stopping measures generalisation.
        groups = sorted({str(p.metadata.get("piece", p.id)) for p in train_pairs})
        order = np.random.default_rng(seed).permutation(len(groups))
        n_val = max(1, int(round(val_fraction * len(groups))))
        val_groups = {groups[i] for i in order[:n_val]}
        val_pairs = [p for p in train_pairs if str(p.metadata.get("piece", p.id)) in val_groups]
        train_pairs = [p for p in train_pairs if str(p.metadata.get("piece", p.id)) not in val_groups]
        if not train_pairs:
            raise ConfigError(f"{pairs}: nothing left to train on after holding out validation pieces; lower --val-fraction or pass --val")
    typer.echo(f"embedding {len(train_pairs)} train / {len(val_pairs)} validation pairs with {enc_cfg['backbone']}")
    train_arrays = embed_pairs(encoder, train_pairs)
    val_arrays = embed_pairs(encoder, val_pairs)
    for name, arrays in (("train", train_arrays), ("validation", val_arrays)):
        if arrays.skipped:
            typer.echo(f"skipped {len(arrays.skipped)} {name} pairs with unreadable audio (listed in train_summary.json)")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, label_smoothing=label_smoothing,
                         patience=patience, seed=seed, d_model=d_model, dropout=dropout, n_layers=layers, drop_text=drop_text, drop_lyrics=drop_lyrics, drop_ref=drop_ref,
                         alignment=alignment_head, term_l2=term_l2)
    fractions = _fractions(subsample)
    test_arrays = embed_pairs(encoder, read_pairs(test, require_label=True)) if test is not None else None
    if fractions is not None and (len(fractions) > 1 or fractions[0] < 1.0):
        if test_arrays is None:
            raise ConfigError("--subsample needs --test (held-out pairs to measure accuracy on)")
        df = subsample_sweep(encoder, train_arrays, val_arrays, test_arrays, out, fractions, config, log=typer.echo)
        typer.echo(df.to_string(index=False))
        typer.echo(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
        return
    result = train_reward_model(encoder, train_arrays, val_arrays, out, config, init=init, log=typer.echo)
    typer.echo(f"best epoch {result.best_epoch}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.best_val.items()))
    if test_arrays is not None:
        _, head = load_checkpoint(out)
        sa, sb = predict_pairs(head, test_arrays)
        table = accuracy_table(sa, sb, test_arrays.pairs)
        atomic_write_text(out / "test_accuracy.csv", table.to_csv(index=False))
        typer.echo(table.to_string(index=False))
    typer.echo(f"checkpoint: {out} (config.json + model.safetensors); metrics: {out / 'metrics.csv'}")


@reward_app.command("eval")
def eval_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="Labelled pairs manifest."),
    model: str = typer.Option("builtin", "--model", help="Any reward-model spec: builtin, a checkpoint folder, random[:SEED], text-ridge[:ENCODER], clap-cosine[:ENCODER], cmi-rm=FOLDER, module:Class (reward info --list)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write accuracy.csv (per dimension x instruction kind) here."),
    fit_pairs: Optional[Path] = typer.Option(None, help="Pairs to fit the text-ridge baseline on (--model text-ridge)."),
) -> None:
    """Pairwise accuracy of a reward model per dimension and instruction kind."""
    from musicjudge.io import atomic_write_text
    from musicjudge.reward.data import read_pairs
    from musicjudge.reward.evaluate import evaluate_model, resolve_model

    labelled = read_pairs(pairs, require_label=True)
    reward_model = resolve_model(model, fit_pairs=fit_pairs)
    table, failures = evaluate_model(reward_model, labelled)
    typer.echo(table.to_string(index=False))
    if failures:
        typer.echo(f"{len(failures)} clips could not be scored (their pairs were skipped)")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "accuracy.csv", table.to_csv(index=False))
        typer.echo(f"wrote {out / 'accuracy.csv'}")


@reward_app.command("score")
def score_cmd(
    audio: Path = typer.Option(..., "--audio", help="A folder of clips, an audio file, or a manifest (pairs or rated rows)."),
    out: Path = typer.Option(..., "--out", help="Output CSV (one row per clip)."),
    model: str = typer.Option("builtin", "--model", help="Any reward-model spec: builtin, a checkpoint folder, random[:SEED], text-ridge[:ENCODER], cmi-rm=FOLDER, module:Class (reward info --list)."),
    text: Optional[str] = typer.Option(None, "--text", help="Text instruction (for all clips of a folder)."),
    lyrics: Optional[Path] = typer.Option(None, "--lyrics", help="File with the lyrics."),
    ref_audio: Optional[Path] = typer.Option(None, "--ref-audio", help="Reference audio clip."),
    batch_size: int = typer.Option(64, help="Clips per scoring batch."),
    device: Optional[str] = typer.Option(None, help="Torch device."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Score only shard INDEX/COUNT of the clips (0-based, e.g. $SLURM_ARRAY_TASK_ID/8) into OUT.shards/; the last shard to finish writes OUT. Automatic under accelerate launch/torchrun."),
) -> None:
    """Score clips: musicality and alignment per clip; unreadable clips are skipped and recorded."""
    # data-parallel scoring (musicjudge.distributed); a single process is plain score_to_csv
    from musicjudge.distributed import current_process, shutdown
    from musicjudge.reward.parallel import run_reward_score_parallel

    proc = current_process(shard)
    summary, merged = run_reward_score_parallel(audio, out, shard=shard, model=model, text=text, lyrics_file=lyrics,
                                                ref_audio=ref_audio, batch_size=batch_size, device=device)
    shutdown()
    if not merged:
        what = f"{summary['missing']} clips are still unscored; run the missing shards again" if summary.get("missing") \
            else "the last shard to finish writes it"
        typer.echo(f"{out}: {proc.describe()} scored {summary['scored_now']} of its "
                   f"{summary['keys']} clips ({summary['skipped_done']} were done); {what}")
        return
    typer.echo(f"scored {summary['scored']} clips, skipped {summary['failed']} -> {out}")


@reward_app.command("info")
def info_cmd(
    model: str = typer.Option("builtin", "--model", help="builtin or a checkpoint folder."),
    list_models: bool = typer.Option(False, "--list", help="Print every reward-model name musicjudge resolves instead."),
) -> None:
    """Show a reward checkpoint's encoder, head size and validation accuracy (or, with --list, the model registry)."""
    import json

    if list_models:
        from musicjudge.registry import format_table
        from musicjudge.reward.registry import available_reward_models

        typer.echo(format_table(available_reward_models()))
        return
    from musicjudge.reward.base import BUILTIN_NAMES, builtin_checkpoint_dir
    from musicjudge.reward.model import load_checkpoint

    folder = builtin_checkpoint_dir() if model in BUILTIN_NAMES else Path(model)
    config, head = load_checkpoint(folder)
    typer.echo(json.dumps({"checkpoint": str(folder), "encoder": config["encoder"], "head": config["head"],
                           "num_parameters": sum(p.numel() for p in head.parameters()),
                           "validation": config.get("info", {}).get("val")}, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``musicjudge reward ...``."""
    app.add_typer(reward_app, name="reward")
