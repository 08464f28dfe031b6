"""Error types. Every user-facing mistake raises a subclass of :class:`MusicjudgeError` whose
message is one line that names the offending file or value and says how to fix it; the CLI
prints it as ``error: <message>`` without a traceback."""

from __future__ import annotations


class MusicjudgeError(Exception):
    """Base class for errors caused by user input (files, flags, configs)."""


class AudioError(MusicjudgeError):
    """Unreadable, empty, silent, non-finite or too-short audio."""


class ManifestError(MusicjudgeError):
    """Malformed manifest / data file (JSONL, CSV, Parquet)."""


class ConfigError(MusicjudgeError):
    """Invalid experiment or model configuration."""


class ModelLoadError(MusicjudgeError):
    """A model or checkpoint cannot be loaded (missing, mismatched tensors, bad spec)."""
