"""Encoder throughput on CPU: clips per second of ``embed_audio`` for the MuQ-MuLan (``muq-mulan``)
and MuQ (``muq``) backbones, first pass (every clip decoded, resampled to 24 kHz and encoded; the
embedding written to the content-hash cache) and cached pass (a fresh encoder over the same files:
content hash + cache read only). Also texts per second for the MuQ-MuLan text tower.

Models: random-weight folders in the official layout, either ``--size large`` (the official
architectures: MuQ 12 conformer layers of width 1024 / conv 512 / 16 heads, MuLan transformers of
width 768 and depth 8, an XLM-R-base-sized text encoder with a small vocabulary; only timing
matters) or ``--size tiny`` (the test architectures), or ``--model FOLDER`` (a real MuQ-MuLan folder,
backbone muq-mulan only). Clips: distinct synthetic 44.1 kHz stereo WAVs of ``--seconds``
(default 10 s, one MuQ-MuLan clip; ``--audio-mode first``).

    python benchmarks/encoder_throughput.py                       # large, 6 clips of 10 s, both backbones
    python benchmarks/encoder_throughput.py --size tiny --clips 32

The last line printed is one JSON object with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def large_configs() -> tuple[dict, dict, dict]:
    from musicjudge.reward.muq.tiny import tiny_mulan_config, tiny_muq_config

    muq = tiny_muq_config(conv_dim=512, encoder_dim=1024, encoder_depth=12, codebook_dim=16, codebook_size=4096,
                          w2v2_config={"num_attention_heads": 16, "intermediate_size": 4096, "conv_depthwise_kernel_size": 31,
                                       "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16})
    mulan = tiny_mulan_config(muq_dim=1024, text_dim=768, dim=768, dim_latent=512)
    for tf in (mulan["audio_transformer"], mulan["text_transformer"]):
        tf.update(tf_depth=8, heads=8, dim_head=64, ff_mult=4)
    mulan["text_transformer"]["max_seq_len"] = 1024
    xlmr = {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072}
    return muq, mulan, xlmr


def write_clips(folder: Path, n: int, seconds: float, sr: int = 44100) -> list[str]:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f = rng.uniform(110, 880, 4)
        wave = sum(np.sin(2 * np.pi * fk * t + i) for fk in f) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        stereo = np.stack([wave, np.roll(wave, 100)], axis=1) * 0.1 + 0.01 * rng.standard_normal((len(t), 2))
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, stereo.astype(np.float32), sr)
        paths.append(str(path))
    return paths


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("large", "tiny"), default="large")
    ap.add_argument("--model", help="a real MuQ-MuLan folder instead of a random one (muq-mulan only)")
    ap.add_argument("--backbone", choices=("both", "muq-mulan", "muq"), default="both")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="mj-encoder-bench-"))
    os.environ["MUSICJUDGE_CACHE"] = str(work / "cache")  # an empty cache: the first pass misses every clip
    from musicjudge.reward.encoders import build_encoder
    from musicjudge.reward.muq.tiny import build_tiny_muq, build_tiny_muq_mulan

    paths = write_clips(work / "clips", args.clips, args.seconds)
    texts = [f"a {w} piece number {i} with piano and strings" for i, w in enumerate(["slow", "fast", "calm", "bright"] * 8)]
    results: dict = {"size": args.model or args.size, "clips": args.clips, "seconds": args.seconds,
                     "threads": torch.get_num_threads(), "backbones": {}}
    backbones = ["muq-mulan", "muq"] if args.backbone == "both" else [args.backbone]
    if args.model:
        backbones = ["muq-mulan"]
    for backbone in backbones:
        if args.model:
            folder = args.model
        elif args.size == "large":
            muq_cfg, mulan_cfg, xlmr = large_configs()
            folder = str(build_tiny_muq_mulan(work / "mulan", muq_config=muq_cfg, mulan_config=mulan_cfg, xlmr=xlmr,
                                              randomise=False) if backbone == "muq-mulan"
                         else build_tiny_muq(work / "muq", **{k: v for k, v in muq_cfg.items() if k != "w2v2_config"},
                                             w2v2_config=muq_cfg["w2v2_config"]))
        else:
            folder = str(build_tiny_muq_mulan(work / "mulan") if backbone == "muq-mulan" else build_tiny_muq(work / "muq"))
        config = {"backbone": backbone, "model": folder, "windowing": {"mode": "first", "max_seconds": args.seconds}}
        encoder, load_s = timed(lambda: build_encoder(config))
        n_params = sum(p.numel() for p in encoder.model.parameters())
        encoder.embed_audio(paths[:1])  # warm-up (not counted; its cache entry is removed below)
        for f in (work / "cache").rglob("*.npz"):
            f.unlink()
        encoder.audio_cache.reset()
        first, first_s = timed(lambda: encoder.embed_audio(paths))
        assert encoder.audio_cache.misses == len(paths) and np.isfinite(first).all()
        fresh = build_encoder(config)
        cached, cached_s = timed(lambda: fresh.embed_audio(paths))
        assert fresh.audio_cache.hits == len(paths) and np.array_equal(first, cached)
        row = {"params_M": round(n_params / 1e6, 1), "load_s": round(load_s, 2),
               "first_pass_clips_per_s": round(len(paths) / first_s, 3), "first_pass_s_per_clip": round(first_s / len(paths), 3),
               "cached_pass_clips_per_s": round(len(paths) / cached_s, 1)}
        if backbone == "muq-mulan":
            _, text_s = timed(lambda: encoder.embed_text(texts))
            row["texts_per_s"] = round(len(texts) / text_s, 1)
        results["backbones"][backbone] = row
        print(f"{backbone:10s} {row['params_M']:7.1f}M params  first pass {row['first_pass_clips_per_s']:8.3f} clips/s "
              f"({row['first_pass_s_per_clip']:.3f} s/clip)  cached pass {row['cached_pass_clips_per_s']:8.1f} clips/s"
              + (f"  text {row['texts_per_s']} texts/s" if "texts_per_s" in row else ""), flush=True)
    print(json.dumps(results))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
