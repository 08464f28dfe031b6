"""The one reader of user data layouts, shared by ``probe run --audio`` and ``bench run -b``
(and the reward readers in :mod:`musicjudge.reward.data`).

A *source* is any of:

* a folder of audio files (listed recursively), or a Hugging Face AudioFolder (audio files
  plus ``metadata.jsonl`` / ``metadata.csv`` with a ``file_name`` column);
* a manifest file: JSONL (one object per line), CSV or Parquet; a single ``.arrow`` shard;
* a Hugging Face ``datasets`` folder: a ``save_to_disk`` folder (``dataset_dict.json`` or
  ``state.json``), or a folder of parquet / arrow shards in the hub layout
  (``data/train-00000-of-00001.parquet``, a dataset card's ``configs``), read offline and
  streamed so memory stays bounded.

Audio cells that hold the audio itself (an ``Audio`` column as ``{bytes, path}``, decoded
``{array, sampling_rate}`` dicts, raw bytes) are written once to
``$MUSICJUDGE_CACHE/sources/audio/<sha256>.<ext>`` (keyed by content, so a re-run writes
nothing) and replaced by that file's path: everything downstream reads files.

Relative paths are resolved against one base folder per source: ``root`` when given,
otherwise the first of (the manifest's folder, its parent) under which the listed files
exist. :attr:`Table.looked_in` says where that was, for the "all missing" message.

``split`` picks a split of a multi-split dataset; a source with a ``split`` column is
filtered on it too. ``split="all"`` keeps every row.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from musicjudge.errors import ConfigError, ManifestError

MANIFEST_SUFFIXES: tuple[str, ...] = (".jsonl", ".csv", ".parquet", ".arrow")
# Columns that hold audio file paths in the layouts musicjudge reads (reward schema, the
# CMI-RewardBench unified layout, probe manifests, Hugging Face AudioFolder).
PATH_COLUMNS: tuple[str, ...] = (
    "path", "audio", "file_name", "audio_a", "audio_b", "ref_audio", "audio-path", "audio2", "ref-audio-path",
)
ALL_SPLITS = "all"
# How many rows the root detection checks (evenly spaced): enough to tell folders apart.
_ROOT_SAMPLE = 64
_BATCH = 64


@dataclass
class Table:
    """Rows of one source, with audio cells turned into file paths."""

    rows: list[dict[str, Any]]
    label: str  # what error messages name: the file (and split)
    kind: str  # folder | audiofolder | jsonl | csv | parquet | arrow | hf-disk | hf-folder
    base: Path  # folder that relative paths are resolved against
    looked_in: list[Path] = field(default_factory=list)  # root candidates tried, in order
    split: str | None = None  # split used (a dataset split or the value of the split column)
    origin: list[dict[str, str]] = field(default_factory=list)  # per row: column -> embedded audio's own name
    found_any: bool = True  # False when no listed relative file exists under any candidate
    numbers: list[int] = field(default_factory=list)  # per row: its 1-based position in the source, before filtering

    def __post_init__(self) -> None:
        if not self.numbers:
            self.numbers = list(range(1, len(self.rows) + 1))

    def resolve(self, value: Any) -> str | None:
        """Absolute path of an audio cell (URLs and absolute paths pass through)."""
        if value is None or (isinstance(value, float) and value != value):
            return None
        text = str(value).strip()
        if not text:
            return None
        if "://" in text:
            return text
        path = Path(os.path.expanduser(text))
        if not path.is_absolute():
            path = self.base / path
        return str(path.resolve())

    def where(self) -> str:
        return ", ".join(str(p) for p in self.looked_in) or str(self.base)


# --------------------------------------------------------------------------------------------
# Options carried inside a dataset path (``PATH?split=test&root=DIR``)
# --------------------------------------------------------------------------------------------


def with_options(path: str, *, root: str | None = None, split: str | None = None) -> str:
    """A dataset path with ``root``/``split`` attached, for configs that carry one string per
    data set (probe ``datasets``): ``clips.parquet?split=test&root=/data``."""
    from urllib.parse import urlencode

    opts = {k: str(v) for k, v in (("split", split), ("root", root)) if v}
    if not opts:
        return str(path)
    base, options = split_options(str(path))
    options.update(opts)
    return f"{base}?{urlencode(options)}"


def split_options(spec: str) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`with_options`. A path that exists as written is never split."""
    from urllib.parse import parse_qs

    spec = str(spec)
    if "?" not in spec or os.path.exists(spec):
        return spec, {}
    base, _, query = spec.rpartition("?")
    parsed = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=False).items()}
    unknown = set(parsed) - {"split", "root"}
    if unknown:
        raise ConfigError(f"{spec}: unknown option(s) {', '.join(sorted(unknown))} after '?'; only split= and root= are allowed")
    return base, parsed


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def is_hf_dataset_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return True
    return _has_shards(path)


