"""Small file helpers shared by every package: crash-safe JSONL appends, atomic writes,
content hashes and the cache directory."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from musicjudge.errors import ManifestError


def cache_dir(*parts: str) -> Path:
    """Root of musicjudge's cache (``$MUSICJUDGE_CACHE`` or the platform user cache dir)."""
    root = os.environ.get("MUSICJUDGE_CACHE")
    if root:
        base = Path(root)
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("musicjudge"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_jsonl(path: str | os.PathLike, *, strict: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line raises ManifestError naming file and line.

    By default a truncated *last* line (a crash mid-write) is ignored, so musicjudge's own
    append-only logs stay readable after an interruption. ``strict=True`` is for files a person
    wrote (manifests): there a broken last line is an error like any other."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: file not found; check the path")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ManifestError(
            f"{path}: not UTF-8 text (byte {e.start}); expected a JSONL file, one JSON object per line"
        ) from None
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) and not strict:  # torn final write of an interrupted run
                break
            raise ManifestError(f"{path}:{i}: invalid JSON ({e.msg}); fix or remove that line") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{i}: expected a JSON object per line, got {type(row).__name__}")
        rows.append(row)
    return rows


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    yield from read_jsonl(path)


def append_jsonl(path: str | os.PathLike, rows: dict[str, Any] | Iterable[dict[str, Any]]) -> None:
    """Append rows and fsync at once: a crash after this call loses nothing it wrote."""
    if isinstance(rows, dict):
        rows = [rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file + rename so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give results the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=json_default) + "\n")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    """Hash of a JSON-serialisable object, independent of dict key order."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=json_default).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def json_default(o: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars/arrays, paths and objects with
    ``to_dict()`` as JSON values (what every JSON/JSONL writer of musicjudge uses)."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
