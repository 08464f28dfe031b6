"""Reward-model plugins for the benchmark.

A benchmarked model is any object with ``score(items: list[ScoreItem]) -> dict[str, ndarray]``
(keys "musicality" and/or "alignment", higher is better; a dimension it does not provide is
simply not evaluated). ``resolve_model(spec)`` accepts:

* ``random`` / ``random:SEED`` - seeded random scores (chance baseline; a fixed score per item,
  independent of batch order);
* ``cosine`` / ``cosine:ENCODER`` - a CLAP-style cosine baseline over any encoder with
  ``embed_audio(paths)`` and ``embed_text(texts)`` in one shared space (alignment = cosine of the
  clip to the text and to the reference clip; musicality = cosine to a "good music" prompt minus
  cosine to a "bad music" prompt). ENCODER is handed to the reward package's encoder loader;
* ``loss-profile`` / ``loss-profile:LM`` - the probe pillar's label-free profile score under a
  music LM (``builtin`` by default) as a musicality-only baseline;
* an entry-point name in the group ``musicjudge.reward_models``;
* anything ``musicjudge.reward.load_reward_model`` takes: ``builtin``, a checkpoint folder, or
  ``module:Class`` (classes written for the reference CMI-RewardBench interface, with ``sr`` and
  ``score_batch(inputs, batch_size, max_dur) -> [N, 2]``, are wrapped; see ReferenceInterfaceModel).

``model.fingerprint`` (if defined) names the weights; it keys the score cache so new weights
never reuse old scores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.io import stable_hash

ENTRY_POINT_GROUP = "musicjudge.reward_models"
BASELINES = ("random", "cosine", "loss-profile")


def item_key(item: Any) -> str:
    """Cache key of a ScoreItem: the audio and reference *contents* (size + mtime + path as a
    cheap stand-in for a hash) and the instruction text."""

    def ident(path: str | None) -> Any:
        if not path:
            return None
        p = Path(path)
        try:
            st = p.stat()
            return [str(p.resolve()), st.st_size, st.st_mtime_ns]
        except OSError:
            return [str(path)]

    ins = item.instruction
    return stable_hash({"audio": ident(item.audio), "text": ins.text, "lyrics": ins.lyrics, "ref": ident(ins.ref_audio)})


# ------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------


class RandomReward:
    """Chance baseline: uniform scores drawn from a hash of (seed, item), so the same item always
    gets the same score whatever the batch."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.fingerprint = f"random-{self.seed}"

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        out = {}
        for dim in ("musicality", "alignment"):
            vals = []
            for it in items:
                h = hashlib.sha256(f"{self.seed}|{dim}|{item_key(it)}".encode()).digest()
                vals.append(int.from_bytes(h[:8], "little") / 2**64)
            out[dim] = np.asarray(vals, dtype=np.float64)
        return out


GOOD_MUSIC_PROMPT = "a high quality, well played, pleasant piece of music"
BAD_MUSIC_PROMPT = "a low quality, noisy, out of tune, badly played recording"


