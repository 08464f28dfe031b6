"""CLI: ``musicjudge eval`` (judge generators side by side in one report)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from musicjudge.errors import ConfigError


def _numbers(text: str, name: str, cast=float) -> tuple:
    try:
        values = tuple(cast(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"--{name} {text!r}: expected comma-separated numbers, e.g. 3,5,7") from None
    if not values:
        raise ConfigError(f"--{name} {text!r}: give at least one value")
    return values


def eval_cmd(
    systems: Optional[List[str]] = typer.Argument(None, help="NAME=FOLDER_OR_MANIFEST per system (a folder of audio or a JSONL manifest with 'path')."),
    out: Path = typer.Option(Path("runs/eval"), "--out", "-o", help="Output folder (re-running resumes it)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="JSONL of {id, text, lyrics, ref_audio}; clips match by id or file stem."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Folder or manifest of real music for the Fréchet distance and MMD."),
    lm: str = typer.Option("builtin", "--lm", help="Music LM for the profile score and original loss: builtin, a MusicGen id/path, module:Class, or none."),
    reward: str = typer.Option("builtin", "--reward", help="Reward model: builtin, a checkpoint folder, module:Class, or none."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N clips of each system (and of the reference)."),
    onsets: str = typer.Option("3,5,7", help="Profile score: noise onsets in seconds (clips too short use those that fit)."),
    lengths: str = typer.Option("5,10", help="Profile score: short noise lengths in frames."),
    crop_duration: float = typer.Option(0.0, help="Profile score: seconds of each clip the LM scores (0 = whole clip)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples for the CIs."),
    seed: int = typer.Option(0, help="Seed of the bootstrap and permutation tests."),
    examples: int = typer.Option(2, help="Best and worst clips per system with audio players in the report."),
    demo: bool = typer.Option(False, "--demo", help="Evaluate the built-in demo (two systems answering the same prompts + a reference), offline."),
    quick: bool = typer.Option(False, "--quick", help="With --demo: a smaller demo (4 prompts)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, mps (default: best available)."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write OUT/report.html."),
) -> None:
    """Score every clip of every system (profile score and original loss under the LM, reward
    musicality and alignment), compare systems (means with CIs, paired win rates with a sign
    test, Fréchet distance and MMD to a reference) and write tables, figures and an HTML report."""
    from musicjudge.evaluation.runner import ProfileSettings

    if demo and systems:
        raise ConfigError("--demo builds its own systems; leave out the NAME=PATH arguments (or drop --demo)")
    if quick and not demo:
        raise ConfigError("--quick only applies to --demo")
    if not demo and not systems:
        raise ConfigError("no systems: pass NAME=FOLDER_OR_MANIFEST at least once, or --demo")
    if n_boot < 0:
        raise ConfigError(f"--n-boot {n_boot}: must be >= 0")
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads {threads}: must be >= 1")
        import torch

        torch.set_num_threads(threads)
    profile = ProfileSettings(onsets_s=_numbers(onsets, "onsets"), lengths_frames=_numbers(lengths, "lengths", int),
                              crop_duration=None if crop_duration == 0 else crop_duration)
    device_name = None
    if device is not None:
        from musicjudge.device import check_device

        device_name = check_device(device)
    common = dict(lm=lm, reward=reward, profile=profile, limit=limit, device=device_name, n_boot=n_boot, seed=seed,
                  examples=examples, report=report, log=typer.echo)
    if demo:
        from musicjudge.evaluation.demo import run_eval_demo

        result = run_eval_demo(out, quick=quick, **common)
    else:
        from musicjudge.evaluation.runner import evaluate
        from musicjudge.evaluation.sources import parse_system_args

        result = evaluate(parse_system_args(systems), out, prompts=prompts, reference=reference, **common)
    typer.echo(str(result.report.resolve()) if result.report is not None else str(out))


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the root app."""
    app.command("eval")(eval_cmd)
