"""Reward data schema: instructions, preference pairs, rated clips, and their manifests.

Manifests are JSONL, CSV or Parquet (chosen by file extension). Audio paths inside a manifest
are relative to the manifest's folder (absolute paths and URLs are kept as they are); readers
return absolute paths so callers never have to know where the manifest was.

Pair rows:  id, text, lyrics, ref_audio, audio_a, audio_b, musicality, alignment,
            confidence_musicality, confidence_alignment, annotator, source, system_a, system_b
Rated rows: id, text, lyrics, ref_audio, audio, musicality, alignment, system, annotator, source

Any other column is kept in ``metadata`` (a ``metadata`` column holding a JSON object is
merged in too). A preference per dimension is "A", "B" or "tie"; an empty cell means the pair
is unlabelled for that dimension.

Published layouts: :func:`read_cmi_rewardbench_jsonl` (the CMI-RewardBench unified JSONL) and
:func:`read_cmi_pref` (CMI-Pref human votes, local file or ``datasets.load_dataset``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from musicjudge.errors import ConfigError, ManifestError

DIMENSIONS: tuple[str, ...] = ("musicality", "alignment")
PREFERENCES: tuple[str, ...] = ("A", "B", "tie")
INSTRUCTION_KINDS: tuple[str, ...] = ("text", "text+lyrics", "text+ref", "text+lyrics+ref")
MANIFEST_SUFFIXES: tuple[str, ...] = (".jsonl", ".csv", ".parquet")

PAIR_COLUMNS: tuple[str, ...] = (
    "id", "text", "lyrics", "ref_audio", "audio_a", "audio_b", "musicality", "alignment",
    "confidence_musicality", "confidence_alignment", "annotator", "source", "system_a", "system_b",
)
RATED_COLUMNS: tuple[str, ...] = (
    "id", "text", "lyrics", "ref_audio", "audio", "musicality", "alignment", "system", "annotator", "source",
)

# Spellings of a preference found in published data, mapped to the schema's A/B/tie.
# "both"/"neither" (Music Arena) are ties for scoring; the raw word is kept in metadata.
_PREFERENCE_ALIASES: dict[str, str] = {
    "a": "A", "model_a": "A", "audio_a": "A", "audio1": "A", "1": "A", "first": "A", "left": "A",
    "b": "B", "model_b": "B", "audio_b": "B", "audio2": "B", "2": "B", "second": "B", "right": "B",
    "tie": "tie", "both": "tie", "neither": "tie", "equal": "tie", "same": "tie", "0": "tie",
}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """What a clip was asked to be: any subset of text, lyrics and a reference-audio path."""

    text: str | None = None
    lyrics: str | None = None
    ref_audio: str | None = None

    @property
    def kind(self) -> str:
        """"text", "text+lyrics", "text+ref", "text+lyrics+ref"; other combinations give
        e.g. "lyrics", "ref", "lyrics+ref" and "none"."""
        parts = [name for name, value in (("text", self.text), ("lyrics", self.lyrics), ("ref", self.ref_audio)) if value]
        return "+".join(parts) if parts else "none"

    def to_dict(self) -> dict[str, str | None]:
        return {"text": self.text, "lyrics": self.lyrics, "ref_audio": self.ref_audio}


@dataclass
class PreferencePair:
    """Two clips made for one instruction and which one is better, per dimension."""

    id: str
    instruction: Instruction
    audio_a: str
    audio_b: str
    preference: dict[str, str] = field(default_factory=dict)  # dim -> "A" | "B" | "tie"
    confidence: dict[str, float] = field(default_factory=dict)  # dim -> annotator confidence
    annotator: str | None = None
    source: str | None = None
    system_a: str | None = None
    system_b: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def labelled_dimensions(self) -> list[str]:
        return [d for d in DIMENSIONS if d in self.preference]

    def swapped(self) -> "PreferencePair":
        """The same judgement with A and B exchanged (for position-bias checks / augmentation)."""
        flip = {"A": "B", "B": "A", "tie": "tie"}
        return PreferencePair(
            id=f"{self.id}:swapped", instruction=self.instruction, audio_a=self.audio_b, audio_b=self.audio_a,
            preference={d: flip[p] for d, p in self.preference.items()}, confidence=dict(self.confidence),
            annotator=self.annotator, source=self.source, system_a=self.system_b, system_b=self.system_a,
            metadata=dict(self.metadata),
        )


@dataclass
class RatedClip:
    """One clip with absolute scores (e.g. a MOS) per dimension."""

    id: str
    instruction: Instruction
    audio: str
    scores: dict[str, float] = field(default_factory=dict)  # dim -> rating
    system: str | None = None
    annotator: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Cell helpers
# --------------------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    try:  # pandas NA / NaT
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple)) else False
    except (ImportError, TypeError, ValueError):
        return False


def _opt_str(value: Any) -> str | None:
    return None if _is_missing(value) else str(value)


def _where(path: Path, row: int) -> str:
    return f"{path}: row {row}"


def normalise_preference(value: Any, *, where: str = "value", column: str = "preference") -> str | None:
    """Map a preference cell to "A"/"B"/"tie" (None if empty); raise ManifestError otherwise."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        raise ManifestError(f"{where}: column {column!r} has {value!r}; use A, B or tie")
    if isinstance(value, (int, float)) and float(value).is_integer():
        value = str(int(value))
    key = str(value).strip().lower()
    if key not in _PREFERENCE_ALIASES:
        raise ManifestError(f"{where}: column {column!r} has {value!r}; use A, B or tie (or leave empty)")
    return _PREFERENCE_ALIASES[key]


