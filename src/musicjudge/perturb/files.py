"""Perturb audio files on disk (for listening tests and for other tools), keeping the spec,
seed and peak next to the audio so a file always says how it was made."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from musicjudge.audio import load_audio_with_sr, write_audio
from musicjudge.io import atomic_write_json, file_sha256
from musicjudge.perturb.specs import Perturbation


def perturb_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    spec: Perturbation,
    seed: int = 0,
    *,
    sample_rate: int | None = None,
    on_clip: str = "normalize",
) -> dict[str, Any]:
    """Load ``src`` (mono, resampled to ``sample_rate`` if given), apply ``spec`` with ``seed``,
    write ``dst`` and the sidecar ``dst + ".json"`` (spec, key, seed, source hash, span, peak).

    A perturbed clip whose peak exceeds full scale (loud ``add`` noise) is never clipped:
    ``on_clip="normalize"`` scales it (``normalized_gain`` < 1 in the sidecar) and
    ``on_clip="raise"`` raises AudioError. Returns the sidecar dict."""
    src, dst = Path(src), Path(dst)
    wave, sr = load_audio_with_sr(src, sample_rate)
    out, info = spec.apply_with_info(wave, sr, seed, clip=str(src))
    peak = write_audio(dst, out, sr, on_clip=on_clip)
    gain = 0.99 / peak if peak > 1.0 else 1.0
    meta = {
        "source": str(src),
        "source_sha256": file_sha256(src),
        "sample_rate": sr,
        "perturbation": spec.to_dict(),
        "key": spec.key,
        "seed": int(seed),
        "start_sample": info["start"],
        "end_sample": info["end"],
        "noise_rms_db": info.get("noise_rms_db"),
        "peak": peak,
        "normalized_gain": gain,
    }
    atomic_write_json(dst.with_name(dst.name + ".json"), meta)
    return meta
