"""The one resolver of music-LM specs (``--model`` of ``score``, ``probe run/profile``,
``--lm`` of ``eval`` and ``bench run -m loss-profile:LM``, ``musicjudge.load_music_lm``).

Registered names (``musicjudge bench list`` prints them), then, in this order: an entry point
of the group ``musicjudge.music_lms``, ``module:Class`` (a class or factory; called as
``obj.from_pretrained(device=, dtype=)`` when it has that, else ``obj(device=, dtype=)``), and
last a MusicGen / MusicGen-Melody hub id or local checkpoint folder (the adapter follows the
checkpoint's ``model_type``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.specs import SpecRegistry

ENTRY_POINT_GROUP = "musicjudge.music_lms"
MUSIC_LMS = SpecRegistry("music LM")


@MUSIC_LMS.register("builtin", usage="builtin",
                    summary="the shipped music LM (trained by musicjudge on rendered Bach/folk/Palestrina; offline)")
def _builtin(arg: str | None, *, spec: str, device: str | None = None, dtype: Any = None):
    try:
        from musicjudge.lm.builtin import load_builtin_lm
    except ImportError as e:
        raise ModelLoadError(f"builtin: the built-in music LM is not available in this install ({e}); "
                             "pass a MusicGen checkpoint with --model PATH_OR_HUB_ID") from None
    return _construct(load_builtin_lm, device, dtype, spec)


@MUSIC_LMS.register("musicgen", usage="musicgen=HUB_ID_OR_FOLDER",
                    summary="MusicGen or MusicGen-Melody through transformers (e.g. musicgen=facebook/musicgen-small); "
                            "a bare hub id or checkpoint folder means the same")
def _musicgen(arg: str | None, *, spec: str, device: str | None = None, dtype: Any = None):
    if not arg:
        raise ConfigError(f"{spec}: name the checkpoint, e.g. musicgen=facebook/musicgen-small or musicgen=/models/musicgen")
    from musicjudge.lm.musicgen import MusicGenLM

    return MusicGenLM.from_pretrained(arg, device=device, dtype=dtype)


def load_music_lm(spec: str = "builtin", device: str | None = None, dtype: Any = None):
    """The music LM (a :class:`~musicjudge.lm.base.MusicLM`) that ``spec`` names; see the module docstring."""
    spec = str(spec or "builtin").strip()
    hit = MUSIC_LMS.match(spec)
    if hit is not None and not Path(spec).exists():  # a folder called "builtin" is a folder
        entry, arg = hit
        return entry.factory(arg, spec=spec, device=device, dtype=dtype)
    from musicjudge.plugins import load_entry_point

    plugin = load_entry_point(ENTRY_POINT_GROUP, spec)
    if plugin is not None:
        return _construct(plugin[0], device, dtype, spec)
    if ":" in spec and not Path(spec).exists() and not spec.startswith(("http://", "https://")):
        from musicjudge.plugins import load_object

        return _construct(load_object(spec), device, dtype, spec)
    from musicjudge.lm.musicgen import MusicGenLM

    return MusicGenLM.from_pretrained(spec, device=device, dtype=dtype)


def available_music_lms() -> list[dict[str, str]]:
    """Registered names plus installed entry points, as rows (``bench list``)."""
    from musicjudge.plugins import entry_point_names

    rows = [e.row() for e in MUSIC_LMS.entries()]
    rows += [{"kind": "music LM", "name": name, "usage": name, "summary": f"entry point {ep.value}", "aliases": ""}
             for name, ep in sorted(entry_point_names(ENTRY_POINT_GROUP).items())]
    rows.append({"kind": "music LM", "name": "HUB_ID | FOLDER | module:Class", "usage": "HUB_ID | FOLDER | module:Class",
                 "summary": "a MusicGen/MusicGen-Melody checkpoint (facebook/musicgen-small), or a MusicLM class/factory",
                 "aliases": ""})
    return rows


def _construct(obj: Any, device: str | None, dtype: Any, spec: str):
    try:
        if hasattr(obj, "from_pretrained"):
            return obj.from_pretrained(device=device, dtype=dtype)
        if callable(obj):
            return obj(device=device, dtype=dtype)
    except TypeError as e:
        raise ConfigError(f"{spec}: cannot construct the model ({e}); it must accept device= and dtype=") from None
    raise ConfigError(f"{spec}: not a class or factory; point to a MusicLM class or function")