def _finite_float(value: Any, *, where: str, column: str) -> float | None:
    if _is_missing(value):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: column {column!r} has {value!r}, not a number; write a number or leave it empty") from None
    if not math.isfinite(out):
        raise ManifestError(f"{where}: column {column!r} is {value!r}; write a finite number or leave it empty")
    return out


def resolve_audio_path(value: Any, root: Path | None) -> str | None:
    """Join a manifest's relative path to its folder; absolute paths and URLs pass through."""
    if _is_missing(value):
        return None
    text = str(value).strip()
    if "://" in text:
        return text
    path = Path(os.path.expanduser(text))
    if not path.is_absolute() and root is not None:
        path = root / path
    return str(path.resolve()) if path.is_absolute() else str(path)


def _relative_audio_path(value: str | None, root: Path) -> str | None:
    """Write paths under the manifest's folder relative to it, so a manifest folder can move."""
    if value is None or "://" in value:
        return value
    try:
        return Path(value).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return value


def _metadata_cell(value: Any, where: str) -> dict[str, Any]:
    if _is_missing(value):
        return {}
    if isinstance(value, dict):
        return dict(value)
    try:
        out = json.loads(str(value))
    except json.JSONDecodeError:
        raise ManifestError(f"{where}: column 'metadata' is not a JSON object; write e.g. {{\"key\": 1}} or leave it empty") from None
    if not isinstance(out, dict):
        raise ManifestError(f"{where}: column 'metadata' is not a JSON object; write e.g. {{\"key\": 1}} or leave it empty")
    return out


def _json_safe(value: Any) -> Any:
    """Extra columns go into metadata; make numpy/pandas scalars plain Python."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


# --------------------------------------------------------------------------------------------
# Generic table IO (JSONL / CSV / Parquet)
# --------------------------------------------------------------------------------------------


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(f"{path}: unknown manifest type {suffix or '(none)'!r}; use .jsonl, .csv or .parquet")
    return suffix


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a JSONL/CSV/Parquet file or a Hugging Face dataset folder as dicts (empty cells
    become None; embedded audio becomes cached files). One implementation:
    :func:`musicjudge.data.sources.read_table`."""
    from musicjudge.data.sources import read_table as read_source

    return read_source(path, split="all").rows


