"""Fixtures: a tiny dataset in the CMI-RewardBench unified layout (all four sources), written
with real wav files whose loudness encodes the truth (the preferred / better-rated clip is
louder), and a plugin module on sys.path with reward models for the plugin tests."""

import json
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def write_tone(path, amplitude, freq=220.0, seconds=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


@pytest.fixture
def cmi_root(tmp_path):
    """unified.jsonl + audio/: CMI-Pref (8 votes, 4 instruction types, one clip missing),
    MusicEval (6 MOS clips, 3 systems), PAM (5 clips, musicality + alignment), Music Arena (5 battles)."""
    root = tmp_path / "cmi"
    rows = []
    write_tone(root / "audio" / "ref.wav", 0.3, 330)
    kinds = [(False, False), (True, False), (False, True), (True, True)]
    for i in range(8):
        lyr, ref = kinds[i % 4]
        winner = "A" if i % 2 == 0 else "B"
        loud, quiet = 0.8, 0.1 + 0.02 * i
        a_amp, b_amp = (loud, quiet) if winner == "A" else (quiet, loud)
        write_tone(root / "audio" / f"pref{i}a.wav", a_amp)
        if i != 7:  # the last vote's clip B is missing on disk
            write_tone(root / "audio" / f"pref{i}b.wav", b_amp)
        rows.append({
            "audio-path": f"audio/pref{i}a.wav", "audio2": f"audio/pref{i}b.wav",
            "ref-audio-path": "audio/ref.wav" if ref else None, "prompt": f"a calm piano piece {i}",
            "lyrics": "la la la" if lyr else None, "source": "cmi-arena-annotation", "split": "test",
            "preference-musicality": winner.lower(), "preference-alignment": "both" if i == 5 else winner.lower(),
            "confidence_preference-musicality": [2, 3, 4, 5][i % 4], "confidence_preference-alignment": 3,
        })
    for i in range(6):
        mos = 1.0 + 0.7 * i
        write_tone(root / "audio" / f"me{i}.wav", 0.05 + 0.12 * i, 440)
        rows.append({"audio-path": f"audio/me{i}.wav", "prompt": "a pop song", "source": "MusicEval", "split": "test",
                     "musicality": mos, "system": f"sys{i % 3}"})
    for i in range(5):
        write_tone(root / "audio" / f"pam{i}.wav", 0.1 + 0.15 * i, 550)
        rows.append({"audio-path": f"audio/pam{i}.wav", "prompt": "jazz trio", "source": "PAM", "split": "test",
                     "musicality": 1 + i, "text-music alignment": 5 - i})
    for i, pref in enumerate(["a", "b", "model_a", "model_b", "neither"]):
        a_amp, b_amp = (0.7, 0.2) if pref in ("a", "model_a") else (0.2, 0.7)
        write_tone(root / "audio" / f"ma{i}a.wav", a_amp, 660)
        write_tone(root / "audio" / f"ma{i}b.wav", b_amp, 660)
        rows.append({"audio-path": f"audio/ma{i}a.wav", "audio2": f"audio/ma{i}b.wav", "prompt": "epic orchestral",
                     "source": "Music Arena", "split": "test", "preference": pref, "model_a": "gen-x", "model_b": "gen-y",
                     "timestamp": f"2025-0{1 + i // 3}-15T12:00:00"})
    (root / "unified.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


PLUGINS = '''
import numpy as np
import soundfile as sf


def _rms(path):
    x, _ = sf.read(path, dtype="float32")
    return float(np.sqrt(np.mean(x ** 2)))


class RmsReward:
    """musicjudge interface: louder = better on both dimensions (matches the fixtures' truth)."""

    calls = 0

    def __init__(self, sign=1.0):
        self.sign = float(sign)

    def score(self, items):
        type(self).calls += 1
        v = np.array([self.sign * _rms(it.audio) for it in items])
        return {"musicality": v, "alignment": v.copy()}


class RefInterfaceModel:
    """Reference-benchmark interface: sr + score_batch -> [N, 2] (col 0 alignment, col 1 musicality).
    Alignment is deliberately the negated loudness so a swapped column would show."""

    def __init__(self, checkpoint=None, device=None):
        self.checkpoint = checkpoint

    @property
    def sr(self):
        return 16000

    def score_batch(self, inputs, batch_size=8, max_dur=120.0, **kw):
        out = np.zeros((len(inputs), 2))
        for i, inp in enumerate(inputs):
            r = _rms(inp["audio"])
            out[i] = (-r, r)
        return out


class JointToneEncoder:
    """A joint audio/text 'encoder' for the cosine baseline: audio -> [rms, 1 - rms] direction,
    text 'good'/'quality' -> towards loud, anything else -> towards quiet."""

    def embed_audio(self, paths):
        r = np.array([_rms(p) for p in paths])
        return np.stack([r, 0.6 - r], axis=1)

    def embed_text(self, texts):
        return np.array([[1.0, 0.0] if "high quality" in t else [0.0, 1.0] for t in texts])


class Broken:
    def score(self, items):
        raise TypeError("bug in the plugin")


class Interrupting(RmsReward):
    """Dies (like Ctrl-C) on its second batch unless ``resume`` is set; counts clips scored."""

    batches = 0
    clips = 0
    resume = False

    def score(self, items):
        if Interrupting.batches >= 1 and not Interrupting.resume:
            raise KeyboardInterrupt
        Interrupting.batches += 1
        Interrupting.clips += len(items)
        return super().score(items)
'''


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "mj_bench_plugins.py").write_text(textwrap.dedent(PLUGINS))
    monkeypatch.syspath_prepend(str(d))
    sys.modules.pop("mj_bench_plugins", None)
    yield "mj_bench_plugins"
    sys.modules.pop("mj_bench_plugins", None)
