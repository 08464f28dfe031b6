"""Probe throughput: the naive loop (one full forward per perturbed clip, as the paper's public
code does) vs musicjudge's shared-prefix engine, on

(a) the paper's protocol: one onset (a third into the clip; 5 s of 15 s), noise lengths
    {5, 10, 50, 100, 150, 200} frames, whole clip scored;
(b) a profile protocol: 4 onsets x the same 6 lengths, scored up to ``--horizon`` frames after
    each change (what profile analysis needs: peak, assimilation, recovery); the engine is
    also timed on it over the whole clip (no horizon) against the same naive baseline.

Models: a MusicGen-small-sized decoder built from a config (d_model 1024, 24 layers, 16 heads,
4 x 2048 codebooks, MusicGen's null condition; random weights -- only timing matters) fed
synthetic code perturbations, and the built-in LM (real audio -> tokenizer -> LM) when its
weights are installed. Also reports the unique-position lower bound: the time the naive loop
would need for only the positions the engine cannot share (per-position cost of the naive
loop x unique positions). The engine's results are checked against the naive ones.

    python benchmarks/probe_throughput.py --quick        # 12 s clips, ~4 min of CPU
    python benchmarks/probe_throughput.py                # 15 s clips as in the paper

The last line printed is one JSON object (keys paper_speedup, profile_speedup, bound_ratio,
max_abs_diff for the MusicGen-small-sized decoder, plus per-model details).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial

import numpy as np
import torch

#: time source, set from --clock: wall time, or this process's CPU time (robust on a shared box)
CLOCK = time.perf_counter

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.lm.base import DelayPatternLM
from musicjudge.lm.engine import score_code_perturbations

LENGTHS = (5, 10, 50, 100, 150, 200)


class ConfigOnlyMusicGenDecoder(DelayPatternLM):
    """A MusicGen decoder from a config alone (random weights), scored from codes under the
    null condition -- the same cost per token as the real checkpoint's decoder in MusicGenLM."""

    def __init__(self, hidden_size=1024, num_layers=24, num_heads=16, codebook_size=2048, num_codebooks=4,
                 seed: int = 0):
        from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

        torch.manual_seed(seed)
        config = MusicgenDecoderConfig(
            vocab_size=codebook_size, num_codebooks=num_codebooks, hidden_size=hidden_size,
            num_hidden_layers=num_layers, num_attention_heads=num_heads, ffn_dim=4 * hidden_size,
            pad_token_id=codebook_size, bos_token_id=codebook_size, dropout=0.0,
        )
        config._attn_implementation = "sdpa"
        self.decoder = MusicgenForCausalLM(config).eval()
        self.name = f"musicgen-small-sized decoder ({hidden_size}d x {num_layers}L, random weights)"
        self.sample_rate, self.frame_rate = 32000, 50.0
        self.pad_token_id = self.bos_token_id = codebook_size

    def conditioning(self, condition):
        # as MusicGenLM: the null condition adds exactly zero through bias-free cross-attention,
        # so the block is skipped
        return None, None

    def encode(self, wave):
        raise ConfigError("this benchmark decoder has no codec; it is fed codes directly")


def perturb_codes(codes: torch.Tensor, onset: int, length: int, lookahead: int, seed: int) -> torch.Tensor:
    """Codes of a noise injection: frames from ``onset - lookahead`` to the end of the noise
    (plus the codec's look-ahead) replaced by other codes."""
    gen = torch.Generator().manual_seed(seed)
    out = codes.clone()
    begin, end = max(0, onset - lookahead), min(codes.shape[1], onset + length + lookahead)
    out[:, begin:end] = torch.randint(0, int(codes.max()) + 1, (codes.shape[0], end - begin), generator=gen)
    return out


def compare(engine_results, naive_results) -> float:
    worst = 0.0
    for got, want in zip(engine_results, naive_results):
        worst = max(worst, float((got.nll[got.mask] - want.nll[got.mask]).abs().max()))
    return worst


def time_naive(lm, clips, from_waves: bool):
    """One full forward per clip (batch 1), encoding each wave first when ``from_waves``.
    Returns (total seconds, seconds spent encoding, results)."""
    encode_s, results = 0.0, []
    start = CLOCK()
    for clip in clips:
        if from_waves:
            t0 = CLOCK()
            clip = lm.encode(clip)
            encode_s += CLOCK() - t0
        results.append(lm.token_nll(clip))
    return CLOCK() - start, encode_s, results


def time_engine(lm, original, perturbed, horizon, batch_size, from_waves: bool):
    stats: dict = {}
    run = lm.score_perturbations if from_waves else partial(score_code_perturbations, lm)
    start = CLOCK()
    orig, results = run(original, perturbed, horizon=horizon, batch_size=batch_size, stats=stats)
    return CLOCK() - start, [orig, *results], stats


