"""``musicjudge reward score``: one CSV row per clip with musicality and alignment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from musicjudge.errors import ConfigError, ManifestError
from musicjudge.reward.base import ScoreItem, check_scores
from musicjudge.reward.registry import load_reward_model
from musicjudge.reward.data import MANIFEST_SUFFIXES, Instruction, iter_manifest_items, PreferencePair


def collect_items(audio: str | Path, *, text: str | None = None, lyrics: str | None = None,
                  ref_audio: str | None = None) -> list[tuple[str, ScoreItem]]:
    """(id, item) for a folder, a single clip, or a manifest. Instruction flags fill in what a
    manifest row leaves empty (and are the instruction for folders / single files)."""
    from musicjudge.audio import AUDIO_EXTENSIONS, list_audio_files

    audio = Path(audio)
    default = Instruction(text or None, lyrics or None, str(Path(ref_audio).resolve()) if ref_audio else None)

    def merged(ins: Instruction) -> Instruction:
        return Instruction(ins.text or default.text, ins.lyrics or default.lyrics, ins.ref_audio or default.ref_audio)

    if audio.is_dir():
        files = list_audio_files(audio)
        if not files:
            raise ManifestError(f"{audio}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
        return [(str(Path(f).relative_to(audio)) if Path(f).is_relative_to(audio) else str(f), ScoreItem(str(f), default)) for f in files]
    if audio.suffix.lower() in MANIFEST_SUFFIXES:
        out, seen = [], set()
        for record in iter_manifest_items(audio):
            if isinstance(record, PreferencePair):
                for side, path in (("a", record.audio_a), ("b", record.audio_b)):
                    key = (path, record.instruction)
                    if key not in seen:
                        seen.add(key)
                        out.append((f"{record.id}:{side}", ScoreItem(path, merged(record.instruction))))
            else:
                out.append((record.id, ScoreItem(record.audio, merged(record.instruction))))
        if not out:
            raise ManifestError(f"{audio}: manifest has no rows")
        return out
    if audio.suffix.lower() in AUDIO_EXTENSIONS or audio.exists():
        return [(audio.name, ScoreItem(str(audio.resolve()), default))]
    raise ConfigError(f"{audio}: not a folder, an audio file or a manifest (.jsonl/.csv/.parquet); check the path")


def prepare_items(audio: str | Path, *, text: str | None = None, lyrics_file: str | Path | None = None,
                  ref_audio: str | Path | None = None) -> list[tuple[str, ScoreItem]]:
    """Check the instruction flags and collect ``(id, item)`` (what ``reward score`` scores)."""
    lyrics = None
    if lyrics_file is not None:
        path = Path(lyrics_file)
        if not path.is_file():
            raise ConfigError(f"{path}: lyrics file not found; pass a text file with the lyrics")
        lyrics = path.read_text(encoding="utf-8").strip() or None
    if ref_audio is not None and not Path(ref_audio).is_file():
        raise ConfigError(f"{ref_audio}: reference audio not found; check the path")
    return collect_items(audio, text=text, lyrics=lyrics, ref_audio=str(ref_audio) if ref_audio else None)


def score_rows(reward_model: Any, chunk: list[tuple[str, ScoreItem]]) -> list[dict[str, Any]]:
    """One output row per ``(id, item)`` of ``chunk`` (one ``score()`` call); a clip the model
    could not score is a ``status="failed"`` row with its reason in ``error``."""
    encoder = getattr(reward_model, "encoder", None)
    scores = check_scores(reward_model.score([it for _, it in chunk]), len(chunk))
    failures = getattr(reward_model, "failures", {}) or {}
    rows = []
    for k, (item_id, item) in enumerate(chunk):
        ok = bool(np.isfinite(scores["musicality"][k]) and np.isfinite(scores["alignment"][k]))
        seconds = encoder.audio_seconds(item.audio) if encoder is not None and hasattr(encoder, "audio_seconds") else None
        rows.append({
            "id": item_id, "audio": item.audio, "instruction_kind": item.instruction.kind,
            "musicality": float(scores["musicality"][k]) if ok else None,
            "alignment": float(scores["alignment"][k]) if ok else None,
            "seconds_used": seconds, "status": "ok" if ok else "failed",
            "error": None if ok else failures.get(item.audio, "could not be scored"),
        })
    return rows


def write_scores(out: str | Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the output table (CSV, one row per clip, in the given order) and count it."""
    import pandas as pd

    from musicjudge.io import atomic_write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    atomic_write_text(out, frame.to_csv(index=False))
    n_failed = int((frame["status"] == "failed").sum())
    return {"scored": len(frame) - n_failed, "failed": n_failed, "out": str(out)}


def score_to_csv(audio: str | Path, out: str | Path, *, model: str | Any = "builtin", text: str | None = None,
                 lyrics_file: str | Path | None = None, ref_audio: str | Path | None = None, batch_size: int = 64,
                 device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``reward score`` in one process (:func:`musicjudge.reward.parallel.run_reward_score_parallel`
    splits the same job across processes)."""
    items = prepare_items(audio, text=text, lyrics_file=lyrics_file, ref_audio=ref_audio)
    reward_model = load_reward_model(model, device=device) if isinstance(model, (str, Path)) else model
    rows = []
    starts = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="score", unit="batch")
    for start in starts:
        rows.extend(score_rows(reward_model, items[start:start + batch_size]))
    return write_scores(out, rows)
