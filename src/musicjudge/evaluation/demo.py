"""``musicjudge eval --demo``: a complete eval in the built-in offline world.

From the built-in corpus (music21 scores rendered with the GM soundfont, cached and shared with
``musicjudge demo``) it writes:

- ``prompts.jsonl``: one prompt per piece (its plain-language description, lyrics if it has
  them), id = the corpus piece id;
- system ``rendered``: the first ``clip_s`` seconds of each prompt's piece as rendered, i.e. a
  generator that does what it is asked;
- system ``degraded``: the same clips with broadband noise and coarse quantisation (the
  "codec artifacts or noise" the built-in reward model learnt to dislike), i.e. a worse
  generator answering the same prompts;
- ``reference/``: clips of other pieces, the "real music" the distances are measured to.

The outcome is known in advance (rendered should beat degraded on musicality and be closer to
the reference), so the demo shows what every table and figure looks like when a difference is
real. Everything is seeded; re-running reuses the clips and the scored rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from musicjudge.errors import ConfigError

DEMO_SETTINGS: dict[str, Any] = {"corpus_limit": 24, "n_prompts": 8, "n_reference": 8, "clip_s": 6.0,
                                 "noise_snr_db": 10.0, "quantise_bits": 5, "seed": 0}
# quick: the 8 pieces `musicjudge demo --quick` renders too, so the two share one corpus build
QUICK_SETTINGS: dict[str, Any] = {**DEMO_SETTINGS, "corpus_limit": 8, "n_prompts": 4, "n_reference": 4}


def degrade(wave: np.ndarray, *, snr_db: float, bits: int, seed: int) -> np.ndarray:
    """Add white noise at ``snr_db`` below the clip's power and quantise to ``bits`` bits."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(wave.astype(np.float64) ** 2)) or 1e-8
    noisy = wave + rng.standard_normal(wave.size).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    levels = 2 ** (bits - 1)
    return (np.round(np.clip(noisy, -1, 1) * levels) / levels).astype(np.float32)


def build_demo_data(folder: str | Path, *, quick: bool = False, progress: bool = True,
                    log: Callable[[str], None] = print) -> dict[str, Path]:
    """Write (or reuse) the demo's prompts, systems and reference under ``folder``; returns
    {"prompts", "rendered", "degraded", "reference"} -> JSONL manifest."""
    from musicjudge.audio import write_audio
    from musicjudge.data.corpus import build_corpus, iter_pieces, load_clip, read_corpus
    from musicjudge.data.datasets import describe
    from musicjudge.data.render import SAMPLE_RATE
    from musicjudge.io import atomic_write_text
    import json

    s = QUICK_SETTINGS if quick else DEMO_SETTINGS
    folder = Path(folder)
    manifest = build_corpus(limit=s["corpus_limit"], progress=progress)
    # The corpus cache may hold more pieces than asked for (other commands extend it): take the
    # first corpus_limit pieces in corpus order, so the demo is the same on every machine.
    by_id = {r["id"]: r for r in read_corpus(manifest)}
    first = [p.id for p in iter_pieces()][: s["corpus_limit"]]
    rows = [by_id[i] for i in first if i in by_id and by_id[i]["duration_s"] >= s["clip_s"]]
    need = s["n_prompts"] + s["n_reference"]
    if len(rows) < need:
        raise ConfigError(f"{manifest}: {len(rows)} corpus pieces of >= {s['clip_s']:g} s, the eval demo needs {need}; "
                          "rebuild the corpus with 'musicjudge data corpus'")
    # Corpus order goes round-robin over collections: alternate prompts and reference so both mix them.
    prompts_rows, reference_rows = rows[0:2 * s["n_prompts"]:2], rows[1:2 * s["n_reference"]:2]
    paths = {name: folder / name for name in ("rendered", "degraded", "reference")}
    for k, row in enumerate(prompts_rows):
        wave = None
        for name, transform in (("rendered", None), ("degraded", k)):
            target = paths[name] / f"{row['id']}.flac"
            if target.exists():
                continue
            wave = load_clip(row, s["clip_s"]) if wave is None else wave
            out = wave if transform is None else degrade(wave, snr_db=s["noise_snr_db"], bits=s["quantise_bits"],
                                                         seed=s["seed"] + transform)
            write_audio(target, out, SAMPLE_RATE)
    for row in reference_rows:
        target = paths["reference"] / f"{row['id']}.flac"
        if not target.exists():
            write_audio(target, load_clip(row, s["clip_s"]), SAMPLE_RATE)
    prompts = folder / "prompts.jsonl"
    lines = [json.dumps({"id": r["id"], "text": describe(r), **({"lyrics": r["lyrics"]} if r.get("lyrics") else {})},
                        ensure_ascii=False) for r in prompts_rows]
    atomic_write_text(prompts, "\n".join(lines) + "\n")
    # One manifest per set lists exactly this demo's clips: a folder reused by a --quick and a full
    # run holds the clips of both, and the evaluation must see only the ones asked for.
    manifests = {}
    for name, chosen in (("rendered", prompts_rows), ("degraded", prompts_rows), ("reference", reference_rows)):
        manifests[name] = folder / f"{name}.jsonl"
        atomic_write_text(manifests[name], "".join(
            json.dumps({"id": r["id"], "path": f"{name}/{r['id']}.flac"}, ensure_ascii=False) + "\n" for r in chosen))
    log(f"eval demo data: {len(prompts_rows)} prompts, 2 systems, {len(reference_rows)} reference clips in {folder}")
    return {"prompts": prompts, **manifests}


def run_eval_demo(out: str | Path, *, quick: bool = False, lm: Any = "builtin", reward: Any = "builtin",
                  progress: bool = True, log: Callable[[str], None] = print, **kwargs: Any):
    """Build the demo data under ``out/demo-data`` and evaluate it into ``out``."""
    from musicjudge.evaluation.runner import evaluate

    data = build_demo_data(Path(out) / "demo-data", quick=quick, progress=progress, log=log)
    return evaluate({"rendered": data["rendered"], "degraded": data["degraded"]}, out, prompts=data["prompts"],
                    reference=data["reference"], lm=lm, reward=reward, progress=progress, log=log, **kwargs)
