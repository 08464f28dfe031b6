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