class CosineBaseline:
    """CLAP-style cosine baseline over an encoder with ``embed_audio(paths) -> [N, D]`` and
    ``embed_text(texts) -> [N, D]`` in a shared embedding space."""

    def __init__(self, encoder: Any, name: str = "cosine") -> None:
        for method in ("embed_audio", "embed_text"):
            if not hasattr(encoder, method):
                raise ModelLoadError(f"{name}: encoder {type(encoder).__name__} has no {method}(); the cosine baseline needs a joint audio/text encoder")
        self.encoder = encoder
        self.fingerprint = f"{name}-{getattr(encoder, 'fingerprint', type(encoder).__name__)}"

    @staticmethod
    def _unit(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        n = len(items)
        audio = self._unit(self.encoder.embed_audio([it.audio for it in items]))
        if audio.shape[0] != n:
            raise ModelLoadError(f"{type(self.encoder).__name__}.embed_audio returned {audio.shape[0]} rows for {n} clips")
        prompts = self._unit(self.encoder.embed_text([GOOD_MUSIC_PROMPT, BAD_MUSIC_PROMPT]))
        if prompts.shape[1] != audio.shape[1]:
            raise ModelLoadError(f"cosine: text ({prompts.shape[1]}-d) and audio ({audio.shape[1]}-d) embeddings differ in size; use a joint encoder such as CLAP")
        musicality = audio @ prompts[0] - audio @ prompts[1]
        sims = np.zeros(n)
        counts = np.zeros(n)
        text_idx = [i for i, it in enumerate(items) if it.instruction.text]
        if text_idx:
            t = self._unit(self.encoder.embed_text([items[i].instruction.text for i in text_idx]))
            sims[text_idx] += np.sum(audio[text_idx] * t, axis=1)
            counts[text_idx] += 1
        ref_idx = [i for i, it in enumerate(items) if it.instruction.ref_audio]
        if ref_idx:
            r = self._unit(self.encoder.embed_audio([items[i].instruction.ref_audio for i in ref_idx]))
            sims[ref_idx] += np.sum(audio[ref_idx] * r, axis=1)
            counts[ref_idx] += 1
        alignment = np.where(counts > 0, sims / np.maximum(counts, 1), np.nan)
        return {"musicality": musicality, "alignment": alignment}


class LossProfileReward:
    """Label-free musicality baseline: the probe pillar's profile score (peak sensitivity of a
    music LM to short noise injections, normalised by the clip's own loss variability).
    Higher = the LM reacts more sharply to a break in the music, read as "more structured"."""

    def __init__(self, lm_spec: str = "builtin", **profile_kwargs: Any) -> None:
        from musicjudge.lm import load_music_lm

        self.lm = load_music_lm(lm_spec)
        self.profile_kwargs = profile_kwargs
        self.fingerprint = f"loss-profile-{lm_spec}-{stable_hash(profile_kwargs)}"
        self.failures: dict[str, str] = {}
        # The score ignores the instruction: one clip under several instructions is scored once.
        self._by_path: dict[str, float] = {}

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        from musicjudge.probe.profile import profile_scores

        todo = list(dict.fromkeys(it.audio for it in items if it.audio not in self._by_path))
        if todo:
            frame = profile_scores(self.lm, todo, progress=False, **self.profile_kwargs)
            errors = frame["error"] if "error" in frame else [None] * len(todo)
            for p, v, err in zip(todo, frame["profile_score"].to_numpy(dtype=np.float64), errors):
                self._by_path[p] = float(v)
                if isinstance(err, str) and err:
                    self.failures[p] = err
        vals = np.array([self._by_path[it.audio] for it in items], dtype=np.float64)
        return {"musicality": vals, "alignment": np.full(len(items), np.nan)}


class ReferenceInterfaceModel:
    """Wrap a class written for the reference benchmark's interface: ``sr`` and
    ``score_batch(inputs, batch_size, max_dur) -> [N, 2]`` (column 0 alignment, column 1
    musicality); each input is ``{"audio", "text", "lyrics", "ref_audio"}``."""

    def __init__(self, model: Any, batch_size: int = 8, max_dur: float = 120.0) -> None:
        if not hasattr(model, "score_batch"):
            raise ModelLoadError(f"{type(model).__name__}: no score_batch(inputs, batch_size, max_dur); not a reference-interface model")
        self.model = model
        self.batch_size = batch_size
        self.max_dur = max_dur
        self.fingerprint = getattr(model, "fingerprint", None)

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        inputs = [{"audio": it.audio, "text": it.instruction.text, "lyrics": it.instruction.lyrics,
                   "ref_audio": it.instruction.ref_audio} for it in items]
        out = np.asarray(self.model.score_batch(inputs, batch_size=self.batch_size, max_dur=self.max_dur), dtype=np.float64)
        if out.ndim != 2 or out.shape != (len(items), 2):
            raise ModelLoadError(f"{type(self.model).__name__}.score_batch returned shape {out.shape}; expected [{len(items)}, 2]")
        return {"alignment": out[:, 0], "musicality": out[:, 1]}


# ------------------------------------------------------------------------------------------
# Resolution
# ------------------------------------------------------------------------------------------


@dataclass
class BenchModel:
    """A resolved model: its spec, display name, cache fingerprint and the scorer."""

    spec: str
    name: str
    fingerprint: str
    scorer: Any

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        raw = self.scorer.score(list(items))
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{self.spec}: score() returned {type(raw).__name__}; return a dict of arrays per dimension")
        out = {}
        for dim in ("musicality", "alignment"):
            if dim in raw and raw[dim] is not None:
                arr = np.asarray(raw[dim], dtype=np.float64).reshape(-1)
                if arr.shape[0] != len(items):
                    raise ModelLoadError(f"{self.spec}: score() returned {arr.shape[0]} {dim} values for {len(items)} items")
                out[dim] = arr
        if not out:
            raise ModelLoadError(f"{self.spec}: score() returned neither 'musicality' nor 'alignment'")
        return out

    @property
    def failures(self) -> dict[str, str]:
        return getattr(self.scorer, "failures", {}) or {}


def _dir_fingerprint(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return stable_hash([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])


def _construct(obj: Any, spec: str, kwargs: dict[str, Any]) -> Any:
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "score") and not hasattr(obj, "score_batch")):
        try:
            return obj(**kwargs)
        except TypeError as e:
            raise ModelLoadError(f"{spec}: cannot construct the model ({e}); pass its arguments with --model-arg key=value") from None
    return obj


