"""musicjudge: judge music-generation models and their outputs.

Two pillars: loss-profile probes of audio-token language models (``musicjudge.probe``) and
reward models / a reward benchmark under compositional multimodal instructions
(``musicjudge.reward``, ``musicjudge.bench``).

The Python API (docs/api.md) is here, imported on first use so ``import musicjudge`` stays
light::

    import musicjudge as mj
    lm = mj.load_music_lm("builtin")
    mj.score_files(lm, "clips/")            # DataFrame: id, path, mean_nll, frames, ...
    mj.profile_scores(lm, "clips/")         # DataFrame: id, path, profile_score, ...
    mj.probe.run(model="builtin", audio="clips/")   # {"results": DataFrame, "clips": DataFrame}
    rm = mj.load_reward_model("builtin")
    rm.score("clips/")                      # DataFrame: id, audio, ..., musicality, alignment
    mj.bench.run(rm, "pairs.jsonl")         # results dict + "table", "predictions"
    mj.eval({"base": "clips/base", "new": "clips/new"})   # EvalResult (report.html)
"""

__version__ = "0.1.0"

from musicjudge.errors import MusicjudgeError  # noqa: E402

#: name -> (module, attribute) of the lazily imported API
_API = {
    "load_music_lm": ("musicjudge.api", "load_music_lm"),
    "score_files": ("musicjudge.api", "score_files"),
    "profile_scores": ("musicjudge.api", "profile_scores"),
    "load_reward_model": ("musicjudge.api", "load_reward_model"),
    "RewardScorer": ("musicjudge.api", "RewardScorer"),
    "eval": ("musicjudge.api", "run_eval"),
}
#: subpackages reachable as attributes (``mj.probe.run``, ``mj.bench.run``) without importing them up front
_SUBPACKAGES = ("annotate", "api", "audio", "bench", "data", "evaluation", "lm", "perturb", "probe", "pseudolabel",
                "report", "reward")

# ``eval`` stays out of __all__: a star import must not shadow the builtin
__all__ = ["__version__", "MusicjudgeError", *(name for name in _API if name != "eval")]


def __getattr__(name: str):
    import importlib

    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"musicjudge.{name}")
    raise AttributeError(f"module 'musicjudge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_SUBPACKAGES))