def write_table(path: str | os.PathLike, rows: list[dict[str, Any]], columns: Iterable[str]) -> Path:
    """Write rows atomically as JSONL/CSV/Parquet; nested values become JSON text in CSV/Parquet."""
    from musicjudge.io import atomic_write_bytes, atomic_write_text

    path = Path(path)
    suffix = _check_suffix(path)
    columns = list(columns)
    if suffix == ".jsonl":
        from musicjudge.io import json_default

        text = "".join(json.dumps(r, ensure_ascii=False, default=json_default) + "\n" for r in rows)
        atomic_write_text(path, text)
        return path
    import io

    import pandas as pd

    flat = [{k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v) for k, v in r.items()} for r in rows]
    extra = sorted({k for r in flat for k in r} - set(columns))
    frame = pd.DataFrame(flat, columns=columns + extra)
    buffer = io.BytesIO()
    if suffix == ".csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# --------------------------------------------------------------------------------------------
# Schema manifests
# --------------------------------------------------------------------------------------------


def _instruction_from_row(row: dict[str, Any], root: Path) -> Instruction:
    return Instruction(
        text=_opt_str(row.get("text")),
        lyrics=_opt_str(row.get("lyrics")),
        ref_audio=resolve_audio_path(row.get("ref_audio"), root),
    )


def pair_from_row(row: dict[str, Any], *, root: Path, where: str) -> PreferencePair:
    """Validate one manifest row and turn it into a PreferencePair."""
    for column in ("id", "audio_a", "audio_b"):
        if _is_missing(row.get(column)):
            raise ManifestError(f"{where}: column {column!r} is missing or empty; every pair needs id, audio_a and audio_b")
    preference: dict[str, str] = {}
    confidence: dict[str, float] = {}
    for dim in DIMENSIONS:
        pref = normalise_preference(row.get(dim), where=where, column=dim)
        if pref is not None:
            preference[dim] = pref
        conf = _finite_float(row.get(f"confidence_{dim}"), where=where, column=f"confidence_{dim}")
        if conf is not None:
            if conf < 0:
                raise ManifestError(f"{where}: column 'confidence_{dim}' is {conf}; confidences must be >= 0")
            confidence[dim] = conf
    metadata = _metadata_cell(row.get("metadata"), where)
    metadata.update({k: _json_safe(v) for k, v in row.items() if k not in PAIR_COLUMNS and k != "metadata" and not _is_missing(v)})
    audio_a = resolve_audio_path(row["audio_a"], root)
    audio_b = resolve_audio_path(row["audio_b"], root)
    return PreferencePair(
        id=str(row["id"]), instruction=_instruction_from_row(row, root), audio_a=audio_a, audio_b=audio_b,
        preference=preference, confidence=confidence, annotator=_opt_str(row.get("annotator")),
        source=_opt_str(row.get("source")), system_a=_opt_str(row.get("system_a")),
        system_b=_opt_str(row.get("system_b")), metadata=metadata,
    )


def rated_from_row(row: dict[str, Any], *, root: Path, where: str) -> RatedClip:
    """Validate one manifest row and turn it into a RatedClip."""
    for column in ("id", "audio"):
        if _is_missing(row.get(column)):
            raise ManifestError(f"{where}: column {column!r} is missing or empty; every rated clip needs id and audio")
    scores: dict[str, float] = {}
    for dim in DIMENSIONS:
        value = _finite_float(row.get(dim), where=where, column=dim)
        if value is not None:
            scores[dim] = value
    metadata = _metadata_cell(row.get("metadata"), where)
    metadata.update({k: _json_safe(v) for k, v in row.items() if k not in RATED_COLUMNS and k != "metadata" and not _is_missing(v)})
    return RatedClip(
        id=str(row["id"]), instruction=_instruction_from_row(row, root), audio=resolve_audio_path(row["audio"], root),
        scores=scores, system=_opt_str(row.get("system")), annotator=_opt_str(row.get("annotator")),
        source=_opt_str(row.get("source")), metadata=metadata,
    )


def check_unique_ids(path: Path, ids: list[str]) -> None:
    """ManifestError naming both rows when an id of the manifest at ``path`` repeats."""
    seen: dict[str, int] = {}
    for i, item_id in enumerate(ids, 1):
        if item_id in seen:
            raise ManifestError(f"{_where(path, i)}: id {item_id!r} repeats row {seen[item_id]}; ids must be unique")
        seen[item_id] = i


