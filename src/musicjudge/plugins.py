"""Resolve user plugins given as ``module:Attr`` strings or entry-point names."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from musicjudge.errors import ConfigError


def load_object(spec: str) -> Any:
    """Import ``package.module:Attr`` (``Attr`` may be dotted). Raises ConfigError with a hint."""
    if ":" not in spec:
        raise ConfigError(f"{spec!r}: expected 'module:Attr' (e.g. mypkg.models:MyModel)")
    mod_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"{spec!r}: cannot import module {mod_name!r} ({e}); is it on PYTHONPATH?") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{spec!r}: module {mod_name!r} has no attribute {attr!r}") from None
    return obj


def entry_point_names(group: str) -> dict[str, Any]:
    """Installed entry points of ``group`` by name."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load_entry_point(group: str, name: str) -> tuple[Any, str] | None:
    """``(object, "module:attr")`` of the installed entry point ``name`` of ``group``, or None
    when there is none; a plugin that fails to import is a ModelLoadError naming it."""
    from musicjudge.errors import ModelLoadError

    ep = entry_point_names(group).get(name)
    if ep is None:
        return None
    try:
        return ep.load(), ep.value
    except Exception as e:  # noqa: BLE001 - a broken third-party plugin
        raise ModelLoadError(f"{name}: entry point {ep.value!r} failed to load ({type(e).__name__}: {e})") from None
