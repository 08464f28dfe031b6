"""The one grammar for everything a user names on the command line or in Python (music LMs,
reward models, judges), and the registry that lists what each name means.

A spec is one of

* ``NAME`` or ``NAME:ARG`` / ``NAME=ARG`` where ``NAME`` is registered for the kind
  (``random:3``, ``loss-profile:builtin``, ``cmi-rm=/models/cmi-rm``); ``ARG`` is everything
  after the first separator, so it may itself hold ``:`` (``clap-cosine:clap:/models/clap``);
* an existing local path (a checkpoint folder);
* an entry point name of the kind's group (third-party plugins);
* ``module:Attr`` (a class or factory on ``PYTHONPATH``);
* for music LMs, a Hugging Face hub id (``facebook/musicgen-small``).

Each kind keeps its registry next to its loader (``musicjudge.lm.loader``,
``musicjudge.reward.registry``, ``musicjudge.pseudolabel.factory``) so that no package imports
another's loaders; :func:`musicjudge.registry.describe` lists them all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from musicjudge.errors import ConfigError

_NAME_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?:(?P<sep>[:=])(?P<arg>.*))?$", re.S)


@dataclass(frozen=True)
class SpecEntry:
    """A registered name: how to write it, what it is, and the factory that builds it.

    ``factory(arg, **options)`` gets the text after ``NAME:`` / ``NAME=`` (``None`` without one)
    and the caller's options (device, model arguments...)."""

    kind: str
    name: str
    usage: str
    summary: str
    factory: Callable[..., Any]
    aliases: tuple[str, ...] = ()

    def row(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "usage": self.usage, "summary": self.summary,
                "aliases": ", ".join(self.aliases)}


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"random:3"`` -> ``("random", "3")``; ``"cmi-rm=/m"`` -> ``("cmi-rm", "/m")``;
    ``"builtin"`` -> ``("builtin", None)``. A spec that does not start with a name (a path such
    as ``/models/x`` or ``./x``) comes back as ``(spec, None)``."""
    text = str(spec).strip()
    m = _NAME_RE.match(text)
    if not m:
        return text, None
    return m.group("name"), m.group("arg") if m.group("sep") else None


class SpecRegistry:
    """Registered names of one kind (``lm``, ``reward`` or ``judge``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, SpecEntry] = {}
        self._names: dict[str, str] = {}  # name or alias -> name

    def register(self, name: str, *, usage: str, summary: str, aliases: tuple[str, ...] = ()):
        """Decorator: ``@REGISTRY.register("random", usage="random[:SEED]", summary=...)``."""

        def add(factory: Callable[..., Any]) -> Callable[..., Any]:
            for key in (name, *aliases):
                if key in self._names:
                    raise ValueError(f"{self.kind} spec name {key!r} registered twice")
                self._names[key] = name
            self._entries[name] = SpecEntry(self.kind, name, usage, summary, factory, tuple(aliases))
            return factory

        return add

    def match(self, spec: str) -> tuple[SpecEntry, str | None] | None:
        """The entry a spec names and its argument, or None when the spec is not a registered
        name (then it is a path, an entry point, ``module:Attr`` or a hub id)."""
        name, arg = split_spec(spec)
        key = self._names.get(name)
        if key is None:
            return None
        return self._entries[key], arg

    def entries(self) -> Iterator[SpecEntry]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)


def integer_arg(spec: str, arg: str | None, default: int, what: str) -> int:
    """``random:3`` -> 3 (``default`` without an argument); a non-integer is a ConfigError."""
    if arg in (None, ""):
        return default
    try:
        return int(arg)
    except ValueError:
        raise ConfigError(f"{spec!r}: {what}, e.g. {split_spec(spec)[0]}:{default}") from None