def read_pairs(path: str | os.PathLike, *, require_label: bool = False, split: str | None = None,
               root: str | os.PathLike | None = None) -> list[PreferencePair]:
    """Read a pairs manifest (JSONL/CSV/Parquet or a dataset folder). Relative paths are resolved
    against ``root``, else the manifest's folder or its parent (where the files are; see
    :mod:`musicjudge.data.sources`). ``require_label=True`` rejects rows with no preference in
    any dimension (training data)."""
    from musicjudge.data.sources import read_table as read_source

    path = Path(path)
    table = read_source(path, split=split, root=root)
    rows, root = table.rows, table.base
    pairs = []
    for i, row in zip(table.numbers, rows):  # the file's own line numbers, whatever --split left out
        pair = pair_from_row(row, root=root, where=_where(path, i))
        if require_label and not pair.preference:
            raise ManifestError(f"{_where(path, i)}: pair {pair.id!r} has no preference for {' or '.join(DIMENSIONS)}; label it or drop the row")
        pairs.append(pair)
    check_unique_ids(path, [p.id for p in pairs])
    return pairs


def read_rated(path: str | os.PathLike, *, split: str | None = None, root: str | os.PathLike | None = None) -> list[RatedClip]:
    """Read a rated-clips manifest (JSONL/CSV/Parquet or a dataset folder); paths resolved as in
    :func:`read_pairs`."""
    from musicjudge.data.sources import read_table as read_source

    path = Path(path)
    table = read_source(path, split=split, root=root)
    rows, root = table.rows, table.base
    clips = [rated_from_row(row, root=root, where=_where(path, i)) for i, row in zip(table.numbers, rows)]
    check_unique_ids(path, [c.id for c in clips])
    return clips


def pair_to_row(pair: PreferencePair, root: Path | None = None) -> dict[str, Any]:
    rel = (lambda p: _relative_audio_path(p, root)) if root is not None else (lambda p: p)
    row: dict[str, Any] = {
        "id": pair.id, "text": pair.instruction.text, "lyrics": pair.instruction.lyrics,
        "ref_audio": rel(pair.instruction.ref_audio), "audio_a": rel(pair.audio_a), "audio_b": rel(pair.audio_b),
    }
    for dim in DIMENSIONS:
        row[dim] = pair.preference.get(dim)
    for dim in DIMENSIONS:
        row[f"confidence_{dim}"] = pair.confidence.get(dim)
    row.update(annotator=pair.annotator, source=pair.source, system_a=pair.system_a, system_b=pair.system_b)
    if pair.metadata:
        row["metadata"] = pair.metadata
    return row


def rated_to_row(clip: RatedClip, root: Path | None = None) -> dict[str, Any]:
    rel = (lambda p: _relative_audio_path(p, root)) if root is not None else (lambda p: p)
    row: dict[str, Any] = {
        "id": clip.id, "text": clip.instruction.text, "lyrics": clip.instruction.lyrics,
        "ref_audio": rel(clip.instruction.ref_audio), "audio": rel(clip.audio),
    }
    for dim in DIMENSIONS:
        row[dim] = clip.scores.get(dim)
    row.update(system=clip.system, annotator=clip.annotator, source=clip.source)
    if clip.metadata:
        row["metadata"] = clip.metadata
    return row


def write_pairs(path: str | os.PathLike, pairs: Iterable[PreferencePair]) -> Path:
    """Write a pairs manifest atomically; audio under the manifest's folder is written relative."""
    path = Path(path)
    root = path.resolve().parent
    return write_table(path, [pair_to_row(p, root) for p in pairs], PAIR_COLUMNS)


def write_rated(path: str | os.PathLike, clips: Iterable[RatedClip]) -> Path:
    path = Path(path)
    root = path.resolve().parent
    return write_table(path, [rated_to_row(c, root) for c in clips], RATED_COLUMNS)


