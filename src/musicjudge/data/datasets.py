"""The three probe data sets of the paper, rebuilt in the built-in world.

- ``TrainingSet``: clips from the LM's own training pieces (the corpus ``train`` split);
- ``Generated``: samples of the built-in LM over a top-k sweep {10, 50, 100, 150, 200, 250, 500},
  decoded to audio by the tokenizer (top-k above the codebook size means no truncation; the
  effective value is recorded);
- ``OOD``: held-out pieces in other styles and timbres: the piano-rendered ``classical``
  collection, topped up with held-out pieces of the other collections re-rendered on piano.

Each set is a folder of FLAC clips plus ``manifest.jsonl`` rows ``{id, path, text, duration_s,
metadata}`` (the format ``musicjudge probe`` reads). Builds are deterministic and resumable
(clips already in a manifest are kept; a clip that fails is recorded in ``failures.jsonl``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.data.corpus import load_clip, read_corpus
from musicjudge.data.render import SAMPLE_RATE
from musicjudge.errors import ConfigError
from musicjudge.io import append_jsonl, read_jsonl

TOPK_SWEEP = (10, 50, 100, 150, 200, 250, 500)
DATASET_NAMES = ("TrainingSet", "Generated", "OOD")


def describe(row: dict) -> str:
    """Plain-language description of a corpus row (the ``text`` of a clip)."""
    inst = row.get("instrument") or "ensemble"
    key = f"{row['key']} {row['mode']}" if row.get("key") and row.get("mode") else None
    bits = [f"{row.get('collection', 'music').replace('-', ' ')} piece '{row.get('title')}'",
            f"by {row['composer']}" if row.get("composer") else None, f"played by {inst}",
            f"in {key}" if key else None, f"at {row['tempo_bpm']:.0f} bpm" if row.get("tempo_bpm") else None]
    return " ".join(b for b in bits if b)


def _rank(seed: int, ident: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{ident}".encode()).hexdigest()


def _spread(rows: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` rows spread round-robin over collections, pseudo-random but fixed within each."""
    by_coll: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: _rank(seed, r["id"])):
        by_coll.setdefault(r.get("collection", ""), []).append(r)
    out: list[dict] = []
    lists = [by_coll[k] for k in sorted(by_coll)]
    i = 0
    while len(out) < n and any(i < len(lst) for lst in lists):
        for lst in lists:
            if i < len(lst) and len(out) < n:
                out.append(lst[i])
        i += 1
    return out


def _done_ids(manifest: Path) -> set[str]:
    return {r["id"] for r in read_jsonl(manifest)} if manifest.exists() else set()


def _write_clip(folder: Path, clip_id: str, wave: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    path = folder / "audio" / f"{clip_id}.flac"
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(wave).max())
    if peak > 0.999:  # never clip silently: scale the clip down
        wave = wave * (0.999 / peak)
    tmp = path.with_suffix(".tmp.flac")
    sf.write(tmp, wave, sr, subtype="PCM_16")
    tmp.replace(path)
    return path


def build_training_set(corpus_manifest: str | Path, out_dir: str | Path, n: int = 20, clip_s: float = 15.0,
                       seed: int = 0, progress: bool = True) -> Path:
    """First ``clip_s`` seconds of ``n`` training pieces (spread over collections)."""
    from tqdm import tqdm

    out = Path(out_dir)
    manifest = out / "manifest.jsonl"
    rows = _spread([r for r in read_corpus(corpus_manifest, "train") if r["duration_s"] >= clip_s], n, seed)
    if not rows:
        raise ConfigError(f"{corpus_manifest}: no training piece of >= {clip_s} s; use a shorter --clip-seconds or build a larger corpus")
    done = _done_ids(manifest)
    for r in tqdm([r for r in rows if r["id"] not in done], desc="TrainingSet", disable=not progress):
        try:
            wave = load_clip(r, clip_s)
        except Exception as e:  # noqa: BLE001 - skip and record, finish the rest
            append_jsonl(out / "failures.jsonl", {"id": r["id"], "error": str(e)[:300]})
            continue
        path = _write_clip(out, r["id"], wave, SAMPLE_RATE)
        append_jsonl(manifest, _row(r["id"], path, describe(r), clip_s, {**_meta(r), "dataset": "TrainingSet"}))
    return manifest