def _wrap(model: Any, spec: str) -> Any:
    if hasattr(model, "score"):
        return model
    if hasattr(model, "score_batch"):
        return ReferenceInterfaceModel(model)
    raise ModelLoadError(f"{spec}: object has neither score(items) nor score_batch(inputs, batch_size, max_dur); see docs/bench.md")


def resolve_model(spec: str, model_args: dict[str, Any] | None = None) -> BenchModel:
    """Turn a ``--model`` value into a BenchModel (see the module docstring for the forms)."""
    kwargs = dict(model_args or {})
    base, _, arg = spec.partition(":")
    if base == "random" and ":" not in arg:
        try:
            seed = int(arg) if arg else int(kwargs.get("seed", 0))
        except ValueError:
            raise ConfigError(f"{spec!r}: the random baseline takes an integer seed, e.g. random:0") from None
        m = RandomReward(seed)
        return BenchModel(spec, f"random:{seed}", m.fingerprint, m)
    if base == "cosine" and not Path(spec).exists():
        return _cosine_model(spec, arg, kwargs)
    if base == "loss-profile":
        m = LossProfileReward(arg or "builtin", **kwargs)
        return BenchModel(spec, f"loss-profile:{arg or 'builtin'}", stable_hash(m.fingerprint), m)

    from musicjudge.plugins import entry_point_names

    eps = entry_point_names(ENTRY_POINT_GROUP)
    if spec in eps:
        try:
            obj = eps[spec].load()
        except Exception as e:  # a broken third-party plugin
            raise ModelLoadError(f"{spec}: entry point {eps[spec].value!r} failed to load ({type(e).__name__}: {e})") from None
        m = _wrap(_construct(obj, spec, kwargs), spec)
        fp = getattr(m, "fingerprint", None) or stable_hash([spec, eps[spec].value, kwargs])
        return BenchModel(spec, spec, str(fp), m)

    path = Path(spec).expanduser()
    if ":" in spec and not path.exists():
        from musicjudge.plugins import load_object

        obj = load_object(spec)
        m = _wrap(_construct(obj, spec, kwargs), spec)
        fp = getattr(m, "fingerprint", None) or stable_hash([spec, kwargs])
        return BenchModel(spec, spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1], str(fp), m)

    from musicjudge.reward import load_reward_model

    m = load_reward_model(spec, **kwargs)
    if spec in ("builtin", "builtin_reward"):
        from musicjudge.reward.base import builtin_checkpoint_dir

        fp = _dir_fingerprint(builtin_checkpoint_dir())
        name = "builtin"
    elif path.exists():
        fp = _dir_fingerprint(path)
        name = path.name
    else:
        fp = stable_hash(spec)
        name = spec
    return BenchModel(spec, name, stable_hash([spec, fp, kwargs]), m)


def _cosine_model(spec: str, arg: str, kwargs: dict[str, Any]) -> BenchModel:
    """``cosine`` / ``cosine:builtin``: the reward package's cosine baseline over the built-in
    encoder (MiniLM text mapped into the audio-feature space by ridge regression fitted on the
    built-in *train* pairs, or on ``fit_pairs=PATH``); ``cosine:clap:PATH``: zero-shot CLAP
    cosine; ``cosine:module:Attr``: zero-shot cosine over any joint encoder factory."""
    if arg in ("", "builtin"):
        from musicjudge.reward.baselines import CosineBaseline as FittedCosine
        from musicjudge.reward.data import read_pairs
        from musicjudge.reward.encoders import BuiltinEncoder

        fit = kwargs.get("fit_pairs")
        if fit is None:
            from musicjudge.reward.builtin_pairs import build_builtin_pairs

            fit = build_builtin_pairs(split="train", n=int(kwargs.get("fit_n", 256)), seed=0,
                                      corpus_limit=kwargs.get("corpus_limit"))
        m = FittedCosine(BuiltinEncoder()).fit(read_pairs(fit, require_label=True))
        fp = stable_hash(["cosine-builtin", _dir_fingerprint(Path(fit)), str(m.encoder.audio_key())])
        return BenchModel(spec, "cosine:builtin", fp, m)
    if arg.startswith("clap:"):
        from musicjudge.reward.encoders import ClapEncoder

        encoder = ClapEncoder(arg[len("clap:"):])
        return BenchModel(spec, "cosine:clap", stable_hash([spec, encoder.audio_key()]), CosineBaseline(encoder, "cosine:clap"))
    from musicjudge.plugins import load_object

    factory = load_object(arg)
    encoder = factory(**kwargs) if callable(factory) else factory
    m = CosineBaseline(encoder, f"cosine:{arg}")
    return BenchModel(spec, f"cosine:{arg.rsplit(':', 1)[-1]}", stable_hash([spec, m.fingerprint, kwargs]), m)


def available_models() -> list[str]:
    from musicjudge.plugins import entry_point_names

    return ["builtin", *BASELINES, *sorted(entry_point_names(ENTRY_POINT_GROUP))]