# --------------------------------------------------------------------------------------------
# Published layouts
# --------------------------------------------------------------------------------------------


class RewardBenchRows(NamedTuple):
    """Rows of a CMI-RewardBench unified JSONL, split into pairwise and rated records."""

    pairs: list[PreferencePair]
    rated: list[RatedClip]


# Fields of the unified layout that map onto the schema; the rest go to metadata.
_UNIFIED_KNOWN = {
    "audio-path", "audio2", "ref-audio-path", "prompt", "lyrics", "source", "split", "modality",
    "preference-musicality", "preference-alignment", "confidence_preference-musicality",
    "confidence_preference-alignment", "preference", "musicality", "text-music alignment", "id",
}


def _unified_row_to_record(row: dict[str, Any], *, index: int, root: Path, where: str, stem: str) -> PreferencePair | RatedClip:
    if _is_missing(row.get("audio-path")):
        raise ManifestError(f"{where}: field 'audio-path' is missing or empty; every row needs the clip's path")
    source = _opt_str(row.get("source")) or "unknown"
    instruction = Instruction(
        text=_opt_str(row.get("prompt")), lyrics=_opt_str(row.get("lyrics")),
        ref_audio=resolve_audio_path(row.get("ref-audio-path"), root),
    )
    metadata = {k: _json_safe(v) for k, v in row.items() if k not in _UNIFIED_KNOWN and not _is_missing(v)}
    for key in ("split", "modality"):
        if not _is_missing(row.get(key)):
            metadata[key] = row[key]
    # One row per vote in CMI-Pref (votes on the same pair are not merged), so ids use the row index.
    record_id = _opt_str(row.get("id")) or f"{stem}-{index:06d}"
    audio_a = resolve_audio_path(row["audio-path"], root)
    if not _is_missing(row.get("audio2")):
        preference: dict[str, str] = {}
        confidence: dict[str, float] = {}
        for dim in DIMENSIONS:
            pref = normalise_preference(row.get(f"preference-{dim}"), where=where, column=f"preference-{dim}")
            if pref is not None:
                preference[dim] = pref
                if str(row.get(f"preference-{dim}")).strip().lower() in ("both", "neither"):
                    metadata[f"raw_preference_{dim}"] = str(row[f"preference-{dim}"]).strip().lower()
            conf = _finite_float(row.get(f"confidence_preference-{dim}"), where=where, column=f"confidence_preference-{dim}")
            if conf is not None:
                confidence[dim] = conf
        if not _is_missing(row.get("preference")):
            # Music Arena: one overall vote; the benchmark scores it as musicality.
            pref = normalise_preference(row.get("preference"), where=where, column="preference")
            preference.setdefault("musicality", pref)
            metadata["raw_preference"] = str(row["preference"]).strip().lower()
            metadata["overall_preference"] = True
        return PreferencePair(
            id=record_id, instruction=instruction, audio_a=audio_a, audio_b=resolve_audio_path(row["audio2"], root),
            preference=preference, confidence=confidence, source=source, metadata=metadata,
        )
    scores: dict[str, float] = {}
    value = _finite_float(row.get("musicality"), where=where, column="musicality")
    if value is not None:
        scores["musicality"] = value
    value = _finite_float(row.get("text-music alignment"), where=where, column="text-music alignment")
    if value is not None:
        scores["alignment"] = value
    return RatedClip(id=record_id, instruction=instruction, audio=audio_a, scores=scores, source=source, metadata=metadata)


def unified_rows_to_records(rows: Iterable[dict[str, Any]], *, root: Path | str, label: str = "rows",
                            numbers: list[int] | None = None) -> RewardBenchRows:
    """Convert rows in the CMI-RewardBench unified layout (dicts) into schema records.
    ``numbers``: each row's position in its file (ids and messages use it, so a vote keeps its
    id whatever rows a split or source filter left out); default 1, 2, ..."""
    root = Path(root).expanduser().resolve()
    pairs: list[PreferencePair] = []
    rated: list[RatedClip] = []
    stem = Path(label.split(" [")[0]).stem or "row"
    for j, row in enumerate(rows):
        i = numbers[j] if numbers is not None else j + 1
        record = _unified_row_to_record(row, index=i, root=root, where=f"{label}: row {i}", stem=stem)
        (pairs if isinstance(record, PreferencePair) else rated).append(record)
    return RewardBenchRows(pairs, rated)


