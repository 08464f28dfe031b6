"""Resolve a model spec to a :class:`~musicjudge.lm.base.MusicLM`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicjudge.errors import ConfigError, ModelLoadError


def load_music_lm(spec: str = "builtin", device: str | None = None, dtype: Any = None):
    """``spec``: ``"builtin"`` (the shipped LM), a MusicGen or MusicGen-Melody hub id
    (``facebook/musicgen-small``, ``facebook/musicgen-melody``) or local checkpoint directory
    (the adapter follows the checkpoint's ``model_type``), or ``"module:Class"`` (a class/factory called as
    ``obj.from_pretrained(device=, dtype=)`` when it has that, else ``obj(device=, dtype=)``)."""
    spec = (spec or "builtin").strip()
    if spec == "builtin":
        try:
            from musicjudge.lm import builtin
        except ImportError as e:
            raise ModelLoadError(
                f"builtin: the built-in music LM is not available in this install ({e}); "
                "pass a MusicGen checkpoint with --model PATH_OR_HUB_ID"
            ) from None
        loader = getattr(builtin, "load_builtin_lm", None) or getattr(builtin, "BuiltinLM", None)
        if loader is None:
            raise ModelLoadError("builtin: musicjudge.lm.builtin defines no load_builtin_lm/BuiltinLM; "
                                 "pass a MusicGen checkpoint with --model")
        return _construct(loader, device, dtype, spec)
    if ":" in spec and not Path(spec).exists() and not spec.startswith(("http://", "https://")):
        from musicjudge.plugins import load_object

        return _construct(load_object(spec), device, dtype, spec)
    from musicjudge.lm.musicgen import MusicGenLM

    return MusicGenLM.from_pretrained(spec, device=device, dtype=dtype)


def _construct(obj: Any, device: str | None, dtype: Any, spec: str):
    try:
        if hasattr(obj, "from_pretrained"):
            return obj.from_pretrained(device=device, dtype=dtype)
        if callable(obj):
            return obj(device=device, dtype=dtype)
    except TypeError as e:
        raise ConfigError(f"{spec}: cannot construct the model ({e}); it must accept device= and dtype=") from None
    raise ConfigError(f"{spec}: not a class or factory; point to a MusicLM class or function")
