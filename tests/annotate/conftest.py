from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .asgi_server import serve  # noqa: F401  (tests import it from here)

SR = 16000


def _tone(freq: float, noise: float, seed: int, seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * np.minimum(1, 10 * t) + noise * rng.standard_normal(t.size)
    return np.clip(wave, -0.9, 0.9).astype(np.float32)


def make_study(root: Path, n_pairs: int = 4) -> Path:
    """A study folder: real WAV clips under root/audio, pairs.jsonl (relative paths), one pair
    with lyrics + reference audio, and one pair whose clip lies OUTSIDE the study root."""
    from musicjudge.io import atomic_write_text
    import json

    audio = root / "study" / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_pairs):
        sf.write(audio / f"{i}_a.wav", _tone(220 + 55 * i, 0.01, i), SR)
        sf.write(audio / f"{i}_b.wav", _tone(330 + 55 * i, 0.2, 100 + i), SR)
        row = {"id": f"pair{i}", "text": f"a gentle melody around {220 + 55 * i} Hz", "audio_a": f"audio/{i}_a.wav",
               "audio_b": f"audio/{i}_b.wav", "system_a": "clean", "system_b": "noisy"}
        if i == 0:
            sf.write(audio / "ref0.wav", _tone(220, 0.0, 7), SR)
            row.update(lyrics="la la la\nsing along", ref_audio="audio/ref0.wav")
        rows.append(row)
    outside = root / "outside.wav"
    sf.write(outside, _tone(440, 0.0, 9), SR)
    (root / "secret.txt").write_text("top secret")
    rows.append({"id": "escape", "text": "x", "audio_a": "../outside.wav", "audio_b": "audio/0_b.wav"})
    manifest = root / "study" / "pairs.jsonl"
    atomic_write_text(manifest, "".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture
def study_manifest(tmp_path):
    return make_study(tmp_path)