def _has_shards(path: Path) -> bool:
    for sub in (path, path / "data"):
        if sub.is_dir() and any(p.suffix in (".parquet", ".arrow") for p in sub.rglob("*") if p.is_file()):
            return True
    return False


def _audiofolder_metadata(path: Path) -> Path | None:
    for name in ("metadata.jsonl", "metadata.csv", "metadata.parquet"):
        if (path / name).is_file():
            return path / name
    return None


def read_table(path: str | os.PathLike, *, split: str | None = None, root: str | os.PathLike | None = None,
               default_split: str | None = None) -> Table:
    """Rows of a manifest file or dataset folder (not a plain audio folder: see :func:`list_audio_items`).

    ``split``: a split name, or ``"all"``; ``default_split`` is used when ``split`` is None
    and the source has that split (bench runs default to ``"test"``)."""
    spec, options = split_options(str(path))
    split = split if split is not None else options.get("split")
    root = root if root is not None else options.get("root")
    path = Path(os.path.expanduser(spec))
    if root is not None:
        # a root that does not exist is not an error here: the missing clips are recorded
        root = Path(os.path.expanduser(str(root))).resolve()
    if not path.is_dir():
        _manifest_suffix(path)  # an unknown type is named before a missing file
    if not path.exists():
        raise ManifestError(f"{path}: file not found; check the path")
    if path.is_dir():
        meta = _audiofolder_metadata(path)
        if meta is not None and not is_hf_dataset_folder(path):
            table = _read_file(meta, split, default_split)
            table.kind = "audiofolder"
            for row in table.rows:  # AudioFolder: file_name is relative to the folder itself
                if "file_name" in row and "path" not in row:
                    row["path"] = row.pop("file_name")
            return _finish(table, [path.resolve()] if root is None else [root])
        if not is_hf_dataset_folder(path):
            raise ManifestError(f"{path}: a folder without a dataset in it (no dataset_dict.json, state.json, "
                                "parquet/arrow shards or metadata.jsonl); give a manifest or a dataset folder")
        table = _read_hf_folder(path, split, default_split)
        parent = path.resolve()
        return _finish(table, [root] if root is not None else [parent, parent.parent])
    table = _read_file(path, split, default_split)
    folder = path.resolve().parent
    return _finish(table, [root] if root is not None else [folder, folder.parent])


def _finish(table: Table, candidates: list[Path]) -> Table:
    table.looked_in = candidates
    table.base, table.found_any = _choose_root(table.rows, candidates)
    return table


