import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def _tone(freq: float, noise: float, seed: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    wave = 0.4 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
    return (wave / max(1.0, np.abs(wave).max() / 0.9)).astype(np.float32)


def write_study(root: Path, markers: list[str], seed: int = 0) -> Path:
    """Pairs of real WAV clips: for each pair a clean tone at the pitch the text asks for
    (better on both dimensions) and a noisy tone at another pitch. The better clip lands on
    side A or B at random; the manifest carries the true labels."""
    from musicjudge.reward.data import Instruction, PreferencePair, write_pairs

    rng = random.Random(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, marker in enumerate(markers):
        target = rng.choice([220, 330, 440, 550])
        good, bad = audio / f"p{i:03d}_good.wav", audio / f"p{i:03d}_bad.wav"
        sf.write(good, _tone(target, 0.01, i), SR)
        sf.write(bad, _tone(target * 1.5, 0.5, 1000 + i), SR)
        good_first = rng.random() < 0.5
        a, b = (good, bad) if good_first else (bad, good)
        label = "A" if good_first else "B"
        text = f"a clear tone at {target} Hz" + (f" [{marker}]" if marker != "honest" else "")
        pairs.append(PreferencePair(id=f"p{i:03d}", instruction=Instruction(text=text), audio_a=str(a), audio_b=str(b),
                                    preference={"musicality": label, "alignment": label}, system_a="sys1", system_b="sys2"))
    return write_pairs(root / "pairs.jsonl", pairs)


@pytest.fixture
def study(tmp_path):
    return write_study