def run_protocols(lm, model, original, grids, make_perturbed, batch_size, from_waves):
    """For each protocol: time the naive loop once, then the engine (with the protocol's
    horizon and, for a horizon protocol, also over the whole clip -- same naive baseline)."""
    rows = []
    for name, grid, horizon in grids:
        perturbed = [make_perturbed(o, L, i) for i, (o, L) in enumerate(grid)]
        naive_s, encode_s, naive = time_naive(lm, [original, *perturbed], from_waves)
        for h in ([horizon] if horizon is None else [horizon, None]):
            engine_s, results, stats = time_engine(lm, original, perturbed, h, batch_size, from_waves)
            label = name if h == horizon else name.split(",")[0] + ", whole clip)"
            rows.append(summarise(model, label, len(grid), naive_s, engine_s, stats, compare(results, naive),
                                  encode_s=encode_s))
    return rows


def summarise(model, protocol, n_perturbations, naive_s, engine_s, stats, diff, encode_s=0.0):
    # lower bound: every clip must still be encoded; of the decoder work only the unique
    # (non-shared) positions remain, at the naive loop's cost per position
    per_position = (naive_s - encode_s) / stats["positions_naive"]
    bound_s = encode_s + per_position * stats["positions_unique"]
    row = {
        "model": model, "protocol": protocol, "perturbations": n_perturbations,
        "naive_s": round(naive_s, 3), "engine_s": round(engine_s, 3),
        "speedup": round(naive_s / engine_s, 3), "bound_s": round(bound_s, 3),
        "bound_ratio": round(engine_s / bound_s, 3),
        "positions_naive": stats["positions_naive"], "positions_unique": stats["positions_unique"],
        "positions_computed": stats["positions_computed"], "max_abs_diff": diff,
    }
    print(f"{model:>28} | {protocol:<22} | naive {naive_s:8.2f} s | engine {engine_s:8.2f} s | "
          f"speedup {row['speedup']:5.2f}x | unique-position bound {bound_s:8.2f} s "
          f"(engine/bound {row['bound_ratio']:.2f}) | max|diff| {diff:.2e}", flush=True)
    return row


def protocols(num_frames: int, horizon: int):
    """(name, [(onset, length)], horizon) for the paper and profile protocols."""
    paper_onset = num_frames // 3
    if num_frames < paper_onset + max(LENGTHS) + 10:
        raise SystemExit(f"--frames {num_frames}: too short for {max(LENGTHS)}-frame injections; use >= 320")
    # 4 onsets spread from a fifth into the clip to where the longest injection still fits
    profile_onsets = [int(round(x)) for x in np.linspace(num_frames * 0.2, num_frames - max(LENGTHS) - 10, 4)]
    return [
        ("paper (1 onset x 6)", [(paper_onset, L) for L in LENGTHS], None),
        (f"profile (4x6, h={horizon})", [(o, L) for o in profile_onsets for L in LENGTHS], horizon),
    ]


def bench_musicgen_sized(args) -> list[dict]:
    lm = ConfigOnlyMusicGenDecoder(num_layers=args.layers)
    gen = torch.Generator().manual_seed(0)
    original = torch.randint(0, lm.codebook_size, (lm.num_codebooks, args.frames), generator=gen)
    lm.token_nll(original[:, :50])  # warm-up (allocator, kernels)
    return run_protocols(lm, "musicgen-small-sized", original, protocols(args.frames, args.horizon),
                         lambda o, L, i: perturb_codes(original, o, L, lookahead=2, seed=i), args.batch_size,
                         from_waves=False)