def read_cmi_rewardbench_jsonl(path: str | os.PathLike, root: str | os.PathLike | None = None, *,
                               split: str | None = None, source: str | None = None) -> RewardBenchRows:
    """Read rows in the CMI-RewardBench unified layout: the published JSONL, or the same rows as
    CSV / Parquet / a Hugging Face dataset folder. Relative audio paths are joined to ``root``
    (the dataset root; default: the file's folder or its parent, where the clips are).
    ``split`` keeps rows of that split (``"all"``: every row); ``source`` keeps one source."""
    return read_cmi_rewardbench(path, root, split=split, source=source)[0]


def read_cmi_rewardbench(path: str | os.PathLike, root: str | os.PathLike | None = None, *,
                         split: str | None = None, source: str | None = None):
    """:func:`read_cmi_rewardbench_jsonl` plus the :class:`musicjudge.data.sources.Table` it read
    (where relative paths were looked for)."""
    from musicjudge.data.sources import read_table as read_source

    table = read_source(path, split=split, root=root)
    kept = [j for j, r in enumerate(table.rows) if source is None or r.get("source") == source]
    return unified_rows_to_records([table.rows[j] for j in kept], root=table.base, label=table.label,
                                   numbers=[table.numbers[j] for j in kept]), table


def read_cmi_pref(path_or_name: str | os.PathLike, *, split: str | None = None, root: str | os.PathLike | None = None,
                  use_datasets: bool = False, cache_dir: str | None = None) -> list[PreferencePair]:
    """Human votes of CMI-Pref as PreferencePairs (one pair per vote, not aggregated).

    ``path_or_name`` is a local JSONL/CSV/Parquet in the published unified layout, or, with
    ``use_datasets=True``, a dataset name or folder for ``datasets.load_dataset`` (needs the
    ``datasets`` package and hub access or a local copy). ``split`` filters "train"/"test"."""
    if use_datasets:
        try:
            import datasets  # noqa: F401  (optional dependency)
        except ImportError:
            raise ConfigError(
                f"{path_or_name}: loading through the hub needs the 'datasets' package; "
                "pip install datasets, or download the dataset and pass its local JSONL/Parquet file"
            ) from None
        try:
            dataset = datasets.load_dataset(str(path_or_name), split=split or "train", cache_dir=cache_dir)
        except Exception as e:  # network / missing dataset errors vary by datasets version
            raise ManifestError(f"{path_or_name}: datasets.load_dataset failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the name or use a local file") from None
        rows = [dict(r) for r in dataset]
        data_root = Path(root) if root is not None else Path.cwd()
        label = str(path_or_name).replace("/", "_")
        numbers = None
    else:
        from musicjudge.data.sources import read_table as read_source

        table = read_source(path_or_name, split=split or "all", root=root)
        rows, data_root, label, numbers = table.rows, table.base, table.label, table.numbers
    records = unified_rows_to_records(rows, root=data_root, label=label, numbers=numbers)
    if records.rated:
        raise ManifestError(f"{path_or_name}: {len(records.rated)} rows have no 'audio2'; CMI-Pref rows are pairs (audio-path, audio2)")
    return records.pairs


def iter_manifest_items(path: str | os.PathLike) -> Iterator[PreferencePair | RatedClip]:
    """Yield pairs or rated clips depending on the manifest's columns (audio_a/audio_b vs audio)."""
    from musicjudge.data.sources import read_table as read_source

    path = Path(path)
    table = read_source(path, split="all")
    rows, root = table.rows, table.base
    for i, row in enumerate(rows, 1):
        if "audio_a" in row:
            yield pair_from_row(row, root=root, where=_where(path, i))
        else:
            yield rated_from_row(row, root=root, where=_where(path, i))
