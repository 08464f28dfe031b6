"""CLI: ``musicjudge pseudolabel label|generate|pair`` — position-consistent pseudo-labels."""

from __future__ import annotations

from pathlib import Path

import typer

pseudolabel_app = typer.Typer(
    help="Pseudo-labelled preference pairs: generate candidates, pair them, label them with a judge "
    "queried in both A/B orders (only position-consistent verdicts are kept).",
    no_args_is_help=True,
)


def _dimensions(value: str) -> tuple[str, ...]:
    from musicjudge.errors import ConfigError
    from musicjudge.reward.data import DIMENSIONS

    dims = tuple(d.strip() for d in value.split(",") if d.strip())
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims:
        raise ConfigError(f"--dimensions {value!r}: choose from {','.join(DIMENSIONS)}")
    return dims


@pseudolabel_app.command("label")
def label_cmd(
    pairs: Path = typer.Argument(..., help="Pairs manifest (reward schema; JSONL/CSV/Parquet). Existing labels are used only to measure the judge."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (verdicts.jsonl, pseudo_pairs.jsonl, inconsistent.jsonl, summary.json). Re-run to resume."),
    judge: str = typer.Option("heuristic", "--judge", "-j", help="openai | heuristic | simulated[:accuracy=A,bias=B,seed=S] | reward:SPEC | module:Class"),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (judge 'openai')."),
    model: str = typer.Option(None, "--model", help="Model name sent to the server (judge 'openai')."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the API key (the key itself is never printed or stored)."),
    audio_part: str = typer.Option("input_audio", "--audio-part", help="How clips are sent: input_audio (OpenAI) or audio_url (data URL, vLLM)."),
    max_audio_s: float = typer.Option(30.0, "--max-audio-s", help="Send at most this many seconds of each clip."),
    timeout_s: float = typer.Option(120.0, "--timeout", help="Seconds per request before it is retried."),
    retries: int = typer.Option(4, "--retries", help="Retries on timeouts, connection errors, 5xx and 429."),
    concurrency: int = typer.Option(4, "--concurrency", help="Requests in flight at once."),
    cache: Path = typer.Option(None, "--cache", help="Response cache folder (default: the musicjudge cache)."),
    dimensions: str = typer.Option("musicality,alignment", "--dimensions", help="Comma-separated dimensions to judge."),
    require_all: bool = typer.Option(False, "--require-all", help="Keep a pair only if every dimension is consistent."),
    drop_ties: bool = typer.Option(False, "--drop-ties", help="Drop consistent ties instead of keeping them as 'tie'."),
    limit: int = typer.Option(None, "--limit", help="Only the first N pairs (a quick trial)."),
    device: str = typer.Option(None, "--device", help="Device for reward-model judges (cpu, cuda)."),
) -> None:
    """Judge each pair in both A/B orders and keep the position-consistent labels."""
    import json

    from musicjudge.pseudolabel.factory import make_judge
    from musicjudge.pseudolabel.label import label_pairs
    from musicjudge.reward.data import read_pairs

    from musicjudge.device import check_device
    from musicjudge.errors import ConfigError

    check_device(device)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: use a number of pairs >= 1 (leave it out for every pair)")
    dims = _dimensions(dimensions)
    items = read_pairs(pairs)
    if limit is not None:
        items = items[:limit]
    openai_kwargs = {}
    if judge.strip() == "openai":
        openai_kwargs = dict(api_key_env=api_key_env, audio_part=audio_part, max_audio_s=max_audio_s, timeout_s=timeout_s,
                             max_retries=retries, concurrency=concurrency, cache_dir=cache)
    judge_obj = make_judge(judge, dimensions=dims, base_url=base_url, model=model, device=device, **openai_kwargs)
    try:
        result = label_pairs(items, judge_obj, out, dimensions=dims, require_all=require_all, keep_ties=not drop_ties)
    finally:
        if hasattr(judge_obj, "close"):
            judge_obj.close()
    s = result.summary
    if s["errors"] and not (s["verdicts"]["ok"] or s["verdicts"]["malformed"]):
        from musicjudge.io import read_jsonl
        from musicjudge.pseudolabel.judges import JudgeError

        first = next((r["error"] for r in read_jsonl(result.out_dir / "verdicts.jsonl") if r.get("error")), "unknown")
        raise JudgeError(f"{judge_obj.name}: no verdict received for any pair (first error: {first}); fix the judge and re-run")
    typer.echo(f"kept {s['kept_pairs']}/{s['pairs']} pairs ({s['kept_share']:.1%}); malformed {s['malformed']}, errors {s['errors']}"
               if s["pairs"] else "no pairs")
    for dim, d in s["dimensions"].items():
        line = {k: d.get(k) for k in ("judged", "consistent_share", "position_bias_rate", "first_position_share", "tie_share_kept")}
        if "accuracy" in d:
            line["single_order_accuracy"] = d["accuracy"]["single_order_accuracy"]
            line["kept_accuracy"] = d["accuracy"]["kept_accuracy"]
        typer.echo(f"  {dim}: {json.dumps(line)}")
    typer.echo(f"pairs: {result.pairs_path}")
    typer.echo(f"summary: {result.out_dir / 'summary.json'}")
    if s["errors"]:
        typer.echo(f"{s['errors']} verdicts failed (see verdicts.jsonl); re-run the same command to retry them", err=True)


@pseudolabel_app.command("generate")
def generate_cmd(
    prompts: Path = typer.Argument(..., help="Prompts: .txt (one text per line) or JSONL/CSV/Parquet with text, lyrics, ref_audio, id."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (audio/ + candidates.jsonl). Re-run to resume."),
    model: str = typer.Option("builtin", "--model", "-m", help="builtin | MusicGen hub id or local checkpoint | module:Class"),
    n: int = typer.Option(4, "--n", help="Candidates per prompt (>= 2)."),
    top_k: str = typer.Option("50,250", "--top-k", help="Top-k sweep, cycled over the candidates of a prompt (e.g. 50,250; 0 = no top-k)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    duration_s: float = typer.Option(8.0, "--duration", help="Seconds per clip."),
    seed: int = typer.Option(0, "--seed", help="Base seed (each clip's seed derives from it, the prompt id and its index)."),
    guidance_scale: float = typer.Option(None, "--guidance-scale", help="Classifier-free guidance for MusicGen (default: the checkpoint's)."),
    griffin_lim_iters: int = typer.Option(32, "--griffin-lim-iters", help="Built-in LM only: decoding iterations (fewer = faster, rougher)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, ... (default: CUDA when present)."),
) -> None:
    """Generate N candidate clips per prompt (top-k sweep), ready for 'pseudolabel pair'."""
    from musicjudge.errors import ConfigError
    from musicjudge.pseudolabel.generate import (check_generation_settings, generate_candidates, load_generator,
                                                 read_prompts, unresolved_failures)

    try:
        sweep = [int(v) or None for v in top_k.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--top-k {top_k!r}: give integers separated by commas, e.g. 50,250") from None
    if any(v is not None and v < 0 for v in sweep):
        raise ConfigError(f"--top-k {top_k!r}: values must be >= 0")
    check_generation_settings(n=n, top_k_sweep=sweep, duration_s=duration_s, temperature=temperature)
    from musicjudge.device import check_device

    check_device(device)
    items = read_prompts(prompts)
    if griffin_lim_iters < 1:
        raise ConfigError(f"--griffin-lim-iters {griffin_lim_iters}: must be >= 1")
    generator = load_generator(model, device=device, guidance_scale=guidance_scale, griffin_lim_iters=griffin_lim_iters)
    if not generator.conditioned_on:
        typer.echo(f"note: {generator.name} is unconditional; instructions are recorded but do not steer the clips", err=True)
    manifest = generate_candidates(items, generator, out, n=n, top_k_sweep=sweep, temperature=temperature,
                                   duration_s=duration_s, seed=seed)
    typer.echo(f"candidates: {manifest}")
    failed = unresolved_failures(out)
    if failed:
        typer.echo(f"{len({f['prompt_id'] for f in failed})} prompt(s) failed; see {out / 'failures.jsonl'} "
                   "(re-run to retry)", err=True)
    typer.echo(f"next: musicjudge pseudolabel pair {manifest} --out {out / 'pairs.jsonl'}")


@pseudolabel_app.command("pair")
def pair_cmd(
    candidates: Path = typer.Argument(..., help="Candidates manifest (id, text, lyrics, ref_audio, audio, system), e.g. from 'pseudolabel generate'."),
    out: Path = typer.Option(..., "--out", "-o", help="Pairs manifest to write (.jsonl/.csv/.parquet)."),
    per_prompt: int = typer.Option(None, "--per-prompt", help="At most this many pairs per instruction (default: all combinations)."),
    cross_system_only: bool = typer.Option(False, "--cross-system-only", help="Only pair clips from different systems."),
    seed: int = typer.Option(0, "--seed", help="Seed for subsampling and A/B assignment."),
) -> None:
    """Pair candidates made for the same instruction into unlabelled preference pairs."""
    from musicjudge.pseudolabel.pairing import pair_candidates_file

    pairs = pair_candidates_file(candidates, out, per_prompt=per_prompt, seed=seed, cross_system_only=cross_system_only)
    typer.echo(f"{len(pairs)} pairs -> {out}")


def register(app: typer.Typer) -> None:
    """Add the 'pseudolabel' group to the root app."""
    app.add_typer(pseudolabel_app, name="pseudolabel")