def build_ood_set(corpus_manifest: str | Path, out_dir: str | Path, n: int = 20, clip_s: float = 15.0, seed: int = 0,
                  program: int = 0, progress: bool = True) -> Path:
    """Held-out ``classical`` piano renders, topped up with other held-out pieces re-rendered on
    GM ``program`` (piano): unseen pieces in an unseen timbre."""
    from tqdm import tqdm

    from musicjudge.data.render import GM_NAMES, render_score

    out = Path(out_dir)
    manifest = out / "manifest.jsonl"
    held = [r for r in read_corpus(corpus_manifest, "heldout") if r["duration_s"] >= clip_s]
    native = [r for r in held if program in r.get("programs", []) and len(set(r.get("programs", []))) == 1]
    others = [r for r in held if r not in native]
    chosen = sorted(native, key=lambda r: _rank(seed, r["id"]))[:n]
    chosen += _spread(others, n - len(chosen), seed)
    if not chosen:
        raise ConfigError(f"{corpus_manifest}: no held-out piece of >= {clip_s} s; use a shorter --clip-seconds or build a larger corpus")
    done = _done_ids(manifest)
    for r in tqdm([r for r in chosen if r["id"] not in done], desc="OOD", disable=not progress):
        try:
            if r in native:
                wave, rerendered = load_clip(r, clip_s), False
            else:
                from musicjudge.data.corpus import parse_score

                wave = render_score(parse_score(r["source"]), program, tempo_bpm=r["tempo_bpm"], max_duration_s=clip_s + 1)
                wave, rerendered = wave[: int(clip_s * SAMPLE_RATE)], True
            if wave.size < int(clip_s * SAMPLE_RATE) * 0.9:
                raise ValueError(f"render only {wave.size / SAMPLE_RATE:.1f} s long")
        except Exception as e:  # noqa: BLE001 - skip and record, finish the rest
            append_jsonl(out / "failures.jsonl", {"id": r["id"], "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        path = _write_clip(out, r["id"], wave, SAMPLE_RATE)
        meta = {**_meta(r), "dataset": "OOD", "rerendered": rerendered}
        if rerendered:
            meta.update(programs=[program], instrument=GM_NAMES.get(program, f"program {program}"))
        text = describe({**r, "instrument": meta["instrument"]})
        append_jsonl(manifest, _row(r["id"], path, text, wave.size / SAMPLE_RATE, meta))
    return manifest


def build_generated_set(out_dir: str | Path, lm: Any = None, per_k: int = 2, topks: Sequence[int] = TOPK_SWEEP,
                        clip_s: float = 15.0, seed: int = 0, temperature: float = 1.0, griffin_lim_iters: int = 32,
                        sample_batch: int = 16, progress: bool = True) -> Path:
    """``per_k`` samples of ``clip_s`` seconds at each top-k from the built-in LM (or any object
    with ``sample``/``decode``/``codebook_size``/``frame_rate``/``sample_rate``)."""
    from tqdm import tqdm

    if per_k < 1:
        raise ConfigError(f"per_k={per_k}: must be >= 1")
    if lm is None:
        from musicjudge.lm.builtin import load_builtin_lm

        lm = load_builtin_lm()
    out = Path(out_dir)
    manifest = out / "manifest.jsonl"
    done = _done_ids(manifest)
    frames = int(round(clip_s * lm.frame_rate))
    # All (top-k, index) items in fixed chunks, each sampled in ONE generate call with per-item
    # top-k and its own seed: the result does not depend on which chunks an earlier run finished.
    items = [(k, i) for k in topks for i in range(per_k)]
    chunks = [items[j : j + sample_batch] for j in range(0, len(items), sample_batch)]
    bar = tqdm(total=len(items), desc="Generated (top-k sweep)", disable=not progress)
    for c, chunk in enumerate(chunks):
        ids = [f"gen_topk{k:03d}_{i:03d}" for k, i in chunk]
        if all(i in done for i in ids):
            bar.update(len(chunk))
            continue
        chunk_seed = seed * 100003 + c
        codes = lm.sample(frames, top_k=[k for k, _ in chunk], temperature=temperature, seed=chunk_seed,
                          batch_size=len(chunk))
        for j, ((k, i), clip_id) in enumerate(zip(chunk, ids)):
            bar.update(1)
            if clip_id in done:
                continue
            wave = lm.decode(codes[j], n_iter=griffin_lim_iters, seed=chunk_seed + j)
            path = _write_clip(out, clip_id, wave, lm.sample_rate)
            append_jsonl(manifest, _row(clip_id, path, f"unconditional sample of the built-in music LM (top-k {k})",
                                        wave.size / lm.sample_rate,
                                        {"dataset": "Generated", "top_k": k, "effective_top_k": min(k, lm.codebook_size),
                                         "temperature": temperature, "seed": chunk_seed, "batch_index": j, "index": i,
                                         "model": getattr(lm, "name", "builtin")}))
    bar.close()
    return manifest


def build_datasets(corpus_manifest: str | Path, out_dir: str | Path, *, n_train: int = 20, n_ood: int = 20,
                   generated_per_k: int = 2, topks: Sequence[int] = TOPK_SWEEP, clip_s: float = 15.0, seed: int = 0,
                   lm: Any = None, progress: bool = True) -> dict[str, Path]:
    """Build (or resume) all three sets under ``out_dir/<name>/``; returns name -> manifest."""
    for flag, value in (("--n-train", n_train), ("--n-ood", n_ood), ("--per-k", generated_per_k)):
        if int(value) != value or value < 1:
            raise ConfigError(f"{flag} {value}: must be a whole number >= 1")
    if not clip_s > 0:
        raise ConfigError(f"--clip-seconds {clip_s:g}: must be > 0 seconds")
    out = Path(out_dir)
    return {
        "TrainingSet": build_training_set(corpus_manifest, out / "TrainingSet", n_train, clip_s, seed, progress),
        "Generated": build_generated_set(out / "Generated", lm, generated_per_k, topks, clip_s, seed, progress=progress),
        "OOD": build_ood_set(corpus_manifest, out / "OOD", n_ood, clip_s, seed, progress=progress),
    }


def _meta(r: dict) -> dict:
    keys = ("composer", "title", "key", "mode", "tempo_bpm", "programs", "instrument", "lyrics", "source",
            "collection", "split")
    return {k: r.get(k) for k in keys} | {"corpus_id": r["id"]}


def _row(clip_id: str, path: Path, text: str, duration_s: float, meta: dict) -> dict:
    return {"id": clip_id, "path": str(Path(path).resolve()), "text": text, "duration_s": round(float(duration_s), 3),
            "metadata": meta}
