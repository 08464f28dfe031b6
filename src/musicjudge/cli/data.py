"""``musicjudge data ...``: build the built-in corpus and the three probe data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Build the built-in corpus (music21 scores rendered to audio) and probe data sets.",
                       no_args_is_help=True)


@data_app.command("corpus")
def corpus_cmd(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: the musicjudge cache)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Render only the first N pieces (round-robin over collections)."),
    max_duration_s: float = typer.Option(30.0, "--max-duration", help="Seconds rendered per piece (the start of each piece)."),
    seed: int = typer.Option(0, help="Seed of the instrument/tempo/split assignment."),
) -> None:
    """Render real scores from music21's corpus (Bach chorales, Palestrina, Monteverdi, trecento,
    folk tunes, classical piano pieces) to 32 kHz mono FLAC with a JSONL manifest. Resumable."""
    from musicjudge.data.corpus import build_corpus, read_corpus

    manifest = build_corpus(out, limit=limit, max_duration_s=max_duration_s, seed=seed)
    rows = read_corpus(manifest)
    n_train = sum(r["split"] == "train" for r in rows)
    hours = sum(r["duration_s"] for r in rows) / 3600
    fails = manifest.parent / "failures.jsonl"
    n_fail = len(fails.read_text().splitlines()) if fails.exists() else 0
    typer.echo(f"corpus: {len(rows)} pieces ({n_train} train, {len(rows) - n_train} held-out, {hours:.2f} h), "
               f"{n_fail} skipped; manifest: {manifest}")


@data_app.command("datasets")
def datasets_cmd(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus manifest (default: build/reuse the cached corpus)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: the musicjudge cache)."),
    n_train: int = typer.Option(20, help="Clips in TrainingSet."),
    n_ood: int = typer.Option(20, help="Clips in OOD."),
    per_k: int = typer.Option(2, "--per-k", help="Generated samples per top-k value (the paper used 20)."),
    clip_s: float = typer.Option(15.0, "--clip-seconds", help="Clip length in seconds."),
    seed: int = typer.Option(0, help="Selection and sampling seed."),
    model: str = typer.Option("builtin", "--model", help="LM that generates the Generated set (only 'builtin' or a built-in-format folder)."),
) -> None:
    """Build the paper's three data sets in the built-in world: TrainingSet, Generated (top-k sweep
    10..500 of the built-in LM) and OOD (held-out pieces on piano). Resumable."""
    from musicjudge.data.datasets import build_datasets

    manifest = corpus or _default_corpus()
    lm = _generator(model)
    out_dir = out or _default_datasets_dir(manifest, lm, clip_s, seed)
    paths = build_datasets(manifest, out_dir, n_train=n_train, n_ood=n_ood, generated_per_k=per_k, clip_s=clip_s,
                           seed=seed, lm=lm)
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


def _default_corpus() -> Path:
    from musicjudge.data.corpus import build_corpus

    return build_corpus()


def _generator(model: str):
    from musicjudge.errors import ConfigError
    from musicjudge.lm.builtin import BuiltinLM

    if model == "builtin":
        return BuiltinLM.from_pretrained()
    if Path(model).is_dir():
        return BuiltinLM.from_pretrained(model)
    raise ConfigError(f"--model {model}: Generated samples come from the built-in LM; use 'builtin' or a folder made by 'musicjudge lm train'")


def _default_datasets_dir(manifest: Path, lm, clip_s: float, seed: int) -> Path:
    from musicjudge.io import cache_dir, file_sha256, stable_hash

    weights = Path(getattr(lm, "name", "builtin"))
    from musicjudge.lm.builtin import builtin_dir

    wpath = (builtin_dir() if lm.name == "builtin" else weights) / "model.safetensors"
    key = stable_hash({"corpus": str(Path(manifest).resolve()), "lm": file_sha256(wpath)[:16], "clip": clip_s, "seed": seed})
    return cache_dir("datasets", key)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(data_app, name="data")