def bench_builtin(args) -> list[dict] | str:
    from musicjudge.lm import load_music_lm
    from musicjudge.perturb import NoiseSpec

    try:
        lm = load_music_lm("builtin", device="cpu")
    except (ModelLoadError, ConfigError, ImportError) as e:
        return f"built-in LM not available: {e}"
    sr = lm.sample_rate
    seconds = args.frames / lm.frame_rate
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    # a stand-in clip: a few harmonic tones with a slow envelope (the corpus is another package's job)
    notes = 220.0 * 2 ** (rng.integers(0, 12, size=int(seconds)) / 12)
    freq = notes[np.minimum((t).astype(int), notes.size - 1)]
    phase = 2 * np.pi * np.cumsum(freq) / sr
    wave = sum(0.15 / (h + 1) * np.sin((h + 1) * phase) for h in range(4))
    wave = (wave * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    lm.token_nll(lm.encode(wave[:sr]))  # warm-up

    def make_perturbed(onset, length, seed):
        spec = NoiseSpec(colour="white", mode="replace", onset=onset, length=length, unit="frames", level_db=-20,
                         frame_rate=lm.frame_rate)
        return spec.apply(wave, sr, seed=seed)

    return run_protocols(lm, "builtin", wave, protocols(args.frames, args.horizon), make_perturbed,
                         args.batch_size, from_waves=True)


def memory_check(seconds: float, chunk_size: int | None) -> dict:
    """Peak RSS of scoring one ``seconds``-long clip with the built-in LM (CPU, float32). Uses the
    shipped model on a synthetic wave if installed, else its architecture with random weights
    on random codes (memory depends on the architecture, not the weights)."""
    import resource

    from musicjudge.lm import load_music_lm

    try:
        lm = load_music_lm("builtin", device="cpu")
        sr = lm.sample_rate
        t = np.arange(int(seconds * sr)) / sr
        wave = (0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * t)) + 0.01 * np.random.default_rng(0).standard_normal(t.size))
        codes = lm.encode(wave.astype(np.float32))
        source = "shipped built-in LM, synthetic wave"
    except (ModelLoadError, ConfigError, ImportError):
        from transformers import MusicgenForCausalLM

        from musicjudge.lm.builtin import decoder_config

        torch.manual_seed(0)
        lm = ConfigOnlyMusicGenDecoder.__new__(ConfigOnlyMusicGenDecoder)
        lm.decoder = MusicgenForCausalLM(decoder_config(dropout=0.0)).eval()
        lm.sample_rate, lm.frame_rate, lm.name = 32000, 50.0, "builtin architecture (random weights)"
        lm.pad_token_id = lm.bos_token_id = lm.decoder.config.vocab_size
        lm.conditioning = lambda condition: (None, None)
        codes = torch.randint(0, lm.codebook_size, (lm.num_codebooks, int(seconds * lm.frame_rate)))
        source = "built-in architecture, random weights (weights not shipped yet)"
    lm.chunk_size = chunk_size
    before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = lm.token_nll(codes)
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"source": source, "frames": int(codes.shape[1]), "chunk_size": chunk_size,
            "peak_rss_mib": round(peak_mib, 1), "rss_before_scoring_mib": round(before_mib, 1),
            "seconds": round(elapsed, 2), "mean_nll": round(result.mean(), 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 s clips instead of 15 s (about 4 min of CPU)")
    parser.add_argument("--frames", type=int, default=None, help="clip length in frames (default 750; quick 600)")
    parser.add_argument("--horizon", type=int, default=100, help="profile protocol: frames scored after each change")
    parser.add_argument("--batch-size", type=int, default=None, help="engine batch (default: 1 on CPU, 8 on GPU)")
    parser.add_argument("--layers", type=int, default=24, help="decoder layers of the MusicGen-sized model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-builtin", action="store_true")
    parser.add_argument("--skip-musicgen", action="store_true", help="only the built-in LM")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or process CPU time (use with --threads 1 on a shared machine)")
    parser.add_argument("--memory", type=float, default=None, metavar="SECONDS",
                        help="only measure peak RSS of scoring one clip this long with the built-in LM")
    parser.add_argument("--chunk-size", type=int, default=1024, help="with --memory: positions per decoder call "
                        "(0 = one pass)")
    args = parser.parse_args(argv)
    if args.memory:
        if args.threads:
            torch.set_num_threads(args.threads)
        with torch.inference_mode():
            result = memory_check(args.memory, args.chunk_size or None)
        print(json.dumps(result), flush=True)
        return result
    if args.frames is None:
        args.frames = 600 if args.quick else 750
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"probe throughput: {args.frames} frames ({args.frames / 50:.1f} s at 50 fps), lengths {LENGTHS}, "
          f"engine batch {args.batch_size or 'auto'}, {torch.get_num_threads()} threads, device cpu, {args.clock} clock", flush=True)
    with torch.inference_mode():
        main_rows = [] if args.skip_musicgen else bench_musicgen_sized(args)
        builtin = "skipped (--skip-builtin)" if args.skip_builtin else bench_builtin(args)
    if isinstance(builtin, str):
        print(builtin, flush=True)
    # headline numbers: the MusicGen-small-sized decoder (the built-in LM with --skip-musicgen)
    head = main_rows or (builtin if isinstance(builtin, list) else [])
    if not head:
        raise SystemExit("nothing was measured")
    summary = {
        "paper_speedup": head[0]["speedup"],
        "profile_speedup": head[1]["speedup"],
        "profile_whole_clip_speedup": head[2]["speedup"],
        "bound_ratio": max(r["bound_ratio"] for r in head),
        "max_abs_diff": max(r["max_abs_diff"] for r in main_rows + (builtin if isinstance(builtin, list) else [])),
        "frames": args.frames,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "headline_model": "musicgen-small-sized" if main_rows else "builtin",
        "musicgen_small_sized": main_rows,
        "builtin": builtin,
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
