"""CLI: ``musicjudge annotate serve|stats`` — collect human preference votes in the reward schema."""

from __future__ import annotations

from pathlib import Path

import typer

annotate_app = typer.Typer(help="Preference annotation web app and vote statistics.", no_args_is_help=True)


@annotate_app.command("serve")
def serve_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="Pairs manifest to annotate (reward schema; JSONL/CSV/Parquet)."),
    out: Path = typer.Option(..., "--out", help="Votes file (JSONL, appended; it is the study's state, so re-serving resumes)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes the study to your network)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    token: str = typer.Option(None, "--token", envvar="MUSICJUDGE_STUDY_TOKEN",
                              help="Shared access token for the study (or $MUSICJUDGE_STUDY_TOKEN)."),
    audio_root: Path = typer.Option(None, "--audio-root", help="Only audio under this folder is served (default: the manifest's folder)."),
    title: str = typer.Option(None, "--title", help="Study title shown on the page (default: the manifest's name)."),
    seed: int = typer.Option(None, "--seed", help="Seed for the A/B display order (default: random)."),
) -> None:
    """Serve the annotation app: two clips per page, musicality + alignment votes with confidence."""
    import uvicorn

    from musicjudge.annotate.app import create_app
    from musicjudge.annotate.study import Study
    from musicjudge.errors import ConfigError

    if out.suffix.lower() != ".jsonl":
        raise ConfigError(f"{out}: the votes file must be .jsonl (it is appended to, one vote per line)")
    _check_can_listen(host, port)
    study = Study(pairs, out, audio_root=audio_root, seed=seed)
    app = create_app(study, token=token, title=title)
    skipped = f" ({len(study.excluded)} left out: audio missing or outside {study.audio_root})" if study.excluded else ""
    typer.echo(f"study: {study.total} pairs{skipped}; votes -> {out}")
    typer.echo(f"open http://{host}:{port}/" + (" (token required)" if token else ""))
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: --host {host} without --token: anyone who can reach this machine can vote", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _check_can_listen(host: str, port: int) -> None:
    """One-line ConfigError (before the study loads) when the server could not start: a port
    out of range, a host that does not resolve, or an address already in use."""
    import socket

    from musicjudge.errors import ConfigError

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: use a port in 1..65535 (e.g. the default 8765)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(f"{host}: cannot resolve this --host ({getattr(e, 'strerror', None) or e}); "
                          "use 127.0.0.1 (this machine) or 0.0.0.0 (every interface)") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as e:
            raise ConfigError(f"{host}:{port}: cannot listen there ({e.strerror or e}); pick another --port "
                              "or stop the program using it") from None


@annotate_app.command("stats")
def stats_cmd(
    votes: Path = typer.Argument(..., help="Votes file written by 'musicjudge annotate serve'."),
    json_out: Path = typer.Option(None, "--json", help="Also write the statistics as JSON here."),
    csv_out: Path = typer.Option(None, "--csv", help="Also write a per-annotator table (votes, tie share, first-position share, mean confidence) as CSV."),
    min_common: int = typer.Option(2, "--min-common", help="Cohen's kappa only for annotator pairs with at least this many common pairs."),
) -> None:
    """Votes per annotator, inter-annotator agreement (pairwise, Cohen, Fleiss), position bias, tie share."""
    from musicjudge.annotate.stats import format_stats, read_votes, vote_stats
    from musicjudge.io import atomic_write_json

    rows = read_votes(votes)
    stats = vote_stats(rows, min_common=min_common)
    typer.echo(format_stats(stats))
    if csv_out is not None:
        from musicjudge.annotate.stats import annotator_table
        from musicjudge.io import atomic_write_text

        atomic_write_text(csv_out, annotator_table(rows).to_csv(index=False))
        typer.echo(f"per-annotator table: {csv_out}")
    if json_out is not None:
        atomic_write_json(json_out, stats)
        typer.echo(f"stats: {json_out}")


def register(app: typer.Typer) -> None:
    """Add the 'annotate' group to the root app."""
    app.add_typer(annotate_app, name="annotate")
