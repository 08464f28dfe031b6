"""Score audio files with a music LM: the library behind ``musicjudge score`` and
``musicjudge.score_files``.

For each file: decode (mono, the model's sampling rate), check, encode, teacher-forced per-token
NLL under the condition (:meth:`~musicjudge.lm.base.MusicLM.token_nll`); the result is one row
(mean NLL over valid tokens, frames) and, with ``out``, the per-frame curve written as
``<stem>.nll.csv`` (or the ``.csv`` / ``.parquet`` file named by ``out`` for one input).
A file that cannot be scored is a row with its reason, never the end of the batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from musicjudge.errors import ConfigError, MusicjudgeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from musicjudge.data.sources import AudioItem
    from musicjudge.lm.types import TokenNLL

#: columns of :func:`score_files`' table
COLUMNS = ["id", "path", "mean_nll", "frames", "curve", "status", "error"]
CURVE_SUFFIXES = (".csv", ".parquet")


def list_inputs(source: "str | os.PathLike | Iterable[Any]") -> list["AudioItem"]:
    """The clips a user passes: one audio file, a folder of audio, a JSONL/CSV/Parquet manifest or
    a Hugging Face dataset folder (:func:`musicjudge.data.sources.list_audio_items`), or a list of
    paths (ids = the paths as given) / :class:`~musicjudge.data.sources.AudioItem` objects."""
    from musicjudge.audio import AUDIO_EXTENSIONS
    from musicjudge.data.sources import AudioItem, list_audio_items

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() in AUDIO_EXTENSIONS and not path.is_dir():
            return [AudioItem(str(source), str(source))]
        return list_audio_items(source)
    items = []
    for entry in source:
        if isinstance(entry, AudioItem):
            items.append(entry)
        elif isinstance(entry, (str, os.PathLike)):
            items.append(AudioItem(str(entry), str(entry)))
        else:
            raise ConfigError(f"{entry!r}: expected an audio path (or a folder / manifest instead of the list)")
    return items


def score_file(lm: Any, path: "str | os.PathLike", condition: Any = None) -> "TokenNLL":
    """Per-token NLL of one audio file under ``lm`` (AudioError for a missing, unreadable, silent
    or too short file)."""
    from musicjudge.audio import load_audio

    wave = load_audio(path, sample_rate=lm.sample_rate)  # AudioError for missing/dangling/unreadable
    lm.check_wave(wave, str(path))
    return lm.token_nll(lm.encode(wave), condition=condition)


def curve_path(audio: "str | os.PathLike", out: "str | os.PathLike", multiple: bool) -> Path:
    """Where the curve of ``audio`` goes: ``out`` itself when it names one ``.csv``/``.parquet``
    file for a single input, else ``out/<stem>.nll.csv`` (the folder is created)."""
    audio, out = Path(audio), Path(out)
    if multiple or out.is_dir() or out.suffix.lower() not in CURVE_SUFFIXES:
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{audio.stem}.nll.csv"
    return out


def stored_mean(target: "str | os.PathLike") -> float | None:
    """Mean NLL over valid tokens of a curve written earlier (None if unreadable)."""
    import pandas as pd

    target = Path(target)
    try:
        table = pd.read_parquet(target) if target.suffix.lower() == ".parquet" else pd.read_csv(target)
        values = table[[c for c in table.columns if c.startswith("nll_cb")]].to_numpy().ravel()
    except Exception:  # noqa: BLE001 - a torn/foreign file is simply recomputed
        return None
    values = values[~pd.isna(values)]
    return float(values.mean()) if values.size else None


def write_curve(table: "pd.DataFrame", target: "str | os.PathLike") -> None:
    """Write a curve table atomically as CSV, or Parquet for a ``.parquet`` target."""
    from musicjudge.io import atomic_write_bytes, atomic_write_text

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".parquet":
        import io

        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(target, buf.getvalue())
    else:
        atomic_write_text(target, table.to_csv(index=False))


def score_files(
    lm: Any,
    source: "str | os.PathLike | Sequence[Any]",
    *,
    condition: Any = None,
    melody: "str | os.PathLike | None" = None,
    out: "str | os.PathLike | None" = None,
    skip_existing: bool = False,
    raise_errors: bool = False,
    on_file: Callable[[dict[str, Any]], None] | None = None,
    device: str | None = None,
    dtype: Any = None,
) -> "pd.DataFrame":
    """Score every clip of ``source`` (see :func:`list_inputs`) with ``lm`` (a loaded model or a
    spec for :func:`musicjudge.lm.loader.load_music_lm`, with ``device``/``dtype``).

    ``condition``: text (or a :class:`~musicjudge.lm.types.Condition`); ``melody``: a reference
    recording for MusicGen-Melody. ``out``: write each per-frame curve there (:func:`curve_path`;
    without it nothing is written). ``skip_existing``: keep curves already in ``out``.
    ``raise_errors``: raise a file's MusicjudgeError instead of recording it. ``on_file``: called
    with each row as it is done.

    Returns one row per clip, in input order: ``id, path, mean_nll`` (nats/token), ``frames``,
    ``curve`` (written path or ""), ``status`` (``ok``, ``kept`` = read back from ``out``,
    ``failed``) and ``error``."""
    import pandas as pd

    from musicjudge.lm.types import make_condition

    if isinstance(lm, (str, os.PathLike)):
        from musicjudge.lm.loader import load_music_lm

        lm = load_music_lm(str(lm), device=device, dtype=dtype)
    items = list_inputs(source)
    if melody is not None:
        text = condition if isinstance(condition, str) or condition is None else None
        if text is None and condition is not None:
            raise ConfigError("pass either condition=Condition(...) or melody=, not both")
        condition = make_condition(text, str(melody))
    if condition is not None and hasattr(lm, "prepare_condition"):
        lm.prepare_condition(condition)  # a condition the model rejects stops here, not once per file
    if skip_existing and out is None:
        raise ConfigError("skip_existing needs out= (the folder or file the curves were written to)")
    rows = []
    multiple = len(items) > 1
    for item in items:
        row: dict[str, Any] = {"id": item.id, "path": item.path, "mean_nll": float("nan"), "frames": 0,
                               "curve": "", "status": "ok", "error": ""}
        target = curve_path(item.path, out, multiple=multiple) if out is not None else None
        kept = stored_mean(target) if skip_existing and target is not None and target.exists() else None
        if kept is not None:
            row.update(mean_nll=kept, curve=str(target), status="kept")
        else:
            try:
                result = score_file(lm, item.path, condition=condition)
            except MusicjudgeError as e:
                if raise_errors:
                    raise
                row.update(status="failed", error=str(e))
            else:
                row.update(mean_nll=result.mean(), frames=result.num_frames)
                if target is not None:
                    write_curve(result.to_frame_table(lm.frame_rate), target)
                    row["curve"] = str(target)
        rows.append(row)
        if on_file is not None:
            on_file(row)
    return pd.DataFrame(rows, columns=COLUMNS)
