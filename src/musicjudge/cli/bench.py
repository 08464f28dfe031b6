"""CLI commands for 'bench': run a reward model on a benchmark, leaderboards, top-k selection."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musicjudge.errors import ConfigError

bench_app = typer.Typer(
    help="Reward-model benchmark: tasks, metrics with CIs, leaderboards, top-k selection.",
    no_args_is_help=True,
)


def _model_args(pairs: list[str] | None) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"--model-arg {p!r}: write key=value, e.g. --model-arg checkpoint=ckpt/")
        k, _, v = p.partition("=")
        try:
            import json

            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _int_list(text: str, flag: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: write comma-separated integers, e.g. 1,2,4,8") from None
    if not vals or min(vals) < 1:
        raise ConfigError(f"{flag} {text!r}: needs positive integers, e.g. 1,2,4,8")
    return vals


@bench_app.command("run")
def run_cmd(
    model: str = typer.Option(..., "--model", "-m", help="builtin, a checkpoint folder, random[:SEED], text-ridge[:ENCODER], clap-cosine[:ENCODER], cmi-rm=FOLDER, loss-profile[:LM], an entry-point name, or module:Class (musicjudge bench list shows them)."),
    benchmark: str = typer.Option("builtin", "--benchmark", "-b", help="Registered name (builtin), a YAML file listing tasks, or a manifest / CMI-RewardBench JSONL."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (results.json, breakdowns.csv, predictions.parquet, errors.jsonl)."),
    task: Optional[list[str]] = typer.Option(None, "--task", "-t", help="Only tasks matching this glob (repeatable)."),
    quick: bool = typer.Option(False, "--quick", help="Reduced run: 16 items per task, 200 bootstrap resamples."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N items per task (evenly spaced), for expensive models."),
    model_arg: Optional[list[str]] = typer.Option(None, "--model-arg", help="key=value passed to the model's constructor (repeatable)."),
    n_boot: Optional[int] = typer.Option(None, "--n-boot", help="Bootstrap resamples for the CIs (default 1000, 200 with --quick)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    batch_size: int = typer.Option(16, "--batch-size", help="Clips per score() call."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Score only shard INDEX/COUNT of the clips (0-based); the last shard to finish evaluates. Automatic under accelerate launch/torchrun."),
    root: Optional[str] = typer.Option(None, "--root", help="With -b DATA_FILE: folder its relative audio paths start from (default: the file's folder or its parent, whichever holds the clips)."),
    split: Optional[str] = typer.Option(None, "--split", help="With -b DATA_FILE: split to evaluate (default test when the data has splits; 'all' for every row)."),
) -> None:
    """Evaluate one reward model on a benchmark (scores are cached: re-running costs nothing)."""
    # data-parallel scoring (musicjudge.distributed); a single process is plain run_benchmark
    from musicjudge.bench.parallel import run_bench_parallel
    from musicjudge.distributed import current_process, shutdown

    if limit is not None:
        # a subset run is a single-process run (the sharded runner splits whole benchmarks)
        if shard is not None or current_process(shard).world_size > 1:
            raise ConfigError("--limit cannot be combined with --shard or a multi-process launch; drop one of them")
        from musicjudge.bench.runner import run_benchmark

        path = run_benchmark(model, benchmark, out, quick=quick, tasks=task, n_boot=n_boot, seed=seed,
                             batch_size=batch_size, model_args=_model_args(model_arg), limit=limit, root=root, split=split)
        _print_results(path)
        return
    if root is not None or split is not None:  # a data file read with these options, once for every process
        from musicjudge.bench.tasks import load_benchmark

        benchmark = load_benchmark(benchmark, quick=quick, root=root, split=split)
    path, evaluated = run_bench_parallel(model, benchmark, out, shard=shard, quick=quick, tasks=task, n_boot=n_boot,
                                         seed=seed, batch_size=batch_size, model_args=_model_args(model_arg))
    shutdown()
    if not evaluated:
        typer.echo(f"{out}: {current_process(shard).describe()} scored its share; the last shard to finish evaluates")
        return
    _print_results(path)


def _print_results(path: Path) -> None:
    import json
    import math

    from rich.console import Console
    from rich.table import Table

    doc = json.loads(Path(path).read_text())
    table = Table(title=f"{doc['model']['name']} on {doc['benchmark']['name']}")
    table.add_column("task", overflow="fold")
    for col in ("metric", "value", "95% CI", "n", "missing"):
        table.add_column(col, no_wrap=True)
    for name, res in doc["results"].items():
        metric = "accuracy" if res["metric"] == "accuracy" else "spearman"
        v = res.get(metric)
        ci = res.get(f"{metric}_ci") or [None, None]
        fmt = (lambda x: "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}")
        table.add_row(name, metric, fmt(v), f"[{fmt(ci[0])}, {fmt(ci[1])}]", str(res.get("n", 0)), str(res.get("n_missing", 0)))
    console = Console()
    console.print(table)
    if doc.get("n_errors"):
        console.print(f"{doc['n_errors']} missing or unscorable clips recorded in {Path(path).parent / 'errors.jsonl'}")
    console.print(f"results: {path}")


@bench_app.command("leaderboard")
def leaderboard_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders written by 'musicjudge bench run'."),
    out: Path = typer.Option(Path("leaderboard"), "--out", "-o", help="Folder for leaderboard.md/.html/.csv."),
) -> None:
    """Render a Markdown + HTML table across models (per task, with 95% CIs)."""
    from musicjudge.bench.leaderboard import write_leaderboard

    paths = write_leaderboard(runs, out)
    typer.echo(paths["md"].read_text())
    typer.echo(f"written: {paths['md']}, {paths['html']}, {paths['csv']}, {paths['png']}")


@bench_app.command("topk")
def topk_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Reward model that ranks the candidates (same forms as 'bench run')."),
    candidates: str = typer.Option("builtin", "--candidates", "-c", help="'builtin' (held-out pieces with known degradation severity) or a rated manifest; prompt_id groups candidates."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for topk.csv, topk.png, topk.json, topk_draws.parquet."),
    dimension: str = typer.Option("musicality", "--dimension", "-d", help="musicality or alignment."),
    n: str = typer.Option("1,2,4,8", "--n", help="Numbers of candidates drawn per prompt."),
    k: str = typer.Option("1,2", "--k", help="Numbers of candidates kept."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Held-out judge model for quality instead of the manifest's labels."),
    draws: int = typer.Option(50, "--draws", help="Random draws of N candidates per prompt."),
    seed: int = typer.Option(0, "--seed"),
    quick: bool = typer.Option(False, "--quick", help="Fewer prompts and draws."),
    model_arg: Optional[list[str]] = typer.Option(None, "--model-arg", help="key=value for the model's constructor."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="With --candidates builtin: an existing corpus manifest to take held-out pieces from."),
) -> None:
    """Inference-time scaling: how much does picking the top-k of N by a reward beat random picks?"""
    import pandas as pd

    from musicjudge.bench.topk import run_topk

    path = run_topk(model, candidates, out, dimension=dimension, ns=_int_list(n, "--n"), ks=_int_list(k, "--k"),
                    judge=judge, draws=draws, seed=seed, quick=quick, model_args=_model_args(model_arg), corpus=corpus)
    typer.echo(pd.read_csv(path).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    typer.echo(f"written: {path}, {path.parent / 'topk.png'}")


@bench_app.command("list")
def list_cmd(
    benchmark: Optional[str] = typer.Argument(None, help="Show the tasks of this benchmark."),
) -> None:
    """List registered benchmarks and every model name (music LMs, reward models, judges), or the tasks of one benchmark."""
    from musicjudge.bench.tasks import benchmark_names, load_benchmark
    from musicjudge.registry import describe, format_table

    if benchmark is None:
        typer.echo("benchmarks: " + ", ".join(benchmark_names()) + " (or a YAML file / manifest)")
        typer.echo("")
        typer.echo(format_table(describe()))
        typer.echo("\n(reward models also: a checkpoint folder or module:Class; see docs/reward.md)")
        return
    b = load_benchmark(benchmark)
    for t in b.tasks:
        typer.echo(f"{t.name}\t{t.dimension}\t{t.metric}\t{t.data}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(bench_app, name="bench")
