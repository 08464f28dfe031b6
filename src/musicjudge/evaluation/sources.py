"""Reading what ``musicjudge eval`` evaluates: a system's clips (any layout
:mod:`musicjudge.data.sources` reads) and the prompts manifest the clips answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from musicjudge.errors import ConfigError, ManifestError


@dataclass(frozen=True)
class Clip:
    """One clip of a system; ``text``/``lyrics``/``ref_audio`` come from its manifest row, if any."""

    id: str
    path: str
    text: str | None = None
    lyrics: str | None = None
    ref_audio: str | None = None
    prompt_id: str | None = None  # the manifest's explicit prompt (several samples per prompt)


@dataclass(frozen=True)
class Prompt:
    """One instruction the systems were asked to answer."""

    id: str
    text: str | None = None
    lyrics: str | None = None
    ref_audio: str | None = None


def _optional_str(row: dict, key: str, where: str) -> str | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def read_clips(source: str | Path) -> list[Clip]:
    """Clips of a system or of the reference, through the project's one data-layout reader
    (:func:`musicjudge.data.sources.list_audio_items`): a folder of audio (id = relative path),
    a JSONL / CSV / Parquet manifest or a Hugging Face dataset folder (``path``/``audio``/...
    relative to the manifest; optional ``id``, ``text``; ``lyrics``, ``ref_audio`` and
    ``prompt_id`` are read from the row's other fields). A listed file that does not exist is
    kept: scoring records it as a bad clip, and the rest of the system is still evaluated."""
    import json

    from musicjudge.data.sources import list_audio_items, split_options

    spec = split_options(str(source))[0]
    if not Path(spec).expanduser().exists():
        raise ConfigError(f"{source}: no such folder or manifest; check the path")
    base = Path(spec).expanduser().resolve()
    base = base if base.is_dir() else base.parent
    clips = []
    for item in list_audio_items(source):
        extra = json.loads(item.metadata) if item.metadata else {}
        where = f"{source}: clip {item.id!r}"
        prompt_id = extra.get("prompt_id")
        clips.append(Clip(item.id, item.path, item.text, _optional_str(extra, "lyrics", where),
                          _resolve(base, _optional_str(extra, "ref_audio", where)),
                          None if prompt_id is None or prompt_id == "" else str(prompt_id)))
    return clips


def read_prompts(path: str | Path) -> list[Prompt]:
    """Rows ``{id, text?, lyrics?, ref_audio?}`` (``ref_audio`` relative to the file); a row
    without ``id`` uses the stem of its ``path``/``file`` field."""
    from musicjudge.io import read_jsonl

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: prompts file not found; pass a JSONL file with one {{id, text, lyrics, ref_audio}} per line")
    prompts, seen = [], set()
    for i, row in enumerate(read_jsonl(path, strict=True), 1):
        where = f"{path}:{i}"
        pid = row.get("id")
        if pid is None or pid == "":
            named = _optional_str(row, "path", where) or _optional_str(row, "file", where)
            if named is None:
                raise ManifestError(f"{where}: no 'id' field; give each prompt the id (or file name) of its clips")
            pid = Path(named).stem
        pid = str(pid)
        if pid in seen:
            raise ManifestError(f"{where}: duplicate prompt id {pid!r}; give every prompt its own id")
        seen.add(pid)
        prompts.append(Prompt(pid, _optional_str(row, "text", where), _optional_str(row, "lyrics", where),
                              _resolve(path.parent, _optional_str(row, "ref_audio", where))))
    if not prompts:
        raise ManifestError(f"{path}: no prompts; add one JSON object per line")
    return prompts


def match_prompt(clip: Clip, prompts: dict[str, Prompt]) -> Prompt | None:
    """The prompt of ``clip``: its manifest's ``prompt_id`` if it has one, else by id, else by the
    stem of its id or of its file name."""
    if clip.prompt_id is not None:
        return prompts.get(clip.prompt_id)
    for key in (clip.id, Path(clip.id).name, Path(clip.path).stem):
        if key in prompts:
            return prompts[key]
    return None


def parse_system_args(values: list[str]) -> dict[str, str]:
    """``NAME=FOLDER_OR_MANIFEST`` (or a bare path, named after its folder/file stem) -> {name: path}."""
    systems: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).stem or Path(value).name, value
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise ConfigError(f"system {value!r}: write NAME=FOLDER_OR_MANIFEST, e.g. base=clips/base")
        if name in systems or name == "reference":
            raise ConfigError(f"system name {name!r} is used twice (or is the reserved 'reference'); give each system its own NAME=")
        systems[name] = path
    if not systems:
        raise ConfigError("no systems to evaluate; pass NAME=FOLDER_OR_MANIFEST at least once (or --demo)")
    return systems
