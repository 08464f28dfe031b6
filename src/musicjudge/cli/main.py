"""Entry point of the ``musicjudge`` console script."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from musicjudge import __version__
from musicjudge.errors import MusicjudgeError

# Modules under musicjudge.cli that add commands/groups; each exposes register(app).
COMMAND_MODULES = ["score", "lm", "data", "demo", "probe", "reward", "bench", "pseudolabel", "annotate", "eval"]

app = typer.Typer(
    name="musicjudge",
    help="Judge music-generation models and their outputs: loss-profile probes and reward models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"musicjudge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """musicjudge: loss-profile probes of music LMs and music reward models/benchmarks."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"musicjudge.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr (exit 2), no traceback.
    Set MUSICJUDGE_DEBUG=1 to see the traceback."""
    try:
        app(args=argv, prog_name="musicjudge")
    except MusicjudgeError as e:
        if os.environ.get("MUSICJUDGE_DEBUG"):
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; finished work is saved, re-run the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
