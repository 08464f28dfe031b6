"""Device names given by users (``--device``): checked once, up front, with one-line errors."""

from __future__ import annotations

from musicjudge.errors import ConfigError


def check_device(device: str | None, what: str = "--device") -> str | None:
    """``device`` if torch can place tensors there (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...),
    else a one-line :class:`ConfigError` (unknown name, or CUDA/MPS not available here).
    ``None`` / ``""`` (= pick the best available) pass through without importing torch."""
    if not device:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what} {device!r}: unknown device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"{what} {device!r}: no CUDA GPU is available on this machine; use --device cpu "
                              "(or leave --device out to pick the best available)")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{what} {device!r}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1}); "
                              "pick one of them")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{what} {device!r}: MPS is not available on this machine; use --device cpu")
    return device