def _relative_values(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    step = max(1, len(rows) // _ROOT_SAMPLE)
    out = []
    for row in rows[::step]:
        for col in PATH_COLUMNS:
            v = row.get(col)
            if isinstance(v, str) and v.strip() and "://" not in v and not os.path.isabs(os.path.expanduser(v)):
                out.append(v.strip())
    return out


def _choose_root(rows: list[dict[str, Any]], candidates: list[Path]) -> tuple[Path, bool]:
    """The candidate under which most of a sample of the listed relative files exist (the
    first candidate wins ties); ``found_any`` is False when none exists anywhere."""
    rel = _relative_values(rows)
    if not rel:
        return candidates[0], True
    best, best_hits = candidates[0], 0
    for cand in candidates:
        hits = sum(1 for v in rel if (cand / v).exists())
        if hits > best_hits:
            best, best_hits = cand, hits
    return best, best_hits > 0


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _manifest_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        suffix = ".jsonl"  # probe manifests have long been accepted as .json (one object per line)
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(f"{path}: unknown manifest type {suffix or '(none)'!r}; use .jsonl, .csv, .parquet, "
                            "a Hugging Face dataset folder, or a folder of audio files")
    return suffix


def _read_file(path: Path, split: str | None, default_split: str | None) -> Table:
    suffix = _manifest_suffix(path)
    if suffix == ".jsonl":
        from musicjudge.io import read_jsonl

        rows = read_jsonl(path, strict=True)  # a person's file: a torn last line is an error, not dropped
        kind = "jsonl"
    elif suffix == ".csv":
        rows, kind = _read_csv(path), "csv"
    elif suffix == ".parquet":
        rows, kind = list(_iter_parquet(path)), "parquet"
    else:
        rows, kind = _read_arrow_file(path), "arrow"
    table = Table(rows=rows, label=str(path), kind=kind, base=path.resolve().parent)
    _materialise(table)
    _filter_split_column(table, split, default_split)
    return table


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        # keep_default_na=False + explicit na_values: a literal "NA"/"None" in a lyric stays text.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return []
    except Exception as e:  # noqa: BLE001 - pandas raises ParserError / UnicodeDecodeError / ...
        text = " ".join(str(e).split())
        m = re.search(r"\b(?:line|row) (\d+)", text)
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise ManifestError(f"{where}: cannot read CSV ({type(e).__name__}: {text[:200]}); fix that line "
                            "(quote cells that contain commas or newlines)") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


def _iter_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=_BATCH):
            yield from _materialise_rows(batch.to_pylist(), str(path))
    except ManifestError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid / OSError for broken files
        raise ManifestError(f"{path}: cannot read parquet ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                            "check the file (a partial download?)") from None


def _read_arrow_file(path: Path) -> list[dict[str, Any]]:
    datasets = _datasets(path)
    try:
        ds = datasets.Dataset.from_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise ManifestError(f"{path}: cannot read arrow ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                            "check the file") from None
    return list(_iter_hf(ds, str(path)))


# --------------------------------------------------------------------------------------------
# Hugging Face datasets
# --------------------------------------------------------------------------------------------


def _datasets(where: Path):
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{where}: reading Hugging Face datasets needs the 'datasets' package; pip install datasets") from None
    return datasets


def _iter_hf(ds, label: str) -> Iterator[dict[str, Any]]:
    """Rows of a (streaming or map-style) dataset in batches, never decoding audio (arrow
    format keeps an Audio column as {bytes, path}), materialising audio batch by batch."""
    for batch in ds.with_format("arrow").iter(batch_size=_BATCH):
        yield from _materialise_rows(batch.to_pylist(), label)


def _pick_split(splits: list[str], split: str | None, default_split: str | None, label: str) -> tuple[str | None, bool]:
    """(dataset split to read, whether ``split`` named it)."""
    if split == ALL_SPLITS:
        return None, True
    if split is not None and split in splits:
        return split, True
    if len(splits) == 1:
        return splits[0], False  # the one split; --split then filters a split column, if any
    if split is None and default_split in splits:
        return default_split, True
    if split is None:
        raise ConfigError(f"{label}: has splits {', '.join(splits)}; pick one with --split (or --split all)")
    raise ConfigError(f"{label}: no split {split!r}; its splits are {', '.join(splits)}")


def _read_hf_folder(path: Path, split: str | None, default_split: str | None) -> Table:
    datasets = _datasets(path)
    label = str(path)
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            kind = "hf-disk"
            loaded = datasets.load_from_disk(str(path))
        else:
            kind = "hf-folder"
            # a local folder: no hub access; streaming reads the shards in place (no arrow copy)
            loaded = datasets.load_dataset(str(path), streaming=True)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets raises many types for broken folders
        raise ManifestError(f"{path}: cannot read the dataset ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                            "check the folder (save_to_disk output or parquet/arrow shards)") from None
    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        names = list(loaded)
        chosen, named = _pick_split(names, split, default_split, label)
        parts = [(n, loaded[n]) for n in (names if chosen is None else [chosen])]
    else:
        chosen, named = None, False
        parts = [(None, loaded)]
    rows: list[dict[str, Any]] = []
    for name, ds in parts:
        for row in _iter_hf(ds, label if name is None else f"{label} [{name}]"):
            if chosen is None and name is not None and "split" not in row:
                row["split"] = name  # --split all over a DatasetDict: rows say where they came from
            rows.append(row)
    table = Table(rows=rows, label=label if chosen is None else f"{label} [{chosen}]", kind=kind, base=path.resolve(),
                  split=chosen)
    _collect_origin(table)
    if not named:
        _filter_split_column(table, split, default_split)
    return table


# --------------------------------------------------------------------------------------------
# Split column
# --------------------------------------------------------------------------------------------


def _filter_split_column(table: Table, split: str | None, default_split: str | None) -> None:
    """Keep rows whose ``split`` column equals ``split`` (``default_split`` when None; nothing
    when ``"all"`` or when no row has a split). A row without a split does not match a named
    split (as the reference evaluation filters ``split == test``)."""
    wanted = split if split is not None else default_split
    if wanted is None or wanted == ALL_SPLITS:
        return
    values = {str(r.get("split")) for r in table.rows if r.get("split") not in (None, "")}
    if not values:
        if split is not None:
            raise ConfigError(f"{table.label}: --split {split}: the data has no splits (no 'split' column); leave --split out")
        return
    if split is not None and wanted not in values:
        raise ConfigError(f"{table.label}: no row has split {wanted!r}; its splits are {', '.join(sorted(values))} (or --split all)")
    keep = [i for i, r in enumerate(table.rows) if str(r.get("split")) == wanted]
    table.rows = [table.rows[i] for i in keep]
    table.numbers = [table.numbers[i] for i in keep]
    if table.origin:
        table.origin = [table.origin[i] for i in keep]
    table.split = wanted


# --------------------------------------------------------------------------------------------
# Audio cells -> files
# --------------------------------------------------------------------------------------------

_ORIGIN_KEY = "__musicjudge_origin__"


def _materialise(table: Table) -> None:
    table.rows = list(_materialise_rows(table.rows, table.label))
    _collect_origin(table)


def _collect_origin(table: Table) -> None:
    table.origin = [row.pop(_ORIGIN_KEY, {}) for row in table.rows]


def _materialise_rows(rows: Iterable[dict[str, Any]], label: str) -> Iterator[dict[str, Any]]:
    for row in rows:
        origin: dict[str, str] = {}
        for col, value in list(row.items()):
            if _is_audio_cell(value):
                path, name = materialise_audio(value, where=f"{label}: column {col!r}")
                row[col] = path
                if name:
                    origin[col] = name
        if origin:
            row[_ORIGIN_KEY] = origin
        yield row


def _is_audio_cell(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray)):
        return True
    if isinstance(value, dict):
        keys = set(value)
        return ({"bytes", "path"} >= keys and bool(keys)) or {"array", "sampling_rate"} <= keys
    return False


def audio_cache_dir() -> Path:
    from musicjudge.io import cache_dir

    return cache_dir("sources", "audio")


_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"FORM", ".aiff"),
          (b"caff", ".caf"), (b"\x1aE\xdf\xa3", ".webm"))


def _sniff_suffix(data: bytes, name: str | None) -> str:
    from musicjudge.audio import AUDIO_EXTENSIONS

    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return ".mp3"
    if data[4:8] == b"ftyp":
        return ".m4a"
    ext = Path(name).suffix.lower() if name else ""
    return ext if ext in AUDIO_EXTENSIONS else ".bin"


def _write_once(data: bytes, suffix: str) -> str:
    from musicjudge.io import atomic_write_bytes

    target = audio_cache_dir() / f"{hashlib.sha256(data).hexdigest()[:40]}{suffix}"
    if not target.exists() or target.stat().st_size != len(data):
        atomic_write_bytes(target, data)
    return str(target)


def materialise_audio(cell: Any, *, where: str = "audio") -> tuple[str | None, str | None]:
    """(file path, the embedded audio's own name) of an audio cell: bytes are written to the
    content-addressed cache; decoded arrays as float wav; a path-only cell keeps its path."""
    import numpy as np

    if isinstance(cell, (bytes, bytearray)):
        data = bytes(cell)
        return _write_once(data, _sniff_suffix(data, None)), None
    name = cell.get("path") if isinstance(cell.get("path"), str) and cell.get("path") else None
    if cell.get("bytes"):
        data = bytes(cell["bytes"])
        return _write_once(data, _sniff_suffix(data, name)), name
    if cell.get("array") is not None:
        import soundfile as sf

        sr = cell.get("sampling_rate")
        if not isinstance(sr, (int, float)) or sr <= 0:
            raise ManifestError(f"{where}: decoded audio without a positive sampling_rate; give each array its rate")
        wave = np.asarray(cell["array"], dtype=np.float32)
        if wave.ndim == 2 and wave.shape[0] < wave.shape[1] and wave.shape[0] <= 16:
            wave = wave.T  # (channels, samples), as datasets' decoders return it -> soundfile's (samples, channels)
        if wave.ndim not in (1, 2) or wave.size == 0:
            raise ManifestError(f"{where}: decoded audio of shape {wave.shape}; expected samples or (channels, samples)")
        buf = io.BytesIO()
        sf.write(buf, wave, int(sr), format="WAV", subtype="FLOAT")
        return _write_once(buf.getvalue(), ".wav"), name
    return name, None


# --------------------------------------------------------------------------------------------
# Audio items (probe): a folder, a manifest or a dataset -> (id, path, text, metadata)
# --------------------------------------------------------------------------------------------

_AUDIO_COLUMNS = ("path", "audio", "file_name", "file", "audio_path", "audio-path", "filepath")
_TEXT_COLUMNS = ("text", "caption", "prompt")


@dataclass(frozen=True)
class AudioItem:
    id: str
    path: str
    text: str | None = None
    metadata: str | None = None  # JSON object of the row's other fields


def list_audio_items(source: str | os.PathLike, *, split: str | None = None, root: str | os.PathLike | None = None,
                     limit: int | None = None) -> list[AudioItem]:
    """Clips of a data set: a folder of audio (ids = relative paths), a manifest or a dataset.

    Manifest rows need an audio column (``path``, ``audio``, ``file_name``, ...); ``id`` and
    ``text`` (or ``caption``/``prompt``) are optional; every other field is kept as metadata.
    A listing in which no file exists is an error saying where it looked."""
    spec, options = split_options(str(source))
    split = split if split is not None else options.get("split")
    root = root if root is not None else options.get("root")
    path = Path(os.path.expanduser(spec))
    if path.is_dir() and _audiofolder_metadata(path) is None and not is_hf_dataset_folder(path):
        if split is not None or root is not None:
            raise ConfigError(f"{path}: --split/--root apply to manifests and datasets, not to a folder of audio files")
        from musicjudge.audio import list_audio_files

        items = [AudioItem(p.relative_to(path).as_posix(), str(p)) for p in list_audio_files(path)]
        if not items:
            raise ConfigError(f"{path}: no audio files found; point --audio at a folder of .wav/.flac/... files")
        return items[:limit] if limit else items
    if not path.exists():
        raise ConfigError(f"{path}: not a folder, a manifest or a dataset; check --audio")
    table = read_table(path, split=split, root=root)
    if not table.rows:
        raise ManifestError(f"{table.label}: no rows; add one row per clip")
    columns = {k for r in table.rows for k in r}
    audio_col = next((c for c in _AUDIO_COLUMNS if c in columns), None)
    if audio_col is None:
        raise ManifestError(f"{table.label}: no audio column (one of {', '.join(_AUDIO_COLUMNS)}); "
                            "every row needs its clip's path or an Audio column")
    text_col = next((c for c in _TEXT_COLUMNS if c in columns), None)
    names = [o.get(audio_col) for o in table.origin] if table.origin else []
    use_names = bool(names) and all(names) and len(set(names)) == len(names)
    items: list[AudioItem] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(table.rows, 1):
        where = f"{table.label}:{i}" if table.kind == "jsonl" else f"{table.label}: row {i}"
        resolved = table.resolve(row.get(audio_col))
        if resolved is None:
            raise ManifestError(f"{where}: no audio in column {audio_col!r}; every row needs its clip")
        raw_id = row.get("id")
        if raw_id not in (None, ""):
            clip_id = str(raw_id)
        elif use_names:
            clip_id = str(names[i - 1])
        elif table.kind in ("jsonl", "csv", "parquet", "audiofolder") and isinstance(row.get(audio_col), str):
            clip_id = str(row[audio_col])
        else:
            clip_id = f"row-{i:06d}"
        if clip_id in seen:
            raise ManifestError(f"{where}: duplicate id {clip_id!r} (first in row {seen[clip_id]}); ids must be unique")
        seen[clip_id] = i
        text = row.get(text_col) if text_col else None
        extra = {k: v for k, v in row.items() if k not in (audio_col, "id", text_col, "metadata")}
        if isinstance(row.get("metadata"), dict):  # a nested metadata object is flattened
            extra.update(row["metadata"])
        metadata = json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str) if extra else None
        items.append(AudioItem(clip_id, resolved, str(text) if text not in (None, "") else None, metadata))
    local = [it.path for it in items if "://" not in it.path]
    if local and not any(os.path.exists(p) for p in local):
        first = table.rows[0].get(audio_col)
        raise ManifestError(f"{table.label}: none of its {len(items)} audio files exists (first: {first!r}); "
                            f"looked under {table.where()}; pass --root FOLDER")
    return items[:limit] if limit else items
