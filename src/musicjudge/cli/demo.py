"""``musicjudge demo``: the offline end-to-end study (corpus -> data sets -> probe -> report)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo(
    out: Path = typer.Option(Path("musicjudge-demo"), "--out", "-o", help="Output folder (data sets, probe run, report.html)."),
    quick: bool = typer.Option(False, "--quick", help="Reduced run (a few short clips) for smoke tests, about a minute."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML overriding the demo settings (see configs/demo.yaml)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (the built-in LM is small; 1 is fastest on a busy machine)."),
) -> None:
    """Build or reuse the built-in corpus and the TrainingSet / Generated / OOD data sets, run the
    noise-injection and shuffle probe with the built-in LM, and write an HTML report.
    Re-running reuses everything already computed."""
    import time

    from musicjudge.demo import run_demo

    t0 = time.perf_counter()
    report = run_demo(out, quick=quick, config_path=config, threads=threads, log=typer.echo)
    typer.echo(f"report: {report.resolve()}  ({time.perf_counter() - t0:.0f} s)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("demo")(demo)
