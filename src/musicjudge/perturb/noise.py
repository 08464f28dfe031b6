"""Coloured Gaussian noise with true power-law spectra.

Power spectral density ∝ f**beta: white 0, pink -1, brown -2, blue +1, violet +2. The spectrum
is shaped in the frequency domain (amplitude ∝ f**(beta/2) on every rFFT bin), not by
first-order filters, so the slope holds across the whole band."""

from __future__ import annotations

import numpy as np

from musicjudge.errors import ConfigError

# exponent beta of the power spectrum S(f) ∝ f**beta
NOISE_COLOURS: dict[str, float] = {
    "white": 0.0,
    "pink": -1.0,
    "brown": -2.0,
    "blue": 1.0,
    "violet": 2.0,
}


def colour_exponent(colour: str) -> float:
    try:
        return NOISE_COLOURS[colour]
    except KeyError:
        raise ConfigError(f"colour={colour!r}: unknown noise colour; choose one of {', '.join(NOISE_COLOURS)}") from None


def coloured_noise(n_samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` of zero-mean noise with PSD ∝ f**beta, scaled to RMS exactly 1 (float32)."""
    beta = colour_exponent(colour)
    if n_samples <= 0:
        raise ConfigError(f"n_samples={n_samples}: noise length must be at least one sample")
    if n_samples == 1:
        return np.ones(1, dtype=np.float32) * (1.0 if rng.random() < 0.5 else -1.0)
    white = rng.standard_normal(n_samples)
    if beta == 0.0:
        shaped = white - white.mean()
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n_samples)  # cycles/sample; the slope does not depend on units
        gain = np.zeros_like(freqs)
        gain[1:] = freqs[1:] ** (beta / 2.0)  # DC dropped: a power law has no finite DC value
        shaped = np.fft.irfft(spectrum * gain, n=n_samples)
    rms = float(np.sqrt(np.mean(shaped**2)))
    if rms == 0.0:  # n_samples == 2 with an unlucky draw; any non-zero pattern will do
        shaped = np.array([1.0, -1.0] * (n_samples // 2) + [0.0] * (n_samples % 2))
        rms = float(np.sqrt(np.mean(shaped**2)))
    return (shaped / rms).astype(np.float32)
