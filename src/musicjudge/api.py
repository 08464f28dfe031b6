"""musicjudge's Python API: one function per task, each a thin layer over the library function
the command of the same task runs (docs/api.md shows each in a few lines).

==========================  ===================================================  ==========================
``musicjudge.``             what                                                 the command / library
==========================  ===================================================  ==========================
``load_music_lm(spec)``     a music LM (``builtin``, MusicGen id/folder, ...)     :mod:`musicjudge.lm.loader`
``score_files(lm, src)``    per-file mean NLL -> DataFrame                        ``musicjudge score``
``profile_scores(lm, src)`` per-file profile score -> DataFrame                   ``musicjudge probe profile``
``probe.run(config)``       a probe sweep -> {results, clips[, errors]}           ``musicjudge probe run``
``load_reward_model(spec)`` a reward model whose ``score(items)`` -> DataFrame    :mod:`musicjudge.reward.registry`
``bench.run(model, bench)`` a reward benchmark -> results dict + tables           ``musicjudge bench run``
``eval(systems)``           judge generators side by side -> EvalResult           ``musicjudge eval``
==========================  ===================================================  ==========================

A source of clips (``src``) is one audio file, a folder of audio, a JSONL/CSV/Parquet manifest, a
Hugging Face dataset folder or a list of paths. Functions that write run folders
(``probe.run``, ``bench.run``, ``eval``) take ``out=``; without it ``probe.run`` and ``bench.run``
work in a temporary folder and return everything in memory, and ``eval`` writes to a new
temporary folder that it keeps (the HTML report is there)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from musicjudge.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from musicjudge.evaluation.types import EvalResult

__all__ = ["RewardScorer", "bench_run", "load_music_lm", "load_reward_model", "probe_run", "profile_scores",
           "run_eval", "score_files"]

#: columns of :meth:`RewardScorer.score`
REWARD_COLUMNS = ["id", "audio", "text", "lyrics", "ref_audio", "musicality", "alignment", "error"]


def load_music_lm(spec: str = "builtin", device: str | None = None, dtype: Any = None):
    """The music LM a spec names (:func:`musicjudge.lm.loader.load_music_lm`)."""
    from musicjudge.lm.loader import load_music_lm as load

    return load(spec, device=device, dtype=dtype)


def _music_lm(lm: Any, device: str | None = None, dtype: Any = None):
    return load_music_lm(str(lm), device=device, dtype=dtype) if isinstance(lm, (str, os.PathLike)) else lm


def score_files(lm: Any, source: Any, **options: Any) -> "pd.DataFrame":
    """Mean per-token NLL of each clip under ``lm`` (a model or a spec): one row per clip
    (:func:`musicjudge.lm.files.score_files`; ``out=`` also writes the per-frame curves)."""
    from musicjudge.lm.files import score_files as score

    return score(lm, source, **options)


def profile_scores(lm: Any, source: Any, *, device: str | None = None, progress: bool = False,
                   **options: Any) -> "pd.DataFrame":
    """The label-free profile score of each clip under ``lm`` (a model or a spec): one row per
    clip, ``id`` first (:func:`musicjudge.probe.scoring.profile_scores`, whose keyword
    arguments -- ``onsets_s``, ``lengths_frames``, ``crop_duration``... -- pass through)."""
    from musicjudge.lm.files import list_inputs
    from musicjudge.probe.scoring import profile_scores as profile

    items = list_inputs(source)
    table = profile(_music_lm(lm, device), [it.path for it in items], progress=progress, **options)
    table.insert(0, "id", [it.id for it in items])
    return table


# ------------------------------------------------------------------------------------------
# probe
# ------------------------------------------------------------------------------------------
def _label(model: Any, taken: set[str]) -> str:
    label = re.sub(r"[^\w.-]+", "_", Path(str(getattr(model, "name", "") or "lm").rstrip("/")).name) or "lm"
    base, i = label, 1
    while label in taken:
        i += 1
        label = f"{base}{i}"
    return label


def probe_run(config: Any = None, out: "str | os.PathLike | None" = None, *, model: Any = None, audio: Any = None,
              progress: bool = False, **fields: Any) -> "dict[str, pd.DataFrame]":
    """Run a probe sweep (:func:`musicjudge.probe.runner.run_probe`) and return its tables:
    ``{"results": one row per clip x perturbation, "clips": one row per clip[, "errors"]}``.

    ``config``: a :class:`~musicjudge.probe.config.ProbeConfig`, a dict of its fields or a YAML
    file; ``fields`` (any ProbeConfig field: ``crop_duration_s``, ``noise={...}``...) override it.
    ``model``: spec(s) or loaded model(s) (default ``builtin``); ``audio``: data set(s), each a
    folder / manifest / dataset, ``name=path`` allowed. ``out``: keep the run folder there (and
    resume it); without it the run happens in a temporary folder that is removed."""
    from musicjudge.probe.config import ProbeConfig
    from musicjudge.probe.rundir import load_results
    from musicjudge.probe.runner import run_probe

    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, ProbeConfig):
        data = config.to_dict()
    elif isinstance(config, Mapping):
        data = dict(config)
    elif isinstance(config, (str, os.PathLike)):
        data = ProbeConfig.from_yaml(config).to_dict()
    else:
        raise ConfigError(f"config {config!r}: expected a ProbeConfig, a dict or a YAML file")
    data.update(fields)
    lms: dict[str, Any] = {}
    if model is not None:
        specs = []
        for m in (model if isinstance(model, (list, tuple)) else [model]):
            if isinstance(m, (str, os.PathLike)):
                specs.append(str(m))
            else:  # a loaded model: run it under a label
                label = _label(m, set(lms))
                lms[label] = m
                specs.append(label)
        data["models"] = specs
    if audio is not None:
        data["datasets"] = [str(a) if isinstance(a, os.PathLike) else a
                            for a in (audio if isinstance(audio, (list, tuple)) else [audio])]
    cfg = ProbeConfig.from_dict(data, source="probe.run")
    if out is not None:
        run_probe(cfg, out, lms=lms, progress=progress)
        return load_results(out)
    with tempfile.TemporaryDirectory(prefix="musicjudge-probe-") as tmp:
        run_probe(cfg, tmp, lms=lms, progress=progress)
        return load_results(tmp)  # read into memory before the folder goes


# ------------------------------------------------------------------------------------------
# reward models
# ------------------------------------------------------------------------------------------
class RewardScorer:
    """A reward model as :func:`load_reward_model` returns it: :meth:`score` takes clips in any
    form and returns a DataFrame; ``reward_model`` is the model itself, with the reward interface
    (``score(list[ScoreItem]) -> {"musicality": array, "alignment": array}``) that
    :func:`musicjudge.bench.runner.run_benchmark`, top-k selection and the pseudo-labeller use
    (``musicjudge.bench.run`` and ``run_benchmark`` accept this object too)."""

    def __init__(self, spec: str, name: str, fingerprint: str, reward_model: Any):
        self.spec, self.name, self.fingerprint, self.reward_model = spec, name, fingerprint, reward_model

    def __repr__(self) -> str:
        return f"RewardScorer({self.spec!r}, name={self.name!r})"

    @property
    def failures(self) -> dict[str, str]:
        """Audio path -> why the model could not score it (from the last calls)."""
        return dict(getattr(self.reward_model, "failures", {}) or {})

    @staticmethod
    def items(clips: Any) -> list[tuple[str, Any]]:
        """``(id, ScoreItem)`` of each clip: a folder / manifest / dataset (``text``, ``lyrics``,
        ``ref_audio`` from its rows), one audio path, or a list of paths, ScoreItems and dicts
        ``{audio (or path), text (or prompt), lyrics, ref_audio, id}``."""
        from musicjudge.audio import AUDIO_EXTENSIONS
        from musicjudge.reward.base import ScoreItem
        from musicjudge.reward.data import Instruction

        if isinstance(clips, (str, os.PathLike)):
            if Path(clips).suffix.lower() in AUDIO_EXTENSIONS and not Path(clips).is_dir():
                clips = [clips]
            else:
                from musicjudge.evaluation.sources import read_clips

                return [(c.id, ScoreItem(c.path, Instruction(c.text, c.lyrics, c.ref_audio))) for c in read_clips(clips)]
        out = []
        for clip in clips:
            if isinstance(clip, ScoreItem):
                out.append((clip.audio, clip))
            elif isinstance(clip, (str, os.PathLike)):
                out.append((str(clip), ScoreItem(str(clip))))
            elif isinstance(clip, Mapping):
                audio = clip.get("audio", clip.get("path"))
                if not audio:
                    raise ConfigError(f"{dict(clip)!r}: give the clip's file as 'audio' (or 'path')")
                unknown = set(clip) - {"audio", "path", "text", "prompt", "lyrics", "ref_audio", "id"}
                if unknown:
                    raise ConfigError(f"{dict(clip)!r}: unknown key(s) {', '.join(sorted(unknown))}; "
                                      "use audio, text, lyrics, ref_audio, id")
                ins = Instruction(clip.get("text", clip.get("prompt")) or None, clip.get("lyrics") or None,
                                  str(clip["ref_audio"]) if clip.get("ref_audio") else None)
                out.append((str(clip.get("id", audio)), ScoreItem(str(audio), ins)))
            else:
                raise ConfigError(f"{clip!r}: expected an audio path, a dict with 'audio' or a ScoreItem")
        return out

    def score(self, clips: Any, *, batch_size: int = 16) -> "pd.DataFrame":
        """One row per clip (see :meth:`items`): ``id, audio, text, lyrics, ref_audio,
        musicality, alignment`` (higher = better; NaN when the clip could not be scored or the
        model has no such dimension) and ``error``."""
        import numpy as np
        import pandas as pd

        from musicjudge.reward.data import DIMENSIONS

        pairs = self.items(clips)
        values = {dim: np.full(len(pairs), np.nan) for dim in DIMENSIONS}
        for start in range(0, len(pairs), batch_size):
            chunk = [item for _, item in pairs[start:start + batch_size]]
            raw = self.reward_model.score(chunk)
            for dim in DIMENSIONS:
                if raw.get(dim) is not None:
                    arr = np.asarray(raw[dim], dtype=np.float64).reshape(-1)
                    if arr.shape[0] != len(chunk):
                        raise ConfigError(f"{self.spec}: score() returned {arr.shape[0]} {dim} values for {len(chunk)} clips")
                    values[dim][start:start + len(chunk)] = arr
        failures = self.failures
        rows = [{"id": cid, "audio": it.audio, "text": it.instruction.text, "lyrics": it.instruction.lyrics,
                 "ref_audio": it.instruction.ref_audio, "musicality": values["musicality"][i],
                 "alignment": values["alignment"][i], "error": failures.get(it.audio, "")}
                for i, (cid, it) in enumerate(pairs)]
        return pd.DataFrame(rows, columns=REWARD_COLUMNS)

    def bench_model(self):
        """This model as the benchmark sees it (:class:`musicjudge.bench.models.BenchModel`)."""
        from musicjudge.bench.models import BenchModel

        return BenchModel(self.spec, self.name, self.fingerprint, self.reward_model)


def load_reward_model(spec: "str | os.PathLike" = "builtin", *, device: str | None = None,
                      **options: Any) -> RewardScorer:
    """The reward model a spec names, through the one resolver
    (:func:`musicjudge.reward.registry.resolve_reward_model`: ``builtin``, ``random[:SEED]``,
    ``text-ridge``, ``clap-cosine``, ``cmi-rm=FOLDER``, ``loss-profile[:LM]``, a checkpoint
    folder, an entry point, ``module:Class``); ``options`` go to its constructor."""
    from musicjudge.reward.registry import resolve_reward_model

    resolved = resolve_reward_model(spec, device=device, **options)
    return RewardScorer(resolved.spec, resolved.name, resolved.fingerprint, resolved.model)


# ------------------------------------------------------------------------------------------
# bench
# ------------------------------------------------------------------------------------------
def bench_run(model: Any, benchmark: Any, out: "str | os.PathLike | None" = None, *, progress: bool = False,
              **options: Any) -> dict[str, Any]:
    """Run a reward benchmark (:func:`musicjudge.bench.runner.run_benchmark`; ``model``: a spec,
    a :func:`load_reward_model` result or any object with the reward interface; ``benchmark``:
    ``builtin``, ``cmi``, a CMI-RewardBench folder, a data file...). Returns ``results.json`` as
    a dict plus the tables: ``"table"`` (one row per task and metric over all its items: ``task, dimension,
    metric, value, ci_low, ci_high, n``; the headline is ``accuracy`` for pairs),
    ``"predictions"`` and ``"breakdowns"``. ``out``: keep the run folder there; without it the
    run happens in a temporary folder that is removed."""
    from musicjudge.bench.runner import run_benchmark

    if isinstance(model, RewardScorer):
        model = model.bench_model()
    if out is not None:
        return _bench_results(run_benchmark(model, benchmark, out, progress=progress, **options).parent)
    with tempfile.TemporaryDirectory(prefix="musicjudge-bench-") as tmp:
        return _bench_results(run_benchmark(model, benchmark, tmp, progress=progress, **options).parent)


def _bench_results(folder: Path) -> dict[str, Any]:
    import pandas as pd

    doc = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    breakdowns = pd.read_csv(folder / "breakdowns.csv")
    overall = breakdowns[(breakdowns["breakdown"] == "all") & (breakdowns["group"].astype(str) == "all")]
    doc["table"] = overall.drop(columns=["breakdown", "group"]).reset_index(drop=True)
    doc["predictions"] = pd.read_parquet(folder / "predictions.parquet")
    doc["breakdowns"] = breakdowns
    return doc


# ------------------------------------------------------------------------------------------
# eval
# ------------------------------------------------------------------------------------------
def run_eval(systems: "Mapping[str, Any] | Sequence[str]", out: "str | os.PathLike | None" = None, *,
             progress: bool = False, log: Any = None, **options: Any) -> "EvalResult":
    """Judge generators side by side (:func:`musicjudge.evaluation.evaluate`, what
    ``musicjudge eval`` runs): ``systems`` maps names to folders / manifests; ``lm``/``reward``
    are specs or loaded models (a :func:`load_reward_model` result too). Without ``out`` the
    run goes to a new temporary folder, kept for its report. ``log``: a print-like function for
    the progress lines (default: silent). ``result.table("systems")`` reads a table back."""
    from musicjudge.evaluation import evaluate

    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="musicjudge-eval-"))
    return evaluate(systems, folder, progress=progress, log=log or (lambda _line: None), **options)

